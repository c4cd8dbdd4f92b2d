// The emulator's record of AWS calls (emulator/README.md, "Record of AWS calls"): one JSON object
// per line, in <dir>/*.jsonl, one file per suite that ran the emulator.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { clusterOfParameterArn, Decision, Evaluator, isAwsSsmKey, KEY_CLUSTER_TAG, kmsParameterArn, Variant } from './evaluate';
import { CLUSTER_SENTINEL, INSTANCE_PRINCIPALS, Principal, PRINCIPALS } from './policies';

export interface Call {
  readonly time?: string;
  readonly principal: string;
  readonly action: string;
  readonly account: string;
  readonly region: string;
  readonly resources: string[];
  readonly context: Record<string, Record<string, string | string[]>>;
  readonly status?: number;
  readonly error_code?: string | null;
  readonly parameters?: Record<string, unknown>;
  readonly modelled?: boolean;
  readonly via?: string;
  /** Where it was read: file:line. */
  readonly at: string;
}

/**
 * Principals that have no deployed role, and why their calls are not evaluated. Any other
 * principal that is not deployed fails the check (a misspelt app id would otherwise hide calls).
 */
export const NOT_DEPLOYED: Record<string, string> = {
  'test-harness': 'the node-script tests setting up and inspecting their world',
  unknown: 'calls without an app id: test and demo drivers creating groups, instances and records',
  'joinkeeper-cli': "the operator's CLI, which runs with the operator's own credentials",
};

export function readCalls(dir: string): { files: Array<{ name: string; lines: number }>; calls: Call[] } {
  const files: Array<{ name: string; lines: number }> = [];
  const calls: Call[] = [];
  if (!fs.existsSync(dir)) return { files, calls };
  for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.jsonl')).sort()) {
    const text = fs.readFileSync(path.join(dir, name), 'utf8');
    let n = 0;
    text.split('\n').forEach((line, i) => {
      if (!line.trim()) return;
      n++;
      let parsed: Omit<Call, 'at'>;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw new Error(`${name}:${i + 1}: not JSON`);
      }
      if (typeof parsed.principal !== 'string' || typeof parsed.action !== 'string' || !Array.isArray(parsed.resources)) {
        throw new Error(`${name}:${i + 1}: not a recorded call (principal, action, resources)`);
      }
      calls.push({ ...parsed, context: parsed.context ?? {}, at: `${name}:${i + 1}` });
    });
    files.push({ name, lines: n });
  }
  return { files, calls };
}

/**
 * The caller's cluster, for the per-cluster instance roles. The record does not say which
 * instance made a call, so it is taken from what the call names: the parameters under
 * `<prefix>/<cluster>/`, the parameter a KMS call through SSM is for, the ClusterName a command
 * is sent with. Calls that name no cluster (Describe*, GetCommandInvocation) are the same for
 * every cluster's role.
 */
export function callerCluster(call: Call): { cluster: string; from: 'resource' | 'none'; conflicting: boolean } {
  const found = new Set<string>();
  for (const res of call.resources) {
    const c = clusterOfParameterArn(res);
    if (c) found.add(c);
    const p = kmsParameterArn(call.context[res] ?? {});
    const k = p && clusterOfParameterArn(p);
    if (k) found.add(k);
  }
  const docParams = (call.parameters?.Parameters ?? {}) as Record<string, unknown>;
  const named = [docParams.ClusterName].flat()[0];
  if (typeof named === 'string' && call.action === 'ssm:SendCommand') found.add(named);
  const [first] = [...found];
  return first ? { cluster: first, from: 'resource', conflicting: found.size > 1 } : { cluster: CLUSTER_SENTINEL, from: 'none', conflicting: false };
}

/**
 * A per-instance worker's read of its own record before the control plane created it. The
 * emulator answers ParameterNotFound; AWS denies it (the record's tag, which the policy compares
 * with ec2:SourceInstanceARN, does not exist yet) and joinkeeper-join reads either answer as "not
 * yet". Denied as designed, and only for the caller's own instance.
 */
export function awaitsOwnRecord(call: Call): boolean {
  if (call.principal !== 'worker' || call.action !== 'ssm:GetParameter' || call.error_code !== 'ParameterNotFound') return false;
  return call.resources.length > 0 && call.resources.every((r) => {
    const id = /:parameter\/.+\/join\/(i-[0-9a-f]+)$/.exec(r)?.[1];
    const source = call.context[r]?.['ec2:SourceInstanceARN'];
    return id !== undefined && typeof source === 'string' && source.endsWith(`:instance/${id}`);
  });
}

export interface CallVerdict {
  readonly call: Call;
  readonly allowed: boolean;
  readonly denials: Array<{ resource: string; decision: Decision }>;
  readonly clusterFromResource: boolean;
  readonly ignoredKeys: string[];
  /** The synthesis it was evaluated against. */
  readonly variant: Variant;
}

/**
 * The synthesis that matches the key a call used: an instance role's KMS call with the aws/ssm
 * key is what a clusterKmsKey=false stack makes, anything else the default (the cluster's key).
 */
export function variantOf(call: Call): Variant {
  const kms = call.action.startsWith('kms:') && INSTANCE_PRINCIPALS.includes(call.principal as Principal);
  const awsSsm = kms && call.resources.length > 0 && call.resources.every((r) => isAwsSsmKey(r, call.context[r] ?? {}));
  // A worker's call about a per-instance record is what a joinMode=per-instance stack's worker makes.
  const named = call.resources.map((r) => kmsParameterArn(call.context[r] ?? {}) ?? r);
  const perInstance = call.principal === 'worker' && named.some((r) => /:parameter\/.+\/join\/i-[0-9a-f]+$/.test(r));
  if (perInstance) return awsSsm ? 'perInstanceAwsSsm' : 'perInstance';
  return awsSsm ? 'awsSsm' : 'default';
}

/**
 * A customer managed key the emulator made for a cluster stack (tagged joinkeeper:cluster=C, as
 * the stack tags its key) stands for that stack's key in the synthesized templates; any other
 * key stays as recorded (no key policy is known for it, so the call is denied).
 */
function keyOfTemplate(ev: Evaluator, call: Call, resource: string): { resource: string; keyCluster?: string } {
  const context = call.context[resource] ?? {};
  const cluster = context[KEY_CLUSTER_TAG];
  if (!resource.startsWith('arn:aws:kms:') || isAwsSsmKey(resource, context) || typeof cluster !== 'string') return { resource };
  const arn = ev.clusterKeyArn(call.account, call.region, cluster);
  return arn ? { resource: arn, keyCluster: cluster } : { resource };
}

/**
 * The queues the harnesses make (tests/src/event_source.rs, scripts/demo_queue.py) stand for the
 * account stack's queues of the same role; any other queue stays as recorded (no policy grants it).
 */
export const LOCAL_QUEUES: Record<string, string> = {
  'joinkeeper-lifecycle-events': 'LifecycleEvents',
  'joinkeeper-lifecycle-events-dead-letters': 'LifecycleDeadLetters',
};

function queueOfTemplate(ev: Evaluator, call: Call, resource: string): string {
  const m = /^arn:aws:sqs:[^:]+:[^:]+:(?<name>[^:]+)$/.exec(resource);
  const logical = m?.groups && LOCAL_QUEUES[m.groups.name];
  return (logical && ev.accountQueueArn(call.account, call.region, logical)) || resource;
}

export async function evaluateCall(evaluators: Record<Variant, Evaluator>, call: Call): Promise<CallVerdict> {
  const variant = variantOf(call);
  const ev = evaluators[variant];
  const principal = call.principal as Principal;
  const who = INSTANCE_PRINCIPALS.includes(principal) ? callerCluster(call) : { cluster: CLUSTER_SENTINEL, from: 'none' as const, conflicting: false };
  const denials: CallVerdict['denials'] = [];
  const ignored = new Set<string>();
  if (call.modelled === false) {
    denials.push({ resource: '*', decision: { allowed: false, result: 'NotModelled', detail: 'the emulator does not model its resources', ignoredKeys: [] } });
  } else {
    if (who.conflicting) {
      denials.push({ resource: '*', decision: { allowed: false, result: 'Error', detail: 'the call names parameters of several clusters', ignoredKeys: [] } });
    }
    for (const resource of call.resources) {
      const decision = await ev.evaluate({
        principal,
        cluster: who.cluster,
        action: call.action,
        ...keyOfTemplate(ev, call, queueOfTemplate(ev, call, resource)),
        account: call.account,
        region: call.region,
        context: call.context[resource] ?? {},
      });
      decision.ignoredKeys.forEach((k) => ignored.add(k));
      if (!decision.allowed) denials.push({ resource, decision });
    }
  }
  return { call, allowed: denials.length === 0, denials, clusterFromResource: who.from === 'resource', ignoredKeys: [...ignored], variant };
}

export function isDeployed(principal: string): principal is Principal {
  return (PRINCIPALS as readonly string[]).includes(principal);
}
