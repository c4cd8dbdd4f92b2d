// Where the stacks take their inputs from: the built Lambda functions, the SSM documents and the
// node-side scripts. Synth never runs cargo: it reads what `cargo lambda build` left behind.
//
// Stand-ins: the documents and node scripts are written in node-scripts/ (another part of the
// repository). When they are missing and the context value `allowStandIns` is true (the tests
// set it), the minimal stand-ins under infra/test/fixtures are used instead and the stack gets a
// warning annotation; otherwise synth fails with a clear error. The real files always win.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Node } from 'constructs';
import { Architecture, ConfigError } from './config';

/** infra/ itself: relative context paths are resolved against it, not against the cwd. */
export const INFRA_DIR = path.resolve(__dirname, '..');
export const FIXTURES_DIR = path.join(INFRA_DIR, 'test', 'fixtures');

export const FUNCTION_NAMES = ['token-refresher', 'launch-hook', 'terminate-hook'] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

export const DOCUMENT_FILES = {
  regenerate: 'joinkeeper-regenerate.json',
  nodeStatus: 'joinkeeper-node-status.json',
  drain: 'joinkeeper-drain.json',
  joinLog: 'joinkeeper-join-log.json',
  nodes: 'joinkeeper-nodes.json',
  cordon: 'joinkeeper-cordon.json',
  uploadCerts: 'joinkeeper-upload-certs.json',
  revokeTokens: 'joinkeeper-revoke-tokens.json',
} as const;
export type DocumentKey = keyof typeof DOCUMENT_FILES;

/** Parameters each document must declare (docs/contracts.md). */
export const DOCUMENT_PARAMETERS: Record<DocumentKey, readonly string[]> = {
  regenerate: ['ClusterName', 'ParameterPrefix', 'TokenTtlSeconds'],
  nodeStatus: ['InstanceIds'],
  drain: ['InstanceId', 'DrainTimeoutSeconds', 'KeepNode'],
  joinLog: ['Lines'],
  nodes: ['StartAfter'],
  cordon: ['NodeName', 'Delete', 'InstanceId', 'PrivateDnsName', 'Uncordon'],
  uploadCerts: ['ClusterName', 'ParameterPrefix'],
  revokeTokens: ['ClusterName', 'ParameterPrefix', 'KeepTokenId'],
};

export function resolveFromInfra(p: string): string {
  return path.isAbsolute(p) ? p : path.resolve(INFRA_DIR, p);
}

export function allowStandIns(node: Node): boolean {
  const v = node.tryGetContext('allowStandIns');
  return v === true || v === 'true' || v === '1';
}

/** The `<name>/bootstrap` files missing from `abs`, as a list for messages; '' when none is. */
function missingBootstraps(abs: string): string {
  const missing = FUNCTION_NAMES.filter((n) => !fs.existsSync(path.join(abs, n, 'bootstrap')));
  return missing.map((m) => `${m}/bootstrap`).join(', ');
}

/** The directory holding `<name>/bootstrap` for each function; fails clearly when one is missing. */
export function functionsDir(dir: string): string {
  const abs = resolveFromInfra(dir);
  const missing = missingBootstraps(abs);
  if (missing) {
    throw new ConfigError(
      `functionsDir ${abs}: no ${missing}; ` +
        'run `cargo lambda build --release` at the repository root (add --arm64 for arm64), ' +
        'or pass -c functionsDir=<dir with <function>/bootstrap>',
    );
  }
  return abs;
}

/** Lambda architecture of a built bootstrap, read from its ELF header; undefined if not an ELF. */
export function elfArchitecture(file: string): Architecture | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(20);
    const n = fs.readSync(fd, b, 0, 20, 0);
    if (n < 20 || b.readUInt32BE(0) !== 0x7f454c46) return undefined;
    const little = b[5] === 1;
    const machine = little ? b.readUInt16LE(18) : b.readUInt16BE(18);
    if (machine === 0x3e) return 'x86_64';
    if (machine === 0xb7) return 'arm64';
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The one architecture the functions in `dir` are built for: undefined when no `bootstrap` is an
 * ELF file (placeholders); a ConfigError when they are built for different architectures.
 */
export function builtArchitecture(dir: string): Architecture | undefined {
  const found = new Set<Architecture>();
  for (const n of FUNCTION_NAMES) {
    const a = elfArchitecture(path.join(dir, n, 'bootstrap'));
    if (a) found.add(a);
  }
  if (found.size > 1) throw new ConfigError(`functionsDir ${dir}: functions built for different architectures`);
  return [...found][0];
}

/**
 * The architecture to deploy: the context value if given (and it must match the binaries when
 * they are ELF files), else the binaries' own, else x86_64 (cargo lambda's default target).
 * A deploy never uploads binaries of the other architecture: synth fails instead. Only the
 * offline checks (test/support.ts) swap such binaries for placeholders.
 */
export function functionsArchitecture(dir: string, wanted: Architecture | undefined): Architecture {
  const built = builtArchitecture(dir);
  if (wanted && built && wanted !== built) {
    throw new ConfigError(
      `context architecture=${wanted}, but the functions in ${dir} are built for ${built}; ` +
        `run \`cargo lambda build --release${wanted === 'arm64' ? ' --arm64' : ''}\` or drop -c architecture`,
    );
  }
  return wanted ?? built ?? 'x86_64';
}

/**
 * Why the functions in `dir` cannot serve a stack for `architecture`: missing, built for the other
 * architecture, or for both; undefined when they can (placeholders that are not ELF files can).
 * The offline checks (test/support.ts) use placeholders for such variants instead of failing.
 */
export function functionsUnfitFor(dir: string, architecture: Architecture): string | undefined {
  const abs = resolveFromInfra(dir);
  const missing = missingBootstraps(abs);
  if (missing) return `${abs} has no ${missing}`;
  let built: Architecture | undefined;
  try {
    built = builtArchitecture(abs);
  } catch (e) {
    return (e as Error).message;
  }
  return built && built !== architecture ? `the functions in ${abs} are built for ${built}, not ${architecture}` : undefined;
}

export interface Sourced<T> {
  readonly value: T;
  readonly path: string;
  readonly standIn: boolean;
}

/** Loads and checks one SSM document (schemaVersion 2.2, aws:runShellScript, contract parameters). */
export function loadDocument(node: Node, documentsDir: string, key: DocumentKey): Sourced<Record<string, unknown>> {
  const real = path.join(resolveFromInfra(documentsDir), DOCUMENT_FILES[key]);
  let file = real;
  let standIn = false;
  if (!fs.existsSync(real)) {
    if (!allowStandIns(node)) {
      throw new ConfigError(`SSM document ${real} is missing (node-scripts/documents); pass -c documentsDir=<dir>`);
    }
    file = path.join(FIXTURES_DIR, 'documents', DOCUMENT_FILES[key]);
    standIn = true;
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`SSM document ${file}: not JSON: ${(e as Error).message}`);
  }
  checkDocument(file, doc, DOCUMENT_PARAMETERS[key]);
  return { value: doc, path: file, standIn };
}

export function checkDocument(file: string, doc: Record<string, unknown>, params: readonly string[]): void {
  if (doc.schemaVersion !== '2.2') throw new ConfigError(`SSM document ${file}: schemaVersion must be "2.2"`);
  const declared = (doc.parameters ?? {}) as Record<string, { type?: string; allowedPattern?: string }>;
  for (const p of params) {
    const d = declared[p];
    if (!d) throw new ConfigError(`SSM document ${file}: parameter ${p} is missing (docs/contracts.md)`);
    if (d.type !== 'String' || typeof d.allowedPattern !== 'string') {
      throw new ConfigError(`SSM document ${file}: parameter ${p} must be a String with an allowedPattern`);
    }
  }
  const steps = doc.mainSteps as Array<{ action?: string }> | undefined;
  if (!Array.isArray(steps) || steps.length === 0 || !steps.every((s) => s.action === 'aws:runShellScript')) {
    throw new ConfigError(`SSM document ${file}: mainSteps must be aws:runShellScript steps`);
  }
}

/**
 * The node-scripts folder to upload: it must hold bin/ with the control-plane and worker entry
 * points. Falls back to the fixture stand-in only with allowStandIns.
 */
export function nodeScriptsDir(node: Node, dir: string): Sourced<string> {
  const real = resolveFromInfra(dir);
  const needed = ['joinkeeper-publish', 'joinkeeper-join'];
  const ok = needed.every((s) => fs.existsSync(path.join(real, 'bin', s)));
  if (ok) return { value: real, path: real, standIn: false };
  if (!allowStandIns(node)) {
    throw new ConfigError(`node scripts ${real}/bin/{${needed.join(',')}} are missing; pass -c nodeScriptsDir=<dir>`);
  }
  const fixture = path.join(FIXTURES_DIR, 'node-scripts');
  return { value: fixture, path: fixture, standIn: true };
}
