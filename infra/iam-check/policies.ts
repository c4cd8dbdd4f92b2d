// The IAM check's view of the synthesized templates: each principal's identity policy statements
// and the cluster key's policy, with CloudFormation intrinsics resolved for a given account and
// region (or symbolically, for the README table).
//
// Test-only code: infra/lib and infra/bin never import this folder (a test checks it).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildApp } from '../lib/app';
import { offlineContext } from '../test/support';

/** The principals (contract 1: the User-Agent app id) whose policies the stacks deploy. */
export const PRINCIPAL_ROLES = {
  'token-refresher': { stack: 'account', role: 'TokenRefresherRole' },
  'launch-hook': { stack: 'account', role: 'LaunchHookRole' },
  'terminate-hook': { stack: 'account', role: 'TerminateHookRole' },
  'control-plane': { stack: 'cluster', role: 'ControlPlaneRole' },
  worker: { stack: 'cluster', role: 'WorkerRole' },
} as const;
export type Principal = keyof typeof PRINCIPAL_ROLES;
export const PRINCIPALS = Object.keys(PRINCIPAL_ROLES) as Principal[];
export const INSTANCE_PRINCIPALS: readonly Principal[] = ['control-plane', 'worker'];

/** The cluster stack is synthesized once for this name, then each caller's cluster replaces it. */
export const CLUSTER_SENTINEL = 'jkcallercluster';
/** The prefix the tests, the demo and the default deployment use. */
export const PARAMETER_PREFIX = '/joinkeeper';
export const DEFAULT_ACCOUNT = '123456789012';
export const DEFAULT_REGION = 'us-east-1';

export type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, any> }> };
export type Statement = {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource?: unknown;
  Principal?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};
export type PolicyDocument = { Version: string; Statement: Statement[] };

export interface Synthesized {
  readonly account: Template;
  readonly cluster: Template;
}

const synthesized = new Map<string, Synthesized>();

/** Synthesizes both stacks offline (as scripts/check.sh does) with `context` on top (once per process). */
export function synthesize(context: Record<string, unknown> = {}): Synthesized {
  const key = JSON.stringify(context);
  const hit = synthesized.get(key);
  if (hit) return hit;
  const t = synthesizeNow(context);
  synthesized.set(key, t);
  return t;
}

function synthesizeNow(context: Record<string, unknown>): Synthesized {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'joinkeeper-iam-check-'));
  try {
    const ctx = offlineContext({ clusterName: CLUSTER_SENTINEL, parameterPrefix: PARAMETER_PREFIX, ...context });
    const { app, account, cluster } = buildApp({ outdir, context: ctx });
    const assembly = app.synth();
    const read = (name: string) => JSON.parse(fs.readFileSync(path.join(outdir, assembly.getStackByName(name).templateFile), 'utf8')) as Template;
    return { account: read(account.stackName), cluster: read(cluster.stackName) };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

export interface Env {
  readonly account: string;
  readonly region: string;
  /** Logical ids keep their CDK hash suffix unless false (the README table drops it). */
  readonly keepHashes?: boolean;
  /**
   * Put before the names of a cluster stack's roles and key, so that two clusters' roles and
   * keys have different ARNs (as two deployed stacks would).
   */
  readonly namePrefix?: string;
}

/** The README table's symbolic environment: ARNs read arn:aws:ssm:R:A:... */
export const SYMBOLIC: Env = { account: 'A', region: 'R', keepHashes: false };

function logicalName(id: string, env: Env): string {
  return (env.namePrefix ?? '') + (env.keepHashes === false ? id.replace(/[0-9A-F]{8}$/, '') : id);
}

/** The ARN a resource's GetAtt .Arn would have, from its type and logical id. */
function arnOf(t: Template, id: string, env: Env): string {
  const type = t.Resources[id]?.Type ?? '';
  const name = logicalName(id, env);
  const { account: a, region: r } = env;
  switch (type) {
    case 'AWS::IAM::Role':
      return `arn:aws:iam::${a}:role/${name}`;
    case 'AWS::KMS::Key':
      return `arn:aws:kms:${r}:${a}:key/${name}`;
    case 'AWS::Logs::LogGroup':
      return `arn:aws:logs:${r}:${a}:log-group:${name}:*`;
    case 'AWS::SQS::Queue':
      return `arn:aws:sqs:${r}:${a}:${name}`;
    default:
      return `arn:aws:${type.split('::')[1]?.toLowerCase() ?? 'unknown'}:${r}:${a}:${name}`;
  }
}

function pseudo(name: string, env: Env): string | undefined {
  return {
    'AWS::AccountId': env.account,
    'AWS::Region': env.region,
    'AWS::Partition': 'aws',
    'AWS::URLSuffix': 'amazonaws.com',
  }[name];
}

/** Resolves Ref, Fn::Join, Fn::Sub and Fn::GetAtt everywhere in `value`. */
export function resolve(t: Template, value: unknown, env: Env): any {
  if (Array.isArray(value)) return value.map((v) => resolve(t, v, env));
  if (value === null || typeof value !== 'object') return value;
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1) {
    const [k] = keys;
    const v = o[k];
    if (k === 'Ref') return pseudo(String(v), env) ?? logicalName(String(v), env);
    if (k === 'Fn::Join') {
      const [sep, parts] = v as [string, unknown[]];
      return (resolve(t, parts, env) as unknown[]).map(String).join(sep);
    }
    if (k === 'Fn::GetAtt') {
      const [id, attr] = Array.isArray(v) ? (v as string[]) : String(v).split('.');
      return attr === 'Arn' ? arnOf(t, id, env) : `${logicalName(id, env)}.${attr}`;
    }
    if (k === 'Fn::Sub') {
      const [text, vars] = (Array.isArray(v) ? v : [v, {}]) as [string, Record<string, unknown>];
      return text.replace(/\$\{([^}!]+)\}/g, (_m, name: string) => {
        if (vars && name in vars) return String(resolve(t, vars[name], env));
        if (name.includes('.')) {
          const [id, attr] = name.split('.');
          return attr === 'Arn' ? arnOf(t, id, env) : `${logicalName(id, env)}.${attr}`;
        }
        return pseudo(name, env) ?? logicalName(name, env);
      });
    }
  }
  return Object.fromEntries(keys.map((k) => [k, resolve(t, o[k], env)]));
}

/** Identity policy statements attached to the role whose logical id starts with `rolePrefix`. */
export function roleStatements(t: Template, rolePrefix: string): Statement[] {
  const roleIds = Object.keys(t.Resources).filter((id) => t.Resources[id].Type === 'AWS::IAM::Role' && id.startsWith(rolePrefix));
  if (roleIds.length !== 1) throw new Error(`expected one AWS::IAM::Role ${rolePrefix}*, found ${roleIds.length}`);
  const [roleId] = roleIds;
  const role = t.Resources[roleId].Properties ?? {};
  if (role.ManagedPolicyArns !== undefined) {
    // Managed policies are not in the template: the check could not see what they allow.
    throw new Error(`${roleId} has managed policies (${JSON.stringify(role.ManagedPolicyArns)}); the IAM check cannot evaluate them`);
  }
  const out: Statement[] = [];
  for (const pol of role.Policies ?? []) out.push(...pol.PolicyDocument.Statement);
  for (const res of Object.values(t.Resources)) {
    if (res.Type !== 'AWS::IAM::Policy' && res.Type !== 'AWS::IAM::ManagedPolicy') continue;
    const attached = [...(res.Properties?.Roles ?? [])] as Array<{ Ref?: string }>;
    if (attached.some((r) => r.Ref === roleId)) out.push(...res.Properties!.PolicyDocument.Statement);
  }
  return out;
}

export function roleLogicalId(t: Template, rolePrefix: string): string {
  return Object.keys(t.Resources).find((id) => t.Resources[id].Type === 'AWS::IAM::Role' && id.startsWith(rolePrefix))!;
}

/** A principal's policy and role ARN in an account/region; instance roles for one cluster. */
export interface PrincipalPolicy {
  readonly principal: Principal;
  readonly roleArn: string;
  readonly policy: PolicyDocument;
}

export class Policies {
  private readonly cache = new Map<string, PrincipalPolicy>();
  constructor(readonly templates: Synthesized) {}

  template(p: Principal): Template {
    return PRINCIPAL_ROLES[p].stack === 'account' ? this.templates.account : this.templates.cluster;
  }

  /** `cluster` only matters for the instance roles (one pair per cluster stack). */
  of(p: Principal, env: Env, cluster = CLUSTER_SENTINEL): PrincipalPolicy {
    const key = JSON.stringify([p, env, cluster]);
    let hit = this.cache.get(key);
    if (!hit) {
      const t = this.template(p);
      if (t === this.templates.cluster) env = clusterEnv(env);
      const rolePrefix = PRINCIPAL_ROLES[p].role;
      const statements = renameCluster(resolve(t, roleStatements(t, rolePrefix), env), cluster) as Statement[];
      hit = { principal: p, roleArn: renameCluster(arnOf(t, roleLogicalId(t, rolePrefix), env), cluster), policy: { Version: '2012-10-17', Statement: statements } };
      this.cache.set(key, hit);
    }
    return hit;
  }

  /** The object key of the node scripts asset, as the nodes' user data downloads it. */
  nodeScriptsAssetKey(): string {
    const keys = new Set([...JSON.stringify(this.templates.cluster).matchAll(/JK_SCRIPTS_KEY=\\"([^"\\]+)\\"/g)].map((m) => m[1]));
    if (keys.size !== 1) throw new Error(`expected one node scripts asset key in the user data, found ${[...keys].join(', ') || 'none'}`);
    return [...keys][0];
  }

  /** The object key of a function's code asset (another object of the same bucket). */
  functionAssetKey(): string {
    const fn = Object.values(this.templates.account.Resources).find((r) => r.Type === 'AWS::Lambda::Function');
    const key = fn?.Properties?.Code?.S3Key;
    if (typeof key !== 'string') throw new Error('no function code asset in the account stack');
    return key;
  }

  /** The ARN of the account stack's queue whose logical id starts with `prefix`. */
  accountQueueArn(env: Env, prefix: string): string | undefined {
    const t = this.templates.account;
    const id = Object.keys(t.Resources).find((k) => t.Resources[k].Type === 'AWS::SQS::Queue' && k.startsWith(prefix));
    return id ? arnOf(t, id, env) : undefined;
  }

  /** The key policy of the cluster's customer managed key, when the cluster stack has one. */
  clusterKeyPolicy(env: Env, cluster: string): { keyArn: string; policy: PolicyDocument } | undefined {
    const t = this.templates.cluster;
    const id = Object.keys(t.Resources).find((k) => t.Resources[k].Type === 'AWS::KMS::Key');
    if (!id) return undefined;
    env = clusterEnv(env);
    return {
      keyArn: renameCluster(arnOf(t, id, env), cluster),
      policy: renameCluster(resolve(t, t.Resources[id].Properties!.KeyPolicy, env), cluster),
    };
  }
}

function clusterEnv(env: Env): Env {
  return env.keepHashes === false ? env : { ...env, namePrefix: `${CLUSTER_SENTINEL}-` };
}

/** Replaces the synthesized cluster name with `cluster` in a resolved value. */
export function renameCluster<T>(value: T, cluster: string): T {
  if (cluster === CLUSTER_SENTINEL) return value;
  return JSON.parse(JSON.stringify(value).split(CLUSTER_SENTINEL).join(cluster)) as T;
}
