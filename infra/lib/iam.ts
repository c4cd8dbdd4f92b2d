// Least-privilege IAM statements for the joinkeeper functions and the cluster's instance roles.
//
// infra/README.md ("Permissions") has one row per statement below and the call that needs it;
// scripts/iam-check.ts checks that table against the synthesized templates and evaluates every
// AWS call the tests and the demo recorded against these statements.
//
// What IAM can and cannot say here: a SendCommand request is authorized once per resource it
// names — the document, then each instance — so a policy can restrict the documents and the
// instances, but cannot tie a given document to a given kind of instance. The control-plane
// documents do nothing useful on a worker (no admin kubeconfig there).
import { Stack, ArnFormat } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { TAG_CLUSTER, TAG_ROLE, ROLE_CONTROL_PLANE, ROLE_WORKER } from './tags';

/** Names of a cluster's parameters under the prefix (docs/contracts.md). */
export const PARAMETER_NAMES = {
  record: 'join-record',
  meta: 'join-record-meta',
  controlPlaneJoin: 'control-plane-join',
  leases: 'leases',
  /** The rogue check's mode, set by the cluster's operator (report, cordon, delete). */
  rogueNodes: 'rogue-nodes',
  /** How workers join (shared, per-instance), written by the cluster stack. */
  joinMode: 'join-mode',
  /** Per-instance join records: `join/<instance-id>`, tagged joinkeeper:instance=<instance ARN>. */
  instanceRecords: 'join',
  /** Workers leaving by a door without a hook: `exits/<instance-id>` (shared/src/exits). */
  exits: 'exits',
} as const;

/** The tag of a per-instance record naming the one instance that may read it (by its ARN). */
export const TAG_INSTANCE = 'joinkeeper:instance';

/**
 * The functions' actions that have no resource-level permissions ("*" is the only resource IAM
 * accepts for them): following Run Command (CancelCommand: a command past its deadline is
 * cancelled on its instance), and discovery by tag with the instance and group state the
 * decisions need.
 */
export const FOLLOW_COMMAND_ACTIONS = [
  'ssm:GetCommandInvocation',
  'ssm:ListCommandInvocations',
  'ssm:ListCommands',
  'ssm:CancelCommand',
  'ssm:DescribeInstanceInformation',
] as const;
export const DISCOVERY_ACTIONS = [
  'ec2:DescribeInstances',
  'autoscaling:DescribeAutoScalingGroups',
  // The batch's groups by their tags alone (no instance lists).
  'autoscaling:DescribeTags',
  'autoscaling:DescribeAutoScalingInstances',
  'autoscaling:DescribeLifecycleHooks',
  'autoscaling:DescribeWarmPool',
  // When a launch's wait began (an instance out of a Running warm pool keeps its LaunchTime).
  'autoscaling:DescribeScalingActivities',
] as const;

export interface FunctionGrants {
  /** SSM document names this function may run. */
  readonly documents: readonly string[];
  readonly parameterPrefix: string;
}

/** `arn:…:ssm:<region>:<account>:parameter/<name>` for a parameter name without its leading slash. */
export function parameterArn(stack: Stack, name: string): string {
  return stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name.replace(/^\//, ''), arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
}

/** `<prefix>/<cluster>/<name>` (cluster may be `*`) as a parameter ARN. */
export function clusterParameterArn(stack: Stack, prefix: string, cluster: string, name: string): string {
  return parameterArn(stack, `${prefix}/${cluster}/${name}`);
}

export function documentArn(stack: Stack, documentName: string): string {
  return stack.formatArn({ service: 'ssm', resource: 'document', resourceName: documentName, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
}

export function instanceArnPattern(stack: Stack): string {
  return stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
}

export function anyKeyArn(stack: Stack): string {
  return stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
}

/** Conditions under which SSM may use a key for the parameters matching `parameterArnPattern`. */
export function viaSsmConditions(stack: Stack, parameterArnPattern: string): Record<string, Record<string, string>> {
  return {
    StringEquals: { 'kms:ViaService': `ssm.${stack.region}.amazonaws.com` },
    StringLike: { 'kms:EncryptionContext:PARAMETER_ARN': parameterArnPattern },
  };
}

/** KMS use through SSM only, only for SecureStrings matching `parameterArnPattern`. */
export function parameterKeyStatement(stack: Stack, sid: string, actions: string[], parameterArnPattern: string, keyArn?: string): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid,
    actions,
    resources: [keyArn ?? anyKeyArn(stack)],
    conditions: viaSsmConditions(stack, parameterArnPattern),
  });
}

export function functionStatements(stack: Stack, g: FunctionGrants): iam.PolicyStatement[] {
  const prefix = g.parameterPrefix;
  return [
    new iam.PolicyStatement({
      sid: 'SendJoinkeeperDocuments',
      actions: ['ssm:SendCommand'],
      resources: g.documents.map((d) => documentArn(stack, d)),
    }),
    new iam.PolicyStatement({
      // Control planes (regenerate, node-status, drain) and workers (join-log) of a cluster.
      sid: 'SendCommandToClusterInstances',
      actions: ['ssm:SendCommand'],
      resources: [instanceArnPattern(stack)],
      conditions: {
        StringEquals: { [`ssm:resourceTag/${TAG_ROLE}`]: [ROLE_CONTROL_PLANE, ROLE_WORKER] },
        Null: { [`ssm:resourceTag/${TAG_CLUSTER}`]: 'false' },
      },
    }),
    new iam.PolicyStatement({
      // No resource-level permissions: "*" is the only form IAM accepts.
      sid: 'FollowCommands',
      actions: [...FOLLOW_COMMAND_ACTIONS],
      resources: ['*'],
    }),
    new iam.PolicyStatement({
      // Single-flight leases (regenerate, reconcile, drain-<instance>) and their takeover markers.
      sid: 'Leases',
      actions: ['ssm:GetParameter', 'ssm:PutParameter', 'ssm:DeleteParameter'],
      resources: [clusterParameterArn(stack, prefix, '*', `${PARAMETER_NAMES.leases}/*`)],
    }),
    new iam.PolicyStatement({
      sid: 'ListLeases',
      actions: ['ssm:GetParametersByPath'],
      resources: [clusterParameterArn(stack, prefix, '*', PARAMETER_NAMES.leases)],
    }),
    new iam.PolicyStatement({
      // Exit records of workers leaving without a hook (Spot, rebalance, maintenance, stops,
      // Standby, detach): written by the exit events' handler and the reconcile pass.
      sid: 'ExitRecords',
      actions: ['ssm:GetParameter', 'ssm:PutParameter', 'ssm:DeleteParameter'],
      resources: [clusterParameterArn(stack, prefix, '*', `${PARAMETER_NAMES.exits}/*`)],
    }),
    new iam.PolicyStatement({
      sid: 'ListExitRecords',
      actions: ['ssm:GetParametersByPath'],
      resources: [clusterParameterArn(stack, prefix, '*', PARAMETER_NAMES.exits)],
    }),
    new iam.PolicyStatement({
      // Per-instance mode: the scheduled sweep lists the names of the records of instances no
      // longer waiting (never decrypted: NeverDecrypt below), to revoke what a lost run left.
      sid: 'ListInstanceJoinRecords',
      actions: ['ssm:GetParametersByPath'],
      resources: [clusterParameterArn(stack, prefix, '*', PARAMETER_NAMES.instanceRecords)],
    }),
    new iam.PolicyStatement({
      // The record's metadata, the record itself read WITHOUT decryption (its version only), and
      // the rogue check's mode (a String the cluster's operator writes).
      sid: 'ReadJoinRecordMetadata',
      actions: ['ssm:GetParameter'],
      resources: [
        clusterParameterArn(stack, prefix, '*', PARAMETER_NAMES.meta),
        clusterParameterArn(stack, prefix, '*', PARAMETER_NAMES.record),
        clusterParameterArn(stack, prefix, '*', PARAMETER_NAMES.rogueNodes),
        clusterParameterArn(stack, prefix, '*', PARAMETER_NAMES.joinMode),
      ],
    }),
    new iam.PolicyStatement({
      // The account's aws/ssm key lets every principal of the account decrypt through SSM, so
      // GetParameter(WithDecryption=true) on the record would succeed without this explicit deny.
      sid: 'NeverDecrypt',
      effect: iam.Effect.DENY,
      actions: ['kms:Decrypt'],
      resources: ['*'],
    }),
    new iam.PolicyStatement({
      sid: 'CompleteJoinkeeperLifecycleActions',
      actions: ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'],
      resources: [stack.formatArn({ service: 'autoscaling', resource: 'autoScalingGroup', resourceName: '*:autoScalingGroupName/*', arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
      conditions: {
        Null: { [`aws:ResourceTag/${TAG_CLUSTER}`]: 'false' },
        StringEquals: { [`aws:ResourceTag/${TAG_ROLE}`]: ROLE_WORKER },
      },
    }),
    new iam.PolicyStatement({
      // JOINKEEPER_MAINTENANCE_REPLACE: a drained worker with scheduled maintenance is marked
      // unhealthy so its group replaces it through its hooks; only in groups tagged as workers.
      sid: 'ReplaceWorkersBeforeMaintenance',
      actions: ['autoscaling:SetInstanceHealth'],
      resources: [stack.formatArn({ service: 'autoscaling', resource: 'autoScalingGroup', resourceName: '*:autoScalingGroupName/*', arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
      conditions: {
        Null: { [`aws:ResourceTag/${TAG_CLUSTER}`]: 'false' },
        StringEquals: { [`aws:ResourceTag/${TAG_ROLE}`]: ROLE_WORKER },
      },
    }),
    new iam.PolicyStatement({
      // Discovery by tag and the instance/group state the decisions need; Describe* calls have
      // no resource-level permissions.
      sid: 'DiscoverClusters',
      actions: [...DISCOVERY_ACTIONS],
      resources: ['*'],
    }),
  ];
}

/**
 * What the SSM agent itself needs (AmazonSSMManagedInstanceCore without its Parameter Store
 * actions, which it grants on every parameter of the account). None of these has a resource
 * that names another cluster's secret.
 */
export function ssmAgentStatement(): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'SsmAgent',
    actions: [
      'ssm:DescribeAssociation',
      'ssm:GetDeployablePatchSnapshotForInstance',
      'ssm:GetDocument',
      'ssm:DescribeDocument',
      'ssm:GetManifest',
      'ssm:ListAssociations',
      'ssm:ListInstanceAssociations',
      'ssm:PutInventory',
      'ssm:PutComplianceItems',
      'ssm:PutConfigurePackageResult',
      'ssm:UpdateAssociationStatus',
      'ssm:UpdateInstanceAssociationStatus',
      'ssm:UpdateInstanceInformation',
      'ssmmessages:CreateControlChannel',
      'ssmmessages:CreateDataChannel',
      'ssmmessages:OpenControlChannel',
      'ssmmessages:OpenDataChannel',
      'ec2messages:AcknowledgeMessage',
      'ec2messages:DeleteMessage',
      'ec2messages:FailMessage',
      'ec2messages:GetEndpoint',
      'ec2messages:GetMessages',
      'ec2messages:SendReply',
    ],
    resources: ['*'],
  });
}

export interface InstanceGrants {
  readonly parameterPrefix: string;
  readonly clusterName: string;
  /** The cluster's customer managed key; default: whichever key SSM uses (aws/ssm). */
  readonly keyArn?: string;
}

/** Control planes: their own cluster's record, meta and certificate key, nothing of other clusters. */
export function controlPlaneStatements(stack: Stack, g: InstanceGrants & { uploadCertsDocument: string }): iam.PolicyStatement[] {
  const p = (name: string) => clusterParameterArn(stack, g.parameterPrefix, g.clusterName, name);
  return [
    new iam.PolicyStatement({
      // publish/regenerate write the record and its meta; upload-certs writes, HA peers read and
      // delete the certificate key.
      sid: 'ClusterParameters',
      actions: ['ssm:GetParameter', 'ssm:PutParameter', 'ssm:DeleteParameter'],
      resources: [p(PARAMETER_NAMES.record), p(PARAMETER_NAMES.meta), p(PARAMETER_NAMES.controlPlaneJoin)],
    }),
    new iam.PolicyStatement({
      // regenerate reads the record's history to revoke old tokens after a grace period.
      sid: 'JoinRecordHistory',
      actions: ['ssm:GetParameterHistory'],
      resources: [p(PARAMETER_NAMES.record)],
    }),
    new iam.PolicyStatement({
      // Per-instance mode: node-status mints a token per waiting worker and writes its record
      // (create-only, tagged with the instance's ARN), checks (GetParameters, no decryption) and
      // deletes it when the wait ends (DeleteParameters, 10 a call; DeleteParameter to replace a
      // leftover). The tags go on at creation only (ssm:AddTagsToResource is what PutParameter
      // with Tags needs).
      sid: 'InstanceJoinRecords',
      actions: ['ssm:PutParameter', 'ssm:DeleteParameter', 'ssm:DeleteParameters', 'ssm:GetParameters', 'ssm:AddTagsToResource'],
      resources: [p(`${PARAMETER_NAMES.instanceRecords}/*`)],
    }),
    parameterKeyStatement(stack, 'ClusterSecureStrings', ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'], p('*'), g.keyArn),
    new iam.PolicyStatement({
      // node-status falls back to private DNS names; request-certs finds a peer control plane.
      sid: 'InstanceLookups',
      actions: ['ec2:DescribeInstances'],
      resources: ['*'],
    }),
    new iam.PolicyStatement({
      // A control plane joining later asks a healthy peer of its own cluster for a fresh key.
      sid: 'RequestCertificateUpload',
      actions: ['ssm:SendCommand'],
      resources: [documentArn(stack, g.uploadCertsDocument)],
    }),
    new iam.PolicyStatement({
      sid: 'RequestCertificateUploadFromPeers',
      actions: ['ssm:SendCommand'],
      resources: [instanceArnPattern(stack)],
      conditions: {
        StringEquals: { [`ssm:resourceTag/${TAG_CLUSTER}`]: g.clusterName, [`ssm:resourceTag/${TAG_ROLE}`]: ROLE_CONTROL_PLANE },
      },
    }),
    new iam.PolicyStatement({
      // No resource-level permissions.
      sid: 'FollowCertificateUpload',
      actions: ['ssm:GetCommandInvocation'],
      resources: ['*'],
    }),
    ssmAgentStatement(),
  ];
}

/**
 * Workers, shared mode: their own cluster's join record (decrypted), nothing else from Parameter
 * Store. Per-instance mode: only the record of their own instance, `join/<instance-id>`, whose
 * tag joinkeeper:instance must equal the calling role session's `ec2:SourceInstanceARN` (the
 * instance the credentials were delivered to; a global condition key, usable as a policy
 * variable); never the shared record.
 */
export function workerStatements(stack: Stack, g: InstanceGrants & { joinMode: 'shared' | 'per-instance' }): iam.PolicyStatement[] {
  if (g.joinMode === 'per-instance') {
    const own = clusterParameterArn(stack, g.parameterPrefix, g.clusterName, `${PARAMETER_NAMES.instanceRecords}/*`);
    return [
      new iam.PolicyStatement({
        sid: 'ReadOwnJoinRecord',
        actions: ['ssm:GetParameter'],
        resources: [own],
        conditions: { StringEquals: { [`ssm:resourceTag/${TAG_INSTANCE}`]: '${ec2:SourceInstanceARN}' } },
      }),
      parameterKeyStatement(stack, 'DecryptOwnJoinRecord', ['kms:Decrypt'], own, g.keyArn),
      ssmAgentStatement(),
    ];
  }
  const record = clusterParameterArn(stack, g.parameterPrefix, g.clusterName, PARAMETER_NAMES.record);
  return [
    new iam.PolicyStatement({ sid: 'ReadJoinRecord', actions: ['ssm:GetParameter'], resources: [record] }),
    parameterKeyStatement(stack, 'DecryptJoinRecord', ['kms:Decrypt'], record, g.keyArn),
    ssmAgentStatement(),
  ];
}

/**
 * The node scripts asset: `s3:GetObject` on its one object (HeadObject, which `aws s3 cp` sends
 * first, is authorized as GetObject too). Nothing else of the CDK assets bucket, which holds every
 * asset and template of every CDK app of the account and Region; no `s3:List*`. The bootstrap
 * bucket's key (aws/s3, or the bootstrap's own key) admits the account's principals through S3 by
 * its key policy, so no KMS statement is needed.
 */
export function nodeScriptsReadStatement(objectArn: string): iam.PolicyStatement {
  return new iam.PolicyStatement({ sid: 'NodeScriptsAsset', actions: ['s3:GetObject'], resources: [objectArn] });
}

/** Key administration without use: the account can manage the cluster's key but not decrypt with it. */
export const KEY_ADMIN_ACTIONS = [
  'kms:CancelKeyDeletion',
  'kms:CreateAlias',
  'kms:DeleteAlias',
  'kms:DescribeKey',
  'kms:DisableKey',
  'kms:DisableKeyRotation',
  'kms:EnableKey',
  'kms:EnableKeyRotation',
  'kms:GetKeyPolicy',
  'kms:GetKeyRotationStatus',
  'kms:ListAliases',
  'kms:ListGrants',
  'kms:ListKeyPolicies',
  'kms:ListResourceTags',
  'kms:PutKeyPolicy',
  'kms:RevokeGrant',
  'kms:ScheduleKeyDeletion',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:UpdateAlias',
  'kms:UpdateKeyDescription',
];
