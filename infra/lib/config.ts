// Context values of the joinkeeper CDK app, their defaults and their validation.
//
// Every value can be given with `cdk ... -c name=value` (a string) or in cdk.json (typed).
// README.md lists them; keep the two in step. The values that become the functions'
// environment are validated against settings.json, which the functions' own table
// (shared/src/config/settings.rs) writes: the defaults, ranges and "below" rules are theirs.
import { Node } from 'constructs';
import table from './settings.json';
import eventSource from './event-source.json';

/** Cluster names, as in docs/contracts.md. */
export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** The parameter prefix: a slash, then path segments, no trailing slash (the Rust side checks the same). */
export const PARAMETER_PREFIX_PATTERN = /^\/[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;
/** SSM document names (AWS: 3-128 of letters, digits, `_ - .`); we keep a short prefix. */
export const DOCUMENT_PREFIX_PATTERN = /^[A-Za-z0-9_.-]{3,100}$/;

/** One row of the functions' settings table (settings.json). */
export interface Setting {
  readonly name: string;
  readonly variable: string;
  readonly unit: string;
  readonly default: number | string | boolean;
  readonly min: number | null;
  readonly max: number | null;
  /** The value must be below this other setting's (its variable). */
  readonly below: string | null;
  /** The words a `choice` setting takes. */
  readonly choices?: readonly string[];
  readonly description: string;
}

/** The functions' settings, by their name in the table (`token_ttl`, `command_deadline`, ...). */
export const SETTINGS: Readonly<Record<string, Setting>> = Object.fromEntries(
  (table.settings as Setting[]).map((s) => [s.name, s]),
);

/** The context value that sets each of the functions' numeric settings. */
export const SETTING_CONTEXT = {
  token_ttl: 'tokenTtlSeconds',
  refresh_margin: 'refreshMarginSeconds',
  command_deadline: 'commandDeadlineSeconds',
  command_poll: 'commandPollMillis',
  join_deadline: 'joinDeadlineSeconds',
  drain_timeout: 'drainTimeoutSeconds',
  deregistration_delay: 'deregistrationDelaySeconds',
  drain_concurrency: 'drainConcurrency',
  node_poll: 'nodePollSeconds',
  maintenance_lead: 'maintenanceLeadSeconds',
} as const;

/** The context value that sets each of the functions' word and boolean settings (set only when given). */
export const CHOICE_CONTEXT = {
  rebalance_action: 'rebalanceAction',
  standby_action: 'standbyAction',
  maintenance_replace: 'maintenanceReplace',
} as const;

export type Architecture = 'arm64' | 'x86_64';
export type ControlPlaneMode = 'single' | 'ha';
export type Installer = 'kubeadm' | 'kurl';
export type WarmPoolState = 'Stopped' | 'Running' | 'Hibernated';
/** How workers join: one shared record, or one token per worker (README.md, "Join modes"). */
export type JoinMode = 'shared' | 'per-instance';

/** Settings both stacks share (the functions and the lifecycle hooks must agree on them). */
export interface CommonConfig {
  /** `JOINKEEPER_PARAMETER_PREFIX`, default `/joinkeeper`. */
  readonly parameterPrefix: string;
  /** `JOINKEEPER_TOKEN_TTL_SECONDS`, default 7200 (2 h). */
  readonly tokenTtlSeconds: number;
  /** `JOINKEEPER_JOIN_DEADLINE_SECONDS`, default 900. */
  readonly joinDeadlineSeconds: number;
  /** `JOINKEEPER_DRAIN_TIMEOUT_SECONDS`, default 300. */
  readonly drainTimeoutSeconds: number;
  /**
   * Lifecycle hook names start with this; the event rules match on it and the functions
   * (`JOINKEEPER_HOOK_PREFIX`) complete only such hooks. Default `joinkeeper-`.
   */
  readonly hookNamePrefix: string;
  /**
   * Names of the SSM documents are `<documentPrefix>-regenerate` etc.; default `joinkeeper`. The
   * account stack creates them; the cluster stack's control planes may run `-upload-certs` on a peer.
   */
  readonly documentPrefix: string;
}

export interface AccountConfig extends CommonConfig {
  /** Where `cargo lambda build` left `<function>/bootstrap`; default `../target/lambda`. */
  readonly functionsDir: string;
  /** Where the SSM document JSON files are; default `../node-scripts/documents`. */
  readonly documentsDir: string;
  /** Lambda architecture; default: read from the built `bootstrap`, else x86_64. */
  readonly architecture?: Architecture;
  readonly refreshMarginSeconds: number;
  readonly commandDeadlineSeconds: number;
  readonly commandPollMillis: number;
  readonly rustLog: string;
  /** How often the refresher (a whole reconcile of every cluster) runs, minutes; default 10. */
  readonly refreshIntervalMinutes: number;
  /** Retention of the functions' log groups, days; default 30. */
  readonly logRetentionDays: number;
  /** Optional: also require the Auto Scaling group name to start with this in the event rules. */
  readonly groupNamePrefix?: string;
  /** Optional: e-mail address subscribed to the alarm topic. */
  readonly alarmEmail?: string;
  /** Alarm when a join record has less than this left, seconds; default refreshMargin / 2. */
  readonly expiryAlarmSeconds: number;
  /** Optional `JOINKEEPER_NODE_POLL_SECONDS` (the functions' default otherwise). */
  readonly nodePollSeconds?: number;
  /** `JOINKEEPER_DEREGISTRATION_DELAY_SECONDS`, default 0: set it to the target groups' delay. */
  readonly deregistrationDelaySeconds: number;
  /** `JOINKEEPER_DRAIN_CONCURRENCY`, default 4: drains at once per cluster. */
  readonly drainConcurrency: number;
  /**
   * Optional `JOINKEEPER_CONTROL_PLANE_PROFILES`: `<cluster>=<instance profile ARN>,...` for
   * clusters whose control planes the cluster stack did not make. Only the deployer sets it.
   */
  readonly controlPlaneProfiles?: string;
  /**
   * Optional exits settings (README, "Exits"), each set only when given:
   * `JOINKEEPER_REBALANCE_ACTION`, `JOINKEEPER_STANDBY_ACTION`, `JOINKEEPER_MAINTENANCE_LEAD_SECONDS`,
   * `JOINKEEPER_MAINTENANCE_REPLACE`, by variable name.
   */
  readonly exitSettings: Readonly<Record<string, string>>;
  /** Lifecycle queue → functions: messages per batch (1–10,000); default 100. */
  readonly eventBatchSize: number;
  /** Lifecycle queue → functions: longest wait to fill a batch, seconds (0–300); default 5. */
  readonly eventBatchWindowSeconds: number;
}

export interface ClusterConfig extends CommonConfig {
  readonly clusterName: string;
  readonly controlPlaneMode: ControlPlaneMode;
  readonly installer: Installer;
  /** Kubernetes minor version for pkgs.k8s.io (kubeadm mode), e.g. `1.32`. */
  readonly kubernetesVersion: string;
  /** kURL installer URL (kurl mode), e.g. `https://kurl.sh/latest`. */
  readonly kurlInstallerUrl: string;
  /** Pod network manifest applied after `kubeadm init` (kubeadm mode); default flannel. */
  readonly cniManifestUrl: string;
  readonly podCidr: string;
  /** Instance architecture of the nodes; default x86_64. */
  readonly nodeArchitecture: Architecture;
  readonly controlPlaneInstanceType: string;
  readonly workerInstanceType: string;
  readonly workerMinCapacity: number;
  readonly workerMaxCapacity: number;
  readonly vpcCidr: string;
  readonly natGateways: number;
  /** Where the node-side scripts are; default `../node-scripts`. */
  readonly nodeScriptsDir: string;
  /**
   * IMDSv2 hop limit of the workers; default 1, so that pods (one network hop further) cannot
   * fetch the worker role's credentials. 2 opts out (README.md, "Instance metadata").
   */
  readonly workerImdsHopLimit: number;
  /**
   * Create a customer managed KMS key for this cluster's SecureString parameters, whose key
   * policy admits only this cluster's instance roles, only through SSM; default true. false opts
   * out to the account's `aws/ssm` key, which every principal of the account may use through SSM.
   */
  readonly clusterKmsKey: boolean;
  /**
   * Minimum size of the worker group's warm pool; default 0: no warm pool. Its instances are
   * prepared (packages, node scripts) but join only when they leave the pool for service.
   */
  readonly warmPoolMinSize: number;
  /** State of the warm pool's instances; default Stopped. Hibernated configures hibernation. */
  readonly warmPoolState: WarmPoolState;
  /** Scale-in returns instances to the pool (drained, Node deleted) instead of terminating them; default false. */
  readonly warmPoolReuseOnScaleIn: boolean;
  /**
   * `shared` (default): every worker reads the cluster's join record. `per-instance`: each
   * waiting worker gets a token of its own, readable only by its instance, and its Node's
   * certificate is approved only under its own name; workers cannot read the shared record.
   */
  readonly joinMode: JoinMode;
}

export class ConfigError extends Error {}

function raw(node: Node, key: string): unknown {
  const v = node.tryGetContext(key);
  return v === '' ? undefined : v;
}

export function str(node: Node, key: string, dflt: string): string {
  const v = raw(node, key);
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string') throw new ConfigError(`context ${key}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function optStr(node: Node, key: string): string | undefined {
  const v = raw(node, key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ConfigError(`context ${key}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

export function int(node: Node, key: string, dflt: number, min: number, max: number): number {
  const v = raw(node, key);
  let n: number;
  if (v === undefined || v === null) n = dflt;
  else if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^-?[0-9]+$/.test(v.trim())) n = Number(v.trim());
  else throw new ConfigError(`context ${key}: expected an integer, got ${JSON.stringify(v)}`);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`context ${key}: ${n} is outside ${min}..${max}`);
  }
  return n;
}

export function bool(node: Node, key: string, dflt: boolean): boolean {
  const v = raw(node, key);
  if (v === undefined || v === null) return dflt;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`context ${key}: expected true or false, got ${JSON.stringify(v)}`);
}

function oneOf<T extends string>(node: Node, key: string, allowed: readonly T[], dflt: T | undefined): T | undefined {
  const v = optStr(node, key);
  if (v === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(`context ${key}: ${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
  }
  return v as T;
}

/** A numeric setting of the functions, within the table's range; `dflt` overrides its default. */
function setting(node: Node, name: keyof typeof SETTING_CONTEXT, dflt?: number): number {
  const s = SETTINGS[name];
  if (s === undefined || s.min === null || s.max === null) throw new Error(`settings.json has no numeric setting ${name}`);
  return int(node, SETTING_CONTEXT[name], dflt ?? (s.default as number), s.min, s.max);
}

/** The exits' settings given as context values, validated against the table, by variable. */
function exitSettings(node: Node): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, key] of Object.entries(CHOICE_CONTEXT)) {
    const s = SETTINGS[name];
    if (s === undefined) throw new Error(`settings.json has no setting ${name}`);
    if (raw(node, key) === undefined) continue;
    out[s.variable] = s.unit === 'bool' ? String(bool(node, key, false)) : (oneOf(node, key, s.choices ?? [], undefined) as string);
  }
  if (raw(node, SETTING_CONTEXT.maintenance_lead) !== undefined) {
    out[SETTINGS.maintenance_lead.variable] = String(setting(node, 'maintenance_lead'));
  }
  return out;
}

/** The table's "below" rule of a setting: its value must stay under another's. */
function below(name: keyof typeof SETTING_CONTEXT, value: number, values: Partial<Record<keyof typeof SETTING_CONTEXT, number>>) {
  const limit = SETTINGS[name].below;
  if (limit === null) return;
  const other = (Object.keys(SETTING_CONTEXT) as Array<keyof typeof SETTING_CONTEXT>).find((k) => SETTINGS[k].variable === limit);
  const bound = other === undefined ? undefined : values[other];
  if (other !== undefined && bound !== undefined && value >= bound) {
    throw new ConfigError(`context ${SETTING_CONTEXT[name]}: ${value} must be below ${SETTING_CONTEXT[other]} (${bound})`);
  }
}

function matching(node: Node, key: string, dflt: string, re: RegExp): string {
  const v = str(node, key, dflt);
  if (!re.test(v)) throw new ConfigError(`context ${key}: ${JSON.stringify(v)} does not match ${re}`);
  return v;
}

function common(node: Node): CommonConfig {
  const tokenTtlSeconds = setting(node, 'token_ttl');
  const joinDeadlineSeconds = setting(node, 'join_deadline');
  below('join_deadline', joinDeadlineSeconds, { token_ttl: tokenTtlSeconds });
  return {
    parameterPrefix: matching(node, 'parameterPrefix', SETTINGS.parameter_prefix.default as string, PARAMETER_PREFIX_PATTERN),
    tokenTtlSeconds,
    joinDeadlineSeconds,
    drainTimeoutSeconds: setting(node, 'drain_timeout'),
    hookNamePrefix: matching(node, 'hookNamePrefix', SETTINGS.hook_prefix.default as string, /^[A-Za-z0-9_.-]{1,200}$/),
    documentPrefix: matching(node, 'documentPrefix', 'joinkeeper', DOCUMENT_PREFIX_PATTERN),
  };
}

export function accountConfig(node: Node): AccountConfig {
  const c = common(node);
  // The default margin shrinks with a short TTL so that the default stays valid.
  const refreshMarginSeconds = setting(node, 'refresh_margin', Math.min(SETTINGS.refresh_margin.default as number, c.tokenTtlSeconds - 60));
  below('refresh_margin', refreshMarginSeconds, { token_ttl: c.tokenTtlSeconds });
  const groupNamePrefix = optStr(node, 'groupNamePrefix');
  if (groupNamePrefix !== undefined && !/^[A-Za-z0-9_.\-/ ]{1,200}$/.test(groupNamePrefix)) {
    throw new ConfigError(`context groupNamePrefix: ${JSON.stringify(groupNamePrefix)} is not a group name prefix`);
  }
  const controlPlaneProfiles = optStr(node, 'controlPlaneProfiles');
  const profilePair = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}=arn:aws[a-z-]*:iam::\d{12}:instance-profile\/[\w+=,.@\/-]{1,640}$/;
  if (controlPlaneProfiles !== undefined && !controlPlaneProfiles.split(',').every((p) => profilePair.test(p.trim()))) {
    throw new ConfigError(`context controlPlaneProfiles: ${JSON.stringify(controlPlaneProfiles)} is not <cluster>=<instance profile ARN>,...`);
  }
  if (raw(node, 'parameterKmsKeyArn') !== undefined) {
    // The functions never decrypt the join record any more (they read its metadata), so the
    // account stack has no key to name; a cluster's own key is the cluster stack's clusterKmsKey.
    throw new ConfigError('context parameterKmsKeyArn: no longer used; the functions never decrypt. Use clusterKmsKey=true on the cluster stack');
  }
  const alarmEmail = optStr(node, 'alarmEmail');
  if (alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+$/.test(alarmEmail)) {
    throw new ConfigError(`context alarmEmail: ${JSON.stringify(alarmEmail)} is not an e-mail address`);
  }
  const cfg: AccountConfig = {
    ...c,
    functionsDir: str(node, 'functionsDir', '../target/lambda'),
    documentsDir: str(node, 'documentsDir', '../node-scripts/documents'),
    architecture: oneOf(node, 'architecture', ['arm64', 'x86_64'] as const, undefined),
    refreshMarginSeconds,
    commandDeadlineSeconds: setting(node, 'command_deadline'),
    commandPollMillis: setting(node, 'command_poll'),
    rustLog: matching(node, 'rustLog', 'info', /^[A-Za-z0-9_=,:.-]{1,200}$/),
    refreshIntervalMinutes: int(node, 'refreshIntervalMinutes', 10, 1, 1440),
    logRetentionDays: int(node, 'logRetentionDays', 30, 1, 3653),
    groupNamePrefix,
    alarmEmail,
    expiryAlarmSeconds: int(node, 'expiryAlarmSeconds', Math.floor(refreshMarginSeconds / 2), 60, c.tokenTtlSeconds),
    nodePollSeconds: raw(node, 'nodePollSeconds') === undefined ? undefined : setting(node, 'node_poll'),
    deregistrationDelaySeconds: setting(node, 'deregistration_delay'),
    drainConcurrency: setting(node, 'drain_concurrency'),
    controlPlaneProfiles,
    exitSettings: exitSettings(node),
    eventBatchSize: int(node, 'eventBatchSize', eventSource.batchSize, 1, 10000),
    eventBatchWindowSeconds: int(node, 'eventBatchWindowSeconds', eventSource.batchWindowSeconds, 0, 300),
  };
  // Lambda requires a batching window of at least 1 s for batches above 10 messages.
  if (cfg.eventBatchSize > 10 && cfg.eventBatchWindowSeconds < 1) {
    throw new ConfigError('context eventBatchWindowSeconds: must be at least 1 when eventBatchSize is above 10');
  }
  // The refresh must have time to run at least twice inside the margin.
  if (cfg.refreshIntervalMinutes * 60 * 2 > cfg.refreshMarginSeconds) {
    throw new ConfigError('context refreshIntervalMinutes: must be at most half of refreshMarginSeconds');
  }
  return cfg;
}

export function clusterConfig(node: Node): ClusterConfig {
  const c = common(node);
  const nodeArchitecture = oneOf(node, 'nodeArchitecture', ['arm64', 'x86_64'] as const, 'x86_64')!;
  const defaultType = nodeArchitecture === 'arm64' ? 't4g.medium' : 't3.medium';
  const instanceType = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;
  const workerMinCapacity = int(node, 'workerMinCapacity', 1, 0, 1000);
  const workerMaxCapacity = int(node, 'workerMaxCapacity', 5, 1, 1000);
  if (workerMaxCapacity < workerMinCapacity) throw new ConfigError('context workerMaxCapacity: below workerMinCapacity');
  const warmPoolMinSize = int(node, 'warmPoolMinSize', 0, 0, 1000);
  for (const key of ['warmPoolState', 'warmPoolReuseOnScaleIn']) {
    if (warmPoolMinSize === 0 && raw(node, key) !== undefined) {
      throw new ConfigError(`context ${key}: needs a warm pool (warmPoolMinSize of 1 or more)`);
    }
  }
  return {
    ...c,
    clusterName: matching(node, 'clusterName', 'demo', CLUSTER_NAME_PATTERN),
    controlPlaneMode: oneOf(node, 'controlPlaneMode', ['single', 'ha'] as const, 'single')!,
    installer: oneOf(node, 'installer', ['kubeadm', 'kurl'] as const, 'kubeadm')!,
    kubernetesVersion: matching(node, 'kubernetesVersion', '1.32', /^1\.[0-9]{2}$/),
    kurlInstallerUrl: matching(node, 'kurlInstallerUrl', 'https://kurl.sh/latest', /^https:\/\/[A-Za-z0-9.-]+(\/[A-Za-z0-9._-]+)*$/),
    cniManifestUrl: matching(
      node,
      'cniManifestUrl',
      'https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml',
      /^https:\/\/[A-Za-z0-9.-]+(\/[A-Za-z0-9._-]+)*$/,
    ),
    podCidr: matching(node, 'podCidr', '10.244.0.0/16', /^[0-9]{1,3}(\.[0-9]{1,3}){3}\/[0-9]{1,2}$/),
    nodeArchitecture,
    controlPlaneInstanceType: matching(node, 'controlPlaneInstanceType', defaultType, instanceType),
    workerInstanceType: matching(node, 'workerInstanceType', defaultType, instanceType),
    workerMinCapacity,
    workerMaxCapacity,
    vpcCidr: matching(node, 'vpcCidr', '10.40.0.0/16', /^[0-9]{1,3}(\.[0-9]{1,3}){3}\/(1[6-9]|2[0-4])$/),
    natGateways: int(node, 'natGateways', 1, 1, 3),
    nodeScriptsDir: str(node, 'nodeScriptsDir', '../node-scripts'),
    workerImdsHopLimit: int(node, 'workerImdsHopLimit', 1, 1, 3),
    clusterKmsKey: bool(node, 'clusterKmsKey', true),
    warmPoolMinSize,
    warmPoolState: oneOf(node, 'warmPoolState', ['Stopped', 'Running', 'Hibernated'] as const, 'Stopped')!,
    warmPoolReuseOnScaleIn: bool(node, 'warmPoolReuseOnScaleIn', false),
    joinMode: oneOf(node, 'joinMode', ['shared', 'per-instance'] as const, 'shared')!,
  };
}

/** Names of the SSM documents for a document prefix (one per file in DOCUMENT_FILES). */
export function documentNames(documentPrefix: string) {
  return {
    regenerate: `${documentPrefix}-regenerate`,
    nodeStatus: `${documentPrefix}-node-status`,
    drain: `${documentPrefix}-drain`,
    joinLog: `${documentPrefix}-join-log`,
    nodes: `${documentPrefix}-nodes`,
    cordon: `${documentPrefix}-cordon`,
    uploadCerts: `${documentPrefix}-upload-certs`,
    // Operators only (`joinkeeper rotate --revoke-all`, with their own credentials).
    revokeTokens: `${documentPrefix}-revoke-tokens`,
  } as const;
}

/** Lifecycle hook names the cluster stack gives its worker group. */
export function hookNames(hookNamePrefix: string) {
  return { launch: `${hookNamePrefix}launch`, terminate: `${hookNamePrefix}terminate` } as const;
}

/** Heartbeat timeouts of the lifecycle hooks (seconds), derived from the deadlines. */
export function hookTimeouts(c: CommonConfig) {
  return {
    // Long enough that a worker is ABANDONed by joinkeeper at its join deadline, not by the
    // hook timing out first, even if no heartbeat is recorded; the function sends heartbeats too.
    launchHeartbeatSeconds: Math.min(7200, c.joinDeadlineSeconds + 300),
    // The drain runs under this plus the functions' heartbeats; the instance goes regardless.
    terminateHeartbeatSeconds: Math.min(7200, c.drainTimeoutSeconds + 300),
  };
}
