#!/usr/bin/env node
// Entry point for the CDK CLI (cdk.json). See README.md for the context values.
import { buildApp } from '../lib/app';
import { ConfigError } from '../lib/config';

try {
  buildApp().app.synth();
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(`joinkeeper: ${e.message}`);
    process.exit(2);
  }
  throw e;
}
