// Evaluates one AWS request against a principal's identity policy (and, for KMS keys, the key
// policy) with @cloud-copilot/iam-simulate (AGPL-3.0: a test-only dev dependency, never deployed).
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { CLUSTER_SENTINEL, PARAMETER_PREFIX, Env, Policies, PolicyDocument, Principal } from './policies';

/**
 * Which synthesis a request is evaluated against: the default (each cluster stack has its own
 * key), or the opt-out clusterKmsKey=false (the account's aws/ssm key).
 */
/**
 * Which synthesis a request is evaluated against: the cluster's own key (default) or aws/ssm
 * (clusterKmsKey=false), each in the shared join mode or in joinMode=per-instance.
 */
export type Variant = 'default' | 'awsSsm' | 'perInstance' | 'perInstanceAwsSsm';
export const VARIANTS: readonly Variant[] = ['default', 'awsSsm', 'perInstance', 'perInstanceAwsSsm'];

/** The tag CloudFormation gives the cluster stack's key (every resource of the stack has it). */
export const KEY_CLUSTER_TAG = 'aws:ResourceTag/joinkeeper:cluster';

export interface Request {
  readonly principal: Principal;
  /** The caller's cluster (instance roles are per cluster); ignored for the functions. */
  readonly cluster?: string;
  readonly action: string;
  readonly resource: string;
  readonly account: string;
  readonly region: string;
  readonly context: Record<string, string | string[]>;
  /**
   * Another identity policy in place of the principal's synthesized one (its role ARN kept
   * unless given): a principal of the account with broader permissions than joinkeeper grants,
   * to show what a key policy alone refuses.
   */
  readonly identity?: { readonly roleArn?: string; readonly policy: PolicyDocument };
  /** The cluster whose stack made the KMS key named (when known from its tag). */
  readonly keyCluster?: string;
}

export interface Decision {
  readonly allowed: boolean;
  /** Allowed, ImplicitlyDenied, ExplicitlyDenied, or Error (the simulator refused the request). */
  readonly result: string;
  readonly detail?: string;
  /** Context keys the simulator does not know for this action (they cannot have mattered). */
  readonly ignoredKeys: readonly string[];
}

/**
 * iam-simulate 0.1.x does not match `kms:EncryptionContext:<key>` (its variable part follows a
 * colon, not a slash): it drops such a context key and a condition on it never matches. Both
 * sides are renamed to a key it does handle, with the same type (a single string).
 */
const EC_KEY = /^kms:EncryptionContext:(.+)$/i;
export const EC_SURROGATE = 'aws:RequestTag/kms-encryption-context-';

function renameEcKey(key: string): string {
  const m = EC_KEY.exec(key);
  return m ? `${EC_SURROGATE}${m[1]}` : key;
}

function renamePolicy(policy: PolicyDocument): PolicyDocument {
  return {
    ...policy,
    Statement: policy.Statement.map((st) =>
      st.Condition
        ? { ...st, Condition: Object.fromEntries(Object.entries(st.Condition).map(([op, block]) => [op, Object.fromEntries(Object.entries(block).map(([k, v]) => [renameEcKey(k), v]))])) }
        : st,
    ),
  };
}

/**
 * The key policy of the AWS managed key aws/ssm (what AWS gives every account): any principal of
 * the account may use it through SSM. Only an identity policy's explicit Deny stops that.
 */
export function awsSsmKeyPolicy(account: string, region: string): PolicyDocument {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'Allow access through SSM for all principals in the account that are authorized to use SSM',
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:CreateGrant', 'kms:DescribeKey'],
        Resource: '*',
        Condition: { StringEquals: { 'kms:CallerAccount': account, 'kms:ViaService': `ssm.${region}.amazonaws.com` } },
      },
      {
        Sid: 'Allow direct access to key metadata to the account',
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${account}:root` },
        Action: ['kms:Describe*', 'kms:Get*', 'kms:List*', 'kms:RevokeGrant'],
        Resource: '*',
      },
    ],
  };
}

/** The AWS managed key aws/ssm (by its alias, as the emulator records it, or its stand-in ARN). */
export function isAwsSsmKey(resource: string, context: Record<string, unknown>): boolean {
  const aliases = context['kms:ResourceAliases'];
  return [aliases ?? []].flat().includes('alias/aws/ssm') || resource.endsWith(':alias/aws/ssm') || resource.endsWith('/aws-ssm');
}

/** The parameter a KMS request through SSM is for, from its encryption context. */
export function kmsParameterArn(context: Record<string, unknown>): string | undefined {
  const k = Object.keys(context).find((key) => /^kms:EncryptionContext:PARAMETER_ARN$/i.test(key));
  return k ? String(context[k]) : undefined;
}

/** `<prefix>/<cluster>/...` → cluster, for a parameter ARN (or undefined). */
export function clusterOfParameterArn(arn: string): string | undefined {
  const m = /^arn:aws:ssm:[^:]*:[^:]*:parameter(\/.*)$/.exec(arn);
  if (!m || !m[1].startsWith(`${PARAMETER_PREFIX}/`)) return undefined;
  return m[1].slice(PARAMETER_PREFIX.length + 1).split('/')[0] || undefined;
}

export class Evaluator {
  constructor(private readonly policies: Policies) {}

  async evaluate(r: Request): Promise<Decision> {
    const env: Env = { account: r.account, region: r.region };
    const cluster = r.cluster ?? CLUSTER_SENTINEL;
    const synthesized = this.policies.of(r.principal, env, cluster);
    const identity = r.identity ? { roleArn: r.identity.roleArn ?? synthesized.roleArn, policy: r.identity.policy } : synthesized;
    let resourcePolicy: PolicyDocument | undefined;
    if (r.resource.startsWith('arn:aws:kms:')) {
      resourcePolicy = this.keyPolicy(r, env);
      if (!resourcePolicy) return { allowed: false, result: 'Error', detail: `no key policy known for ${r.resource}`, ignoredKeys: [] };
    }
    // A group that does not exist has no id in its ARN (`:*:`); IAM still evaluates the name.
    const resource = r.resource.replace(/:autoScalingGroup:\*:/, ':autoScalingGroup:00000000-0000-0000-0000-000000000000:');
    const context = Object.fromEntries(Object.entries(r.context).map(([k, v]) => [renameEcKey(k), v]));
    const accountOfResource = /^arn:aws:[^:]*:[^:]*:([0-9]{12}):/.exec(resource)?.[1] ?? r.account;
    const response = await runSimulation(
      {
        request: { principal: identity.roleArn, action: r.action, resource: { resource, accountId: accountOfResource }, contextVariables: context },
        identityPolicies: [{ name: `${r.principal}-policy`, policy: renamePolicy(identity.policy) }],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        resourcePolicy: resourcePolicy && renamePolicy(resourcePolicy),
      },
      {},
    );
    if (response.resultType === 'error') {
      return { allowed: false, result: 'Error', detail: JSON.stringify(response.errors).slice(0, 300), ignoredKeys: [] };
    }
    if (response.resultType !== 'single') {
      return { allowed: false, result: 'Error', detail: `resource ${resource} is a pattern, not one resource`, ignoredKeys: [] };
    }
    const ignored = ((response.result as { ignoredContextKeys?: string[] }).ignoredContextKeys ?? []).filter((k) => !/^aws:RequestedRegion$/i.test(k));
    return { allowed: response.overallResult === 'Allowed', result: response.overallResult, ignoredKeys: ignored };
  }

  /** The ARN of `cluster`'s own key in this synthesis (undefined without clusterKmsKey). */
  /** The account stack's queue with this logical id prefix (LifecycleEvents, LifecycleDeadLetters). */
  accountQueueArn(account: string, region: string, prefix: string): string | undefined {
    return this.policies.accountQueueArn({ account, region }, prefix);
  }

  clusterKeyArn(account: string, region: string, cluster: string): string | undefined {
    return this.policies.clusterKeyPolicy({ account, region }, cluster)?.keyArn;
  }

  /** The key's policy: the cluster's own key (clusterKmsKey), else the AWS managed aws/ssm key. */
  private keyPolicy(r: Request, env: Env): PolicyDocument | undefined {
    const param = kmsParameterArn(r.context);
    for (const cluster of new Set([r.keyCluster, r.cluster, param && clusterOfParameterArn(param)].filter((c): c is string => !!c))) {
      const own = this.policies.clusterKeyPolicy(env, cluster);
      if (own && own.keyArn === r.resource) return own.policy;
    }
    return isAwsSsmKey(r.resource, r.context) ? awsSsmKeyPolicy(r.account, r.region) : undefined;
  }
}
