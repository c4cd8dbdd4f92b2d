// Requests the policies must deny (issue: "least privilege, proven") and, as a control that the
// evaluation is not denying everything, requests the design needs them to allow. Evaluated the
// same way as the recorded calls, for a caller in cluster `demo`; `other` is another cluster.
import { Request, Variant } from './evaluate';
import { DEFAULT_ACCOUNT as A, DEFAULT_REGION as R, Env, Policies, PolicyDocument, Principal } from './policies';

export interface Case {
  readonly name: string;
  /** Which synthesis: the default one (the cluster's own key), or clusterKmsKey=false (aws/ssm). */
  readonly variant: Variant;
  readonly request: Request;
}

/** What the cases need from the default synthesis. */
export interface Facts {
  /** The ARN of that cluster's own key. */
  readonly keyArn: (cluster: string) => string;
  /** The role ARN of that cluster's worker role. */
  readonly workerRoleArn: (cluster: string) => string;
  /** The object keys of the node scripts asset (what the user data downloads) and of a function's code. */
  readonly nodeScriptsKey: string;
  readonly functionCodeKey: string;
  /** The account stack's lifecycle queue and its dead-letter queue. */
  readonly lifecycleQueueArn: string;
  readonly deadLettersArn: string;
}

export function caseFacts(p: Policies, env: Env): Facts {
  return {
    keyArn: (cluster) => p.clusterKeyPolicy(env, cluster)!.keyArn,
    workerRoleArn: (cluster) => p.of('worker', env, cluster).roleArn,
    nodeScriptsKey: p.nodeScriptsAssetKey(),
    functionCodeKey: p.functionAssetKey(),
    lifecycleQueueArn: p.accountQueueArn(env, 'LifecycleEvents')!,
    deadLettersArn: p.accountQueueArn(env, 'LifecycleDeadLetters')!,
  };
}

const FUNCTIONS: Principal[] = ['token-refresher', 'launch-hook', 'terminate-hook'];
const param = (cluster: string, name: string) => `arn:aws:ssm:${R}:${A}:parameter/joinkeeper/${cluster}/${name}`;
const doc = (name: string) => `arn:aws:ssm:${R}:${A}:document/${name}`;
// AWS's own documents have no account in their ARN (arn:aws:ssm:R::document/AWS-...), which
// iam-simulate cannot match against a resource type; the same name in the account stands in.
const awsDoc = (name: string) => `arn:aws:ssm:${R}:${A}:document/${name}`;
const instance = `arn:aws:ec2:${R}:${A}:instance/i-0123456789abcdef0`;
const group = `arn:aws:autoscaling:${R}:${A}:autoScalingGroup:11111111-2222-3333-4444-555555555555:autoScalingGroupName/workers`;
const awsSsmKey = `arn:aws:kms:${R}:${A}:key/aws-ssm`;
const assetsBucket = `arn:aws:s3:::cdk-hnb659fds-assets-${A}-${R}`;
const asset = (key: string) => `${assetsBucket}/${key}`;
/** An identity policy broader than any joinkeeper grants: every KMS and SSM action on everything. */
const ADMIN: PolicyDocument = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['kms:*', 'ssm:*'], Resource: '*' }] };

function req(principal: Principal, action: string, resource: string, context: Record<string, string | string[]> = {}, cluster = 'demo'): Request {
  return { principal, cluster, action, resource, account: A, region: R, context: { 'aws:RequestedRegion': R, ...context } };
}

function viaSsm(parameterArn: string): Record<string, string | string[]> {
  return {
    'kms:ViaService': `ssm.${R}.amazonaws.com`,
    'kms:CallerAccount': A,
    'kms:EncryptionContext:PARAMETER_ARN': parameterArn,
    'kms:EncryptionContextKeys': ['PARAMETER_ARN'],
    'kms:ResourceAliases': ['alias/aws/ssm'],
  };
}

/** Through SSM with the cluster's own key (no alias). */
function ownKey(parameterArn: string): Record<string, string | string[]> {
  return { ...viaSsm(parameterArn), 'kms:ResourceAliases': [] };
}

function instanceTags(tags: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags)) {
    out[`aws:ResourceTag/${k}`] = v;
    out[`ssm:resourceTag/${k}`] = v;
    out[`ec2:ResourceTag/${k}`] = v;
  }
  return out;
}

function groupTags(tags: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags)) {
    out[`aws:ResourceTag/${k}`] = v;
    out[`autoscaling:ResourceTag/${k}`] = v;
  }
  return out;
}

const instanceArn = (id: string) => `arn:aws:ec2:${R}:${A}:instance/${id}`;
/** A per-instance record's tag: the one instance that may read it. */
function ownRecord(id: string): Record<string, string> {
  return { 'aws:ResourceTag/joinkeeper:instance': instanceArn(id), 'ssm:resourceTag/joinkeeper:instance': instanceArn(id) };
}
/** A call with the worker role's session on instance `id` (ec2:SourceInstanceARN names it). */
function perInstanceWorker(id: string) {
  return (action: string, resource: string, context: Record<string, string | string[]> = {}) =>
    req('worker', action, resource, { ...context, 'ec2:SourceInstanceARN': instanceArn(id) });
}

export function mustDeny(f: Facts): Case[] {
  const keyArn = f.keyArn;
  const cases: Case[] = [];
  const add = (name: string, request: Request, variant: Variant = 'default') => cases.push({ name, variant, request });
  const worker = (action: string, resource: string, context = {}) => req('worker', action, resource, context);
  const cp = (action: string, resource: string, context = {}) => req('control-plane', action, resource, context);

  // Workers: their own cluster's record only.
  add('a worker reads another cluster\'s join record', worker('ssm:GetParameter', param('other', 'join-record')));
  add('a worker reads its own cluster\'s certificate key (control-plane-join)', worker('ssm:GetParameter', param('demo', 'control-plane-join')));
  add('a worker reads another cluster\'s certificate key', worker('ssm:GetParameter', param('other', 'control-plane-join')));
  add('a worker writes its own join record', worker('ssm:PutParameter', param('demo', 'join-record')));
  add('a worker writes a lease', worker('ssm:PutParameter', param('demo', 'leases/regenerate')));
  add('a worker runs a command on a control plane', worker('ssm:SendCommand', instance, instanceTags({ 'joinkeeper:cluster': 'demo', 'joinkeeper:role': 'control-plane' })));
  add("a worker decrypts another cluster's record with that cluster's key", worker('kms:Decrypt', keyArn('other'), ownKey(param('other', 'join-record'))));
  add("a worker decrypts its own cluster's certificate key with the cluster key", worker('kms:Decrypt', keyArn('demo'), ownKey(param('demo', 'control-plane-join'))));
  // The key policy alone: principals outside the cluster, whatever their identity policy allows.
  add("another cluster's worker role, allowed kms:* and ssm:* on everything, decrypts this cluster's record with its key",
    { ...req('worker', 'kms:Decrypt', keyArn('demo'), ownKey(param('demo', 'join-record')), 'other'), identity: { roleArn: f.workerRoleArn('other'), policy: ADMIN } });
  add("an administrator role of the account (kms:* and ssm:* on everything) decrypts this cluster's record with its key",
    { ...req('worker', 'kms:Decrypt', keyArn('demo'), ownKey(param('demo', 'join-record'))), identity: { roleArn: `arn:aws:iam::${A}:role/Administrator`, policy: ADMIN } });
  add("this cluster's worker decrypts its record with its key, not through SSM", worker('kms:Decrypt', keyArn('demo'), { ...ownKey(param('demo', 'join-record')), 'kms:ViaService': `secretsmanager.${R}.amazonaws.com` }));

  // Per-instance join mode: a worker reads its own instance's record, and nothing else.
  const b = perInstanceWorker('i-0000000b');
  add("a worker (B) reads another worker's (A's) per-instance record", b('ssm:GetParameter', param('demo', 'join/i-0000000a'), ownRecord('i-0000000a')), 'perInstance');
  add("a worker (B) reads A's per-instance record under B's own name (the tag still names A)", b('ssm:GetParameter', param('demo', 'join/i-0000000b'), ownRecord('i-0000000a')), 'perInstance');
  add('credentials taken off the instance (no ec2:SourceInstanceARN) read its per-instance record', worker('ssm:GetParameter', param('demo', 'join/i-0000000a'), ownRecord('i-0000000a')), 'perInstance');
  add('a worker reads an untagged per-instance record', b('ssm:GetParameter', param('demo', 'join/i-0000000b')), 'perInstance');
  add('a per-instance worker reads the shared join record', b('ssm:GetParameter', param('demo', 'join-record')), 'perInstance');
  add("a per-instance worker decrypts the shared record with the cluster's key", b('kms:Decrypt', keyArn('demo'), ownKey(param('demo', 'join-record'))), 'perInstance');
  add('a per-instance worker writes its record', b('ssm:PutParameter', param('demo', 'join/i-0000000b')), 'perInstance');
  add("a control plane writes another cluster's per-instance record", cp('ssm:PutParameter', param('other', 'join/i-0000000a')), 'perInstance');
  // The CDK assets bucket: the node scripts asset, one object, read only.
  for (const [who, call] of [['worker', worker], ['control plane', cp]] as const) {
    add(`a ${who} reads another object of the assets bucket (a function's code)`, call('s3:GetObject', asset(f.functionCodeKey)));
    add(`a ${who} reads another app's template from the assets bucket`, call('s3:GetObject', asset('0f'.repeat(32) + '.json')));
    add(`a ${who} lists the assets bucket`, call('s3:ListBucket', assetsBucket));
    add(`a ${who} overwrites the node scripts asset`, call('s3:PutObject', asset(f.nodeScriptsKey)));
  }

  // Control planes: their own cluster's parameters only.
  for (const name of ['join-record', 'join-record-meta', 'control-plane-join']) {
    add(`a control plane writes another cluster's ${name}`, cp('ssm:PutParameter', param('other', name)));
    add(`a control plane deletes another cluster's ${name}`, cp('ssm:DeleteParameter', param('other', name)));
  }
  add("a control plane reads another cluster's certificate key", cp('ssm:GetParameter', param('other', 'control-plane-join')));
  add("a control plane reads another cluster's record history", cp('ssm:GetParameterHistory', param('other', 'join-record')));
  add("a control plane asks another cluster's control plane to upload certificates", cp('ssm:SendCommand', instance, instanceTags({ 'joinkeeper:cluster': 'other', 'joinkeeper:role': 'control-plane' })));
  add('a control plane runs a command on a worker of its cluster', cp('ssm:SendCommand', instance, instanceTags({ 'joinkeeper:cluster': 'demo', 'joinkeeper:role': 'worker' })));
  add('a control plane sends AWS-RunShellScript', cp('ssm:SendCommand', awsDoc('AWS-RunShellScript')));
  add('a control plane sends the regenerate document', cp('ssm:SendCommand', doc('joinkeeper-regenerate')));
  add("a control plane encrypts with another cluster's key", cp('kms:Encrypt', keyArn('other'), ownKey(param('other', 'join-record'))));

  // The lifecycle queue: read and deleted from by the lifecycle functions' event source mapping
  // only; EventBridge sends to it (its resource policy), no role does.
  const otherQueue = `arn:aws:sqs:${R}:${A}:ops-jobs`;
  for (const who of ['worker', 'control-plane', 'token-refresher', 'launch-hook', 'terminate-hook'] as const) {
    add(`${who} sends to the lifecycle queue`, req(who, 'sqs:SendMessage', f.lifecycleQueueArn));
    add(`${who} purges the lifecycle queue`, req(who, 'sqs:PurgeQueue', f.lifecycleQueueArn));
    add(`${who} changes the lifecycle queue's attributes`, req(who, 'sqs:SetQueueAttributes', f.lifecycleQueueArn));
  }
  for (const who of ['worker', 'control-plane', 'token-refresher'] as const) {
    add(`${who} receives from the lifecycle queue`, req(who, 'sqs:ReceiveMessage', f.lifecycleQueueArn));
    add(`${who} deletes from the lifecycle queue`, req(who, 'sqs:DeleteMessage', f.lifecycleQueueArn));
  }
  for (const who of ['launch-hook', 'terminate-hook'] as const) {
    add(`${who} receives from another queue of the account`, req(who, 'sqs:ReceiveMessage', otherQueue));
    add(`${who} deletes from another queue of the account`, req(who, 'sqs:DeleteMessage', otherQueue));
    add(`${who} receives from the lifecycle dead-letter queue`, req(who, 'sqs:ReceiveMessage', f.deadLettersArn));
  }

  for (const f of FUNCTIONS) {
    const fn = (action: string, resource: string, context = {}) => req(f, action, resource, context);
    add(`${f} writes a join record`, fn('ssm:PutParameter', param('demo', 'join-record')));
    add(`${f} deletes a join record`, fn('ssm:DeleteParameter', param('demo', 'join-record')));
    add(`${f} writes a join record's meta`, fn('ssm:PutParameter', param('demo', 'join-record-meta')));
    add(`${f} decrypts a join record (aws/ssm key)`, fn('kms:Decrypt', awsSsmKey, viaSsm(param('demo', 'join-record'))));
    add(`${f} decrypts a join record (the cluster's key)`, fn('kms:Decrypt', keyArn('demo'), ownKey(param('demo', 'join-record'))));
    add(`${f} reads a certificate key`, fn('ssm:GetParameter', param('demo', 'control-plane-join')));
    add(`${f} writes a parameter outside leases`, fn('ssm:PutParameter', param('demo', 'regenerate-lock')));
    add(`${f} sends AWS-RunShellScript`, fn('ssm:SendCommand', awsDoc('AWS-RunShellScript')));
    add(`${f} sends a document of the account that is not joinkeeper's`, fn('ssm:SendCommand', doc('ops-admin-shell')));
    add(`${f} sends another account's joinkeeper document`, fn('ssm:SendCommand', `arn:aws:ssm:${R}:210987654321:document/joinkeeper-node-status`));
    add(`${f} sends the control planes' upload-certs document`, fn('ssm:SendCommand', doc('joinkeeper-upload-certs')));
    add(`${f} sends a command to an untagged instance`, fn('ssm:SendCommand', instance));
    add(`${f} sends a command to an instance with a cluster tag but no role`, fn('ssm:SendCommand', instance, instanceTags({ 'joinkeeper:cluster': 'demo' })));
    add(`${f} sends a command to an instance with a role but no cluster tag`, fn('ssm:SendCommand', instance, instanceTags({ 'joinkeeper:role': 'worker' })));
    add(`${f} completes a lifecycle action of an untagged group`, fn('autoscaling:CompleteLifecycleAction', group));
    add(`${f} completes a lifecycle action of a group tagged for a cluster but not role=worker`, fn('autoscaling:CompleteLifecycleAction', group, groupTags({ 'joinkeeper:cluster': 'demo', 'joinkeeper:role': 'control-plane' })));
    add(`${f} completes a lifecycle action of a worker group without a cluster tag`, fn('autoscaling:CompleteLifecycleAction', group, groupTags({ 'joinkeeper:role': 'worker' })));
    add(`${f} records a heartbeat on an untagged group`, fn('autoscaling:RecordLifecycleActionHeartbeat', group));
    add(`${f} marks an instance of an untagged group unhealthy`, fn('autoscaling:SetInstanceHealth', group));
    add(`${f} marks a control-plane group's instance unhealthy`, fn('autoscaling:SetInstanceHealth', group, groupTags({ 'joinkeeper:cluster': 'demo', 'joinkeeper:role': 'control-plane' })));
    add(`${f} writes a parameter beside the exit records`, fn('ssm:PutParameter', param('demo', 'exits-i-0123456789abcdef0')));
  }
  return cases;
}

/** What the design needs allowed: if these were denied, a "denied" above would prove nothing. */
export function mustAllow(f: Facts): Case[] {
  const keyArn = f.keyArn;
  const cases: Case[] = [];
  const add = (name: string, request: Request, variant: Variant = 'default') => cases.push({ name, variant, request });
  const workerGroup = groupTags({ 'joinkeeper:cluster': 'demo', 'joinkeeper:role': 'worker' });
  for (const f of FUNCTIONS) {
    add(`${f} takes a lease`, req(f, 'ssm:PutParameter', param('demo', 'leases/drain-i-0123456789abcdef0'), { 'ssm:Overwrite': 'false' }));
    add(`${f} lists the leases`, req(f, 'ssm:GetParametersByPath', param('demo', 'leases')));
    add(`${f} reads the record's version`, req(f, 'ssm:GetParameter', param('demo', 'join-record')));
    add(`${f} reads the record's meta`, req(f, 'ssm:GetParameter', param('demo', 'join-record-meta')));
    add(`${f} completes a worker's lifecycle action`, req(f, 'autoscaling:CompleteLifecycleAction', group, workerGroup));
    add(`${f} records a worker's exit`, req(f, 'ssm:PutParameter', param('demo', 'exits/i-0123456789abcdef0')));
    add(`${f} lists the exit records`, req(f, 'ssm:GetParametersByPath', param('demo', 'exits')));
    add(`${f} marks a worker with scheduled maintenance unhealthy`, req(f, 'autoscaling:SetInstanceHealth', group, workerGroup));
    add(`${f} lists a warm pool`, req(f, 'autoscaling:DescribeWarmPool', '*'));
    add(`${f} reads scaling activities`, req(f, 'autoscaling:DescribeScalingActivities', '*'));
    add(`${f} drains on a control plane`, req(f, 'ssm:SendCommand', instance, instanceTags({ 'joinkeeper:cluster': 'demo', 'joinkeeper:role': 'control-plane' })));
    add(`${f} sends node-status`, req(f, 'ssm:SendCommand', doc('joinkeeper-node-status')));
    add(`${f} sends regenerate`, req(f, 'ssm:SendCommand', doc('joinkeeper-regenerate')));
  }
  // Lambda's event source mapping polls with the function's execution role.
  for (const who of ['launch-hook', 'terminate-hook'] as const) {
    for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:ChangeMessageVisibility']) {
      add(`${who}'s event source mapping calls ${action} on the lifecycle queue`, req(who, action, f.lifecycleQueueArn));
    }
  }
  add('a worker reads its own join record', req('worker', 'ssm:GetParameter', param('demo', 'join-record')));
  add('a worker decrypts it (aws/ssm key, clusterKmsKey=false)', req('worker', 'kms:Decrypt', awsSsmKey, viaSsm(param('demo', 'join-record'))), 'awsSsm');
  add("a worker decrypts it (the cluster's key)", req('worker', 'kms:Decrypt', keyArn('demo'), ownKey(param('demo', 'join-record'))));
  add('a control plane encrypts with the aws/ssm key (clusterKmsKey=false)', req('control-plane', 'kms:Encrypt', awsSsmKey, viaSsm(param('demo', 'join-record'))), 'awsSsm');
  // The risk clusterKmsKey=false takes: aws/ssm's key policy admits every principal of the account.
  add('(the opt-out\'s risk) an administrator role decrypts a record written with aws/ssm',
    { ...req('worker', 'kms:Decrypt', awsSsmKey, viaSsm(param('demo', 'join-record'))), identity: { roleArn: `arn:aws:iam::${A}:role/Administrator`, policy: ADMIN } }, 'awsSsm');
  add('a worker reads the node scripts asset its user data downloads', req('worker', 's3:GetObject', asset(f.nodeScriptsKey)));
  add('a control plane reads the node scripts asset its user data downloads', req('control-plane', 's3:GetObject', asset(f.nodeScriptsKey)));
  add('a control plane writes its record meta', req('control-plane', 'ssm:PutParameter', param('demo', 'join-record-meta')));
  add('a control plane deletes its certificate key', req('control-plane', 'ssm:DeleteParameter', param('demo', 'control-plane-join')));
  add("a control plane encrypts with the cluster's key", req('control-plane', 'kms:Encrypt', keyArn('demo'), ownKey(param('demo', 'control-plane-join'))));
  add('a control plane asks a peer to upload certificates', req('control-plane', 'ssm:SendCommand', doc('joinkeeper-upload-certs')));
  add('…on a control plane of its cluster', req('control-plane', 'ssm:SendCommand', instance, instanceTags({ 'joinkeeper:cluster': 'demo', 'joinkeeper:role': 'control-plane' })));
  add('the SSM agent reports in', req('worker', 'ssm:UpdateInstanceInformation', instance));
  const a = perInstanceWorker('i-0000000a');
  add('a per-instance worker (A) reads its own record', a('ssm:GetParameter', param('demo', 'join/i-0000000a'), ownRecord('i-0000000a')), 'perInstance');
  add("a per-instance worker decrypts its own record with the cluster's key", a('kms:Decrypt', keyArn('demo'), ownKey(param('demo', 'join/i-0000000a'))), 'perInstance');
  add('a per-instance worker decrypts its own record (aws/ssm key)', a('kms:Decrypt', awsSsmKey, viaSsm(param('demo', 'join/i-0000000a'))), 'perInstanceAwsSsm');
  add('a control plane creates a per-instance record with its tags', req('control-plane', 'ssm:PutParameter', param('demo', 'join/i-0000000a')), 'perInstance');
  add('…tagging it on creation', req('control-plane', 'ssm:AddTagsToResource', param('demo', 'join/i-0000000a')), 'perInstance');
  add('a control plane deletes a per-instance record', req('control-plane', 'ssm:DeleteParameter', param('demo', 'join/i-0000000a')), 'perInstance');
  add("a control plane encrypts a per-instance record with the cluster's key", req('control-plane', 'kms:Encrypt', keyArn('demo'), ownKey(param('demo', 'join/i-0000000a'))), 'perInstance');
  for (const f of FUNCTIONS) add(`${f} reads the join mode`, req(f, 'ssm:GetParameter', param('demo', 'join-mode')));
  return cases;
}
