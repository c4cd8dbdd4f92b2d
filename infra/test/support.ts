// Shared by the tests and scripts/synth-all.ts: synth inputs that need no cargo.
//
// Lambda code: when `functionsDir` (default ../target/lambda) has every `<function>/bootstrap`,
// built for the architecture the synth asks for (context `architecture`, default x86_64), it is
// used; otherwise (nothing built, or built for the other architecture) a temporary directory with
// placeholder `bootstrap` files (a two-line shell script, not an ELF, so the architecture comes
// from context or defaults to x86_64) stands in. So the checks pass whatever target/lambda holds.
// Documents and node scripts: the real ones in ../node-scripts win; the stand-ins under
// test/fixtures are used only when they are missing (allowStandIns).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp, JoinkeeperApp } from '../lib/app';
import { Architecture } from '../lib/config';
import { FUNCTION_NAMES, functionsUnfitFor, resolveFromInfra } from '../lib/sources';

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

/**
 * The functionsDir to synth a stack for `architecture` with: env JOINKEEPER_FUNCTIONS_DIR, else
 * ../target/lambda, when built for that architecture; else placeholders (`why` says why).
 */
export function functionsDirForSynth(architecture: Architecture = 'x86_64'): { dir: string; placeholder: boolean; why?: string } {
  const wanted = process.env.JOINKEEPER_FUNCTIONS_DIR ?? '../target/lambda';
  if (process.env.JOINKEEPER_FUNCTIONS_DIR && !builtFunctionsPresent(wanted)) throw new Error(`JOINKEEPER_FUNCTIONS_DIR=${wanted} lacks <function>/bootstrap files`);
  const why = functionsUnfitFor(wanted, architecture);
  if (!why) return { dir: resolveFromInfra(wanted), placeholder: false };
  return { dir: placeholderFunctionsDir(), placeholder: true, why };
}

/** Context for a synth that needs nothing outside the repository. */
export function offlineContext(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    functionsDir: functionsDirForSynth(extra.architecture as Architecture | undefined).dir,
    allowStandIns: true,
    // Keep synth quiet and deterministic in tests.
    'aws:cdk:bundling-stacks': [],
    ...extra,
  };
}

// ---- synth helpers for the tests ------------------------------------------------------------

export interface Synthesized {
  readonly built: JoinkeeperApp;
  readonly account: Template;
  readonly cluster: Template;
}

const cache = new Map<string, Synthesized>();
const outdirs: string[] = [];

/** A cloud assembly directory removed when the process exits (assets are copied into it). */
export function tmpOutdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'joinkeeper-test-cdk-out-'));
  if (outdirs.length === 0) process.on('exit', () => outdirs.forEach((o) => fs.rmSync(o, { recursive: true, force: true })));
  outdirs.push(d);
  return d;
}

/** Synthesizes the app with offline context plus `ctx` (memoized per ctx). */
export function synth(ctx: Record<string, unknown> = {}): Synthesized {
  const key = JSON.stringify(ctx);
  let s = cache.get(key);
  if (!s) {
    const built = buildApp({ outdir: tmpOutdir(), context: offlineContext(ctx) });
    s = { built, account: Template.fromStack(built.account), cluster: Template.fromStack(built.cluster) };
    cache.set(key, s);
  }
  return s;
}

/** Renders a CloudFormation UserData value (Fn::Base64 of a string or Fn::Join) with tokens replaced. */
export function renderUserData(value: unknown, token = 'TOKEN'): string {
  const inner = (value as Record<string, unknown>)['Fn::Base64'];
  const flat = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const o = v as Record<string, unknown>;
    if (o && Array.isArray(o['Fn::Join'])) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(flat).join(sep);
    }
    return token;
  };
  return flat(inner);
}

export type Statement = { Effect: string; Action: string | string[]; Resource?: unknown; Condition?: Record<string, Record<string, unknown>>; Sid?: string };

/** Allow statements of the AWS::IAM::Policy resources attached to the role whose logical id starts with `rolePrefix`. */
export function statementsOfRole(t: Template, rolePrefix: string): Statement[] {
  const out: Statement[] = [];
  type PolicyResource = { Properties: { Roles: Array<{ Ref: string }>; PolicyDocument: { Statement: Statement[] } } };
  const policies = Object.values(t.findResources('AWS::IAM::Policy')) as PolicyResource[];
  for (const res of policies) {
    if (res.Properties.Roles.some((r) => r.Ref.startsWith(rolePrefix))) out.push(...res.Properties.PolicyDocument.Statement);
  }
  return out;
}

export function actionsOf(s: Statement): string[] {
  return Array.isArray(s.Action) ? s.Action : [s.Action];
}

export function resourcesOf(s: Statement): unknown[] {
  return s.Resource === undefined ? [] : Array.isArray(s.Resource) ? s.Resource : [s.Resource];
}

/** Flattens Fn::Join/Ref values to a string such as arn:{AWS::Partition}:ssm:... */
export function flat(v: unknown): string {
  if (typeof v === 'string') return v;
  const o = v as Record<string, unknown>;
  if (o && Array.isArray(o['Fn::Join'])) {
    const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
    return parts.map(flat).join(sep);
  }
  if (o && typeof o.Ref === 'string') return `{${o.Ref}}`;
  if (o && Array.isArray(o['Fn::GetAtt'])) return `{${(o['Fn::GetAtt'] as string[]).join('.')}}`;
  return JSON.stringify(v);
}

export function findCfnLint(): string | undefined {
  const candidates = [process.env.CFN_LINT, resolveFromInfra('../.venv/bin/cfn-lint')].filter((x): x is string => !!x);
  return candidates.find((c) => fs.existsSync(c));
}
