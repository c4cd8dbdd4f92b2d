// Shared by the tests and scripts/synth-all.ts: synth inputs that need no cargo.
//
// Lambda code: when `functionsDir` (default ../target/lambda) has every `<function>/bootstrap`,
// it is used; otherwise a temporary directory with placeholder `bootstrap` files (a two-line shell
// script, not an ELF, so the architecture comes from context or defaults to x86_64) stands in.
// Documents and node scripts: the real ones in ../node-scripts win; the stand-ins under
// test/fixtures are used only when they are missing (allowStandIns).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FUNCTION_NAMES, resolveFromInfra } from '../lib/sources';

let placeholderDir: string | undefined;

/** A directory with a placeholder `<function>/bootstrap` for every function (created once per process). */
export function placeholderFunctionsDir(): string {
  if (placeholderDir && fs.existsSync(placeholderDir)) return placeholderDir;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'joinkeeper-placeholder-lambda-'));
  for (const name of FUNCTION_NAMES) {
    fs.mkdirSync(path.join(dir, name));
    fs.writeFileSync(path.join(dir, name, 'bootstrap'), `#!/bin/sh\necho "${name}: placeholder for synth tests, not the function" >&2; exit 1\n`, { mode: 0o755 });
  }
  placeholderDir = dir;
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function builtFunctionsPresent(dir: string): boolean {
  const abs = resolveFromInfra(dir);
  return FUNCTION_NAMES.every((n) => fs.existsSync(path.join(abs, n, 'bootstrap')));
}

/** The functionsDir to synth with: env JOINKEEPER_FUNCTIONS_DIR, else ../target/lambda if built, else placeholders. */
export function functionsDirForSynth(): { dir: string; placeholder: boolean } {
  const wanted = process.env.JOINKEEPER_FUNCTIONS_DIR ?? '../target/lambda';
  if (builtFunctionsPresent(wanted)) return { dir: resolveFromInfra(wanted), placeholder: false };
  if (process.env.JOINKEEPER_FUNCTIONS_DIR) throw new Error(`JOINKEEPER_FUNCTIONS_DIR=${wanted} lacks <function>/bootstrap files`);
  return { dir: placeholderFunctionsDir(), placeholder: true };
}

/** Context for a synth that needs nothing outside the repository. */
export function offlineContext(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    functionsDir: functionsDirForSynth().dir,
    allowStandIns: true,
    // Keep synth quiet and deterministic in tests.
    'aws:cdk:bundling-stacks': [],
    ...extra,
  };
}
