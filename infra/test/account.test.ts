// The account stack: functions, documents, triggers, alarms, and least-privilege IAM.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { actionsOf, flat, resourcesOf, statementsOfRole, synth } from './support';
import { SETTINGS } from '../lib/config';
import { DISCOVERY_ACTIONS, FOLLOW_COMMAND_ACTIONS } from '../lib/iam';

const ENV_NAMES = [
  'JOINKEEPER_PARAMETER_PREFIX',
  'JOINKEEPER_TOKEN_TTL_SECONDS',
  'JOINKEEPER_REFRESH_MARGIN_SECONDS',
  'JOINKEEPER_COMMAND_DEADLINE_SECONDS',
  'JOINKEEPER_COMMAND_POLL_MILLIS',
  'JOINKEEPER_JOIN_DEADLINE_SECONDS',
  'JOINKEEPER_DRAIN_TIMEOUT_SECONDS',
  'JOINKEEPER_DEREGISTRATION_DELAY_SECONDS',
  'JOINKEEPER_DRAIN_CONCURRENCY',
  'JOINKEEPER_REGENERATE_DOCUMENT',
  'JOINKEEPER_NODE_STATUS_DOCUMENT',
  'JOINKEEPER_DRAIN_DOCUMENT',
  'JOINKEEPER_JOIN_LOG_DOCUMENT',
  'JOINKEEPER_NODES_DOCUMENT',
  'JOINKEEPER_CORDON_DOCUMENT',
  'JOINKEEPER_FUNCTION_TIMEOUT_SECONDS',
  'JOINKEEPER_HOOK_PREFIX',
  'RUST_LOG',
].sort();

const DOCUMENTS = [
  'joinkeeper-regenerate',
  'joinkeeper-node-status',
  'joinkeeper-drain',
  'joinkeeper-join-log',
  'joinkeeper-nodes',
  'joinkeeper-cordon',
  'joinkeeper-upload-certs',
  'joinkeeper-revoke-tokens',
];

const ROLES = { refresher: 'TokenRefresherRole', launch: 'LaunchHookRole', terminate: 'TerminateHookRole' } as const;

describe('account stack: functions', () => {
  const { account } = synth();

  it('deploys the three prebuilt functions on provided.al2023 with handler bootstrap', () => {
    account.resourceCountIs('AWS::Lambda::Function', 3);
    for (const desc of ['keeps every cluster join record fresh', 'holds a new worker', 'drains and deletes']) {
      account.hasResourceProperties('AWS::Lambda::Function', {
        Runtime: 'provided.al2023',
        Handler: 'bootstrap',
        Architectures: ['x86_64'],
        Description: Match.stringLikeRegexp(desc),
        Timeout: 900,
        LoggingConfig: { LogGroup: Match.anyValue() },
      });
    }
  });

  it('passes exactly the documented environment, with the defaults', () => {
    const fns = Object.values(account.findResources('AWS::Lambda::Function')) as Array<{ Properties: { Environment: { Variables: Record<string, string> } } }>;
    for (const fn of fns) {
      const vars = fn.Properties.Environment.Variables;
      assert.deepEqual(Object.keys(vars).sort(), ENV_NAMES);
      assert.deepEqual(vars, {
        JOINKEEPER_PARAMETER_PREFIX: '/joinkeeper',
        JOINKEEPER_TOKEN_TTL_SECONDS: '7200',
        JOINKEEPER_REFRESH_MARGIN_SECONDS: '3600',
        JOINKEEPER_COMMAND_DEADLINE_SECONDS: '120',
        JOINKEEPER_COMMAND_POLL_MILLIS: '1000',
        JOINKEEPER_JOIN_DEADLINE_SECONDS: '900',
        JOINKEEPER_DRAIN_TIMEOUT_SECONDS: '300',
        JOINKEEPER_DEREGISTRATION_DELAY_SECONDS: '0',
        JOINKEEPER_DRAIN_CONCURRENCY: '4',
        JOINKEEPER_REGENERATE_DOCUMENT: 'joinkeeper-regenerate',
        JOINKEEPER_NODE_STATUS_DOCUMENT: 'joinkeeper-node-status',
        JOINKEEPER_DRAIN_DOCUMENT: 'joinkeeper-drain',
        JOINKEEPER_JOIN_LOG_DOCUMENT: 'joinkeeper-join-log',
        JOINKEEPER_NODES_DOCUMENT: 'joinkeeper-nodes',
        JOINKEEPER_CORDON_DOCUMENT: 'joinkeeper-cordon',
        JOINKEEPER_FUNCTION_TIMEOUT_SECONDS: '900',
        JOINKEEPER_HOOK_PREFIX: 'joinkeeper-',
        RUST_LOG: 'info',
      });
    }
  });

  it('takes the architecture and the settings from context', () => {
    const { account: a } = synth({ architecture: 'arm64', parameterPrefix: '/platform/jk', tokenTtlSeconds: '43200', refreshMarginSeconds: '14400', rustLog: 'debug', documentPrefix: 'jk2', hookNamePrefix: 'k8s-jk-' });
    a.allResourcesProperties('AWS::Lambda::Function', {
      Architectures: ['arm64'],
      Environment: {
        Variables: Match.objectLike({
          JOINKEEPER_PARAMETER_PREFIX: '/platform/jk',
          JOINKEEPER_TOKEN_TTL_SECONDS: '43200',
          JOINKEEPER_REFRESH_MARGIN_SECONDS: '14400',
          JOINKEEPER_REGENERATE_DOCUMENT: 'jk2-regenerate',
          JOINKEEPER_HOOK_PREFIX: 'k8s-jk-',
          RUST_LOG: 'debug',
        }),
      },
    });
    a.hasResourceProperties('AWS::SSM::Document', { Name: 'jk2-join-log' });
  });

  it('passes the optional node poll setting only when given', () => {
    const { account: a } = synth({ nodePollSeconds: '10' });
    a.allResourcesProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ JOINKEEPER_NODE_POLL_SECONDS: '10' }) },
    });
    assert.throws(() => synth({ nodePollSeconds: '301' }), /nodePollSeconds/);
  });

  it('names control-plane profiles of clusters it did not make only when given, and checks their shape', () => {
    const profiles = 'old=arn:aws:iam::123456789012:instance-profile/kurl/masters';
    const { account: a } = synth({ controlPlaneProfiles: profiles });
    a.allResourcesProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ JOINKEEPER_CONTROL_PLANE_PROFILES: profiles }) },
    });
    assert.throws(() => synth({ controlPlaneProfiles: 'old=arn:aws:iam::123456789012:role/masters' }), /controlPlaneProfiles/);
    const { account: plain } = synth();
    for (const fn of Object.values(plain.findResources('AWS::Lambda::Function'))) {
      assert.equal(fn.Properties.Environment.Variables.JOINKEEPER_CONTROL_PLANE_PROFILES, undefined);
    }
  });

  it('sets only variables the functions read (rows of their settings table)', () => {
    const known = new Set(Object.values(SETTINGS).map((s) => s.variable));
    const { account: a } = synth({ nodePollSeconds: '10' });
    for (const fn of Object.values(a.findResources('AWS::Lambda::Function'))) {
      const vars = Object.keys(fn.Properties.Environment.Variables).filter((v) => v.startsWith('JOINKEEPER_'));
      assert.ok(vars.length > 0);
      for (const v of vars) assert.ok(known.has(v), `${v} is not in infra/lib/settings.json`);
    }
  });

  it('keeps each function log group with a retention', () => {
    account.resourceCountIs('AWS::Logs::LogGroup', 3);
    account.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    account.allResources('AWS::Logs::LogGroup', { DeletionPolicy: 'Retain' });
  });

  it('creates the eight versioned SSM Command documents under their contract names', () => {
    account.resourceCountIs('AWS::SSM::Document', 8);
    for (const name of DOCUMENTS) {
      account.hasResourceProperties('AWS::SSM::Document', {
        Name: name,
        DocumentType: 'Command',
        DocumentFormat: 'JSON',
        UpdateMethod: 'NewVersion',
        Content: Match.objectLike({ schemaVersion: '2.2', mainSteps: Match.arrayWith([Match.objectLike({ action: 'aws:runShellScript' })]) }),
      });
    }
    account.hasResourceProperties('AWS::SSM::Document', {
      Name: 'joinkeeper-regenerate',
      Content: Match.objectLike({ parameters: Match.objectLike({ ClusterName: Match.anyValue(), ParameterPrefix: Match.anyValue(), TokenTtlSeconds: Match.anyValue() }) }),
    });
  });
});

describe('account stack: triggers', () => {
  const { account } = synth();

  it('runs the refresher on a schedule', () => {
    account.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(10 minutes)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TokenRefresher'), 'Arn'] } })],
    });
  });

  for (const detailType of ['EC2 Instance-launch Lifecycle Action', 'EC2 Instance-terminate Lifecycle Action']) {
    it(`routes "${detailType}" from aws.autoscaling, for joinkeeper's hooks only, to the lifecycle queue`, () => {
      account.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.autoscaling'],
          'detail-type': [detailType],
          detail: { LifecycleHookName: [{ prefix: 'joinkeeper-' }] },
        },
        State: 'ENABLED',
        Targets: [
          Match.objectLike({
            Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^LifecycleEvents'), 'Arn'] },
            DeadLetterConfig: Match.objectLike({ Arn: Match.anyValue() }),
            RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 8 }),
          }),
        ],
      });
    });
  }

  it('queues lifecycle events (encrypted, dead-letter queue after 5 receives, visibility 6 × the function timeout) for both lifecycle functions, in batches with partial batch responses', () => {
    account.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 5400,
      RedrivePolicy: Match.objectLike({ maxReceiveCount: 5 }),
    });
    for (const fn of ['LaunchHook', 'TerminateHook']) {
      account.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        FunctionName: { Ref: Match.stringLikeRegexp(`^${fn}`) },
        EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^LifecycleEvents'), 'Arn'] },
        BatchSize: 100,
        MaximumBatchingWindowInSeconds: 15,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
      });
    }
    account.resourceCountIs('AWS::Lambda::EventSourceMapping', 2);
  });

  it('also filters on the group name prefix when one is given', () => {
    const { account: a } = synth({ groupNamePrefix: 'k8s-' });
    a.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.autoscaling'],
        'detail-type': ['EC2 Instance-launch Lifecycle Action'],
        detail: { LifecycleHookName: [{ prefix: 'joinkeeper-' }], AutoScalingGroupName: [{ prefix: 'k8s-' }] },
      },
    });
  });

  it('has exactly seven rules: the schedule, two lifecycle rules and four exit rules', () => {
    account.resourceCountIs('AWS::Events::Rule', 7);
  });

  it('sends the exits without a hook straight to the terminate function, with exact patterns', () => {
    const exitRules = account.findResources('AWS::Events::Rule', {
      Properties: { EventPattern: { source: Match.arrayWith(['aws.ec2']) } },
    });
    assert.equal(Object.keys(exitRules).length, 3);
    account.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ec2'],
        'detail-type': ['EC2 Instance State-change Notification'],
        detail: { state: ['stopping', 'stopped', 'shutting-down', 'terminated'] },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TerminateHook'), 'Arn'] } })],
    });
    account.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.health'],
        'detail-type': ['AWS Health Event'],
        detail: { service: ['EC2'], eventTypeCode: Match.arrayWith(['AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED']) },
      },
    });
    account.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: { source: ['aws.ec2'], 'detail-type': ['EC2 Spot Instance Interruption Warning'] },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TerminateHook'), 'Arn'] } })],
    });
  });
});

describe('account stack: alarms', () => {
  const { account } = synth();

  it('alarms on each function errors', () => {
    for (const fn of ['TokenRefresher', 'LaunchHook', 'TerminateHook']) {
      account.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'Errors',
        Namespace: 'AWS/Lambda',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: Match.stringLikeRegexp(`^${fn}`) } }],
        Threshold: 1,
        AlarmActions: [{ Ref: Match.stringLikeRegexp('^Alarms') }],
      });
    }
  });

  it('never allows ssm:SendCommand on "*"', () => {
    for (const role of Object.values(ROLES)) {
      for (const s of statementsOfRole(account, role).filter((x) => actionsOf(x).some((a) => /^ssm:(SendCommand|\*|Send\*)$|^\*$/.test(a)))) {
        assert.ok(!resourcesOf(s).includes('*'), `${role}: ${JSON.stringify(s)}`);
      }
    }
  });

  function sendCommand(role: string) {
    const st = statementsOfRole(account, role).filter((s) => actionsOf(s).includes('ssm:SendCommand'));
    const docs = st.filter((s) => resourcesOf(s).some((r) => flat(r).includes(':document/')));
    const instances = st.filter((s) => resourcesOf(s).some((r) => flat(r).includes(':instance/')));
    return { st, docs, instances };
  }

  it('sends commands only with joinkeeper documents, never the control planes\' upload-certs', () => {
    // The same reconciler runs in every function, regeneration included.
    const names = ['joinkeeper-cordon', 'joinkeeper-drain', 'joinkeeper-join-log', 'joinkeeper-node-status', 'joinkeeper-nodes', 'joinkeeper-regenerate'];
    for (const role of Object.values(ROLES)) {
      const { docs } = sendCommand(role);
      const arns = docs.flatMap((s) => resourcesOf(s).map(flat)).sort();
      assert.deepEqual(arns, names.map((n) => `arn:{AWS::Partition}:ssm:{AWS::Region}:{AWS::AccountId}:document/${n}`).sort(), role);
      for (const s of docs) assert.equal(s.Condition, undefined);
    }
  });

  it('sends commands only to control planes and workers tagged for a cluster', () => {
    for (const role of Object.values(ROLES)) {
      const { st, docs, instances } = sendCommand(role);
      assert.equal(st.length, docs.length + instances.length, `${role}: every SendCommand statement is for documents or instances`);
      assert.equal(instances.length, 1, role);
      const [s] = instances;
      assert.deepEqual(resourcesOf(s).map(flat), ['arn:{AWS::Partition}:ec2:{AWS::Region}:{AWS::AccountId}:instance/*']);
      assert.deepEqual(s.Condition?.StringEquals?.['ssm:resourceTag/joinkeeper:role'], ['control-plane', 'worker']);
      assert.equal(s.Condition?.Null?.['ssm:resourceTag/joinkeeper:cluster'], 'false');
    }
  });

  it('completes lifecycle actions only on groups tagged joinkeeper:cluster and joinkeeper:role=worker', () => {
    for (const role of Object.values(ROLES)) {
      const st = statementsOfRole(account, role).filter((s) => actionsOf(s).some((a) => /LifecycleAction/.test(a)));
      assert.equal(st.length, 1, role);
      assert.deepEqual(actionsOf(st[0]).sort(), ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat']);
      assert.equal(st[0].Condition?.Null?.['aws:ResourceTag/joinkeeper:cluster'], 'false');
      assert.equal(st[0].Condition?.StringEquals?.['aws:ResourceTag/joinkeeper:role'], 'worker');
      assert.match(flat(resourcesOf(st[0])[0]), /:autoscaling:\{AWS::Region\}:\{AWS::AccountId\}:autoScalingGroup:\*:autoScalingGroupName\/\*$/);
    }
  });

  it('writes only lease and exit-record parameters, reads the record only for its version, its metadata, the rogue-nodes and join modes, lists the per-instance records', () => {
    const arn = (name: string) => `arn:{AWS::Partition}:ssm:{AWS::Region}:{AWS::AccountId}:parameter/joinkeeper/${name}`;
    for (const role of Object.values(ROLES)) {
      const byAction = new Map<string, string[]>();
      for (const s of statementsOfRole(account, role).filter((x) => actionsOf(x).some((a) => /^ssm:.*Parameter/.test(a)))) {
        assert.equal(s.Effect, 'Allow');
        for (const a of actionsOf(s)) byAction.set(a, [...(byAction.get(a) ?? []), ...resourcesOf(s).map(flat)].sort());
      }
      assert.deepEqual([...byAction.keys()].sort(), ['ssm:DeleteParameter', 'ssm:GetParameter', 'ssm:GetParametersByPath', 'ssm:PutParameter'], role);
      assert.deepEqual(byAction.get('ssm:PutParameter'), [arn('*/exits/*'), arn('*/leases/*')], role);
      assert.deepEqual(byAction.get('ssm:DeleteParameter'), [arn('*/exits/*'), arn('*/leases/*')], role);
      // Per-instance records: listed (names, never decrypted) for the scheduled sweep only.
      assert.deepEqual(byAction.get('ssm:GetParametersByPath'), [arn('*/exits'), arn('*/join'), arn('*/leases')], role);
      assert.deepEqual(byAction.get('ssm:GetParameter'), [arn('*/exits/*'), arn('*/join-mode'), arn('*/join-record'), arn('*/join-record-meta'), arn('*/leases/*'), arn('*/rogue-nodes')].sort(), role);
    }
    const { account: a } = synth({ parameterPrefix: '/platform/jk' });
    const st = statementsOfRole(a, ROLES.launch).filter((s) => actionsOf(s).includes('ssm:PutParameter'));
    assert.deepEqual(st.flatMap((s) => resourcesOf(s).map(flat)).map((r) => r.replace(/.*:parameter/, '')).sort(), ['/platform/jk/*/exits/*', '/platform/jk/*/leases/*']);
  });

  it('never decrypts: no kms:* allowed, kms:Decrypt explicitly denied (the aws/ssm key would let it through)', () => {
    for (const role of Object.values(ROLES)) {
      const kms = statementsOfRole(account, role).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
      assert.equal(kms.length, 1, role);
      assert.equal(kms[0].Effect, 'Deny');
      assert.deepEqual(actionsOf(kms[0]), ['kms:Decrypt']);
      assert.deepEqual(resourcesOf(kms[0]), ['*']);
      assert.equal(kms[0].Condition, undefined);
    }
    assert.throws(() => synth({ parameterKmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab' }), /no longer used/);
  });

  it('gives "*" only to actions that have no resource-level permissions (and to the one Deny)', () => {
    // The list iam.ts grants on "*", each of a kind IAM gives no resource-level permissions.
    const allowedOnStar = new Set<string>([...FOLLOW_COMMAND_ACTIONS, ...DISCOVERY_ACTIONS]);
    for (const a of allowedOnStar) {
      assert.match(a, /^(ec2:Describe|autoscaling:Describe|ssm:(DescribeInstanceInformation|ListCommands|ListCommandInvocations|GetCommandInvocation|CancelCommand)$)/, a);
    }
    for (const role of Object.values(ROLES)) {
      for (const s of statementsOfRole(account, role)) {
        if (s.Effect === 'Deny') {
          assert.equal(s.Sid, 'NeverDecrypt', role);
          continue;
        }
        assert.equal(s.Effect, 'Allow');
        if (resourcesOf(s).includes('*')) {
          for (const a of actionsOf(s)) assert.ok(allowedOnStar.has(a), `${role}: ${a} on "*"`);
        }
      }
    }
  });

  it('does not attach broad managed policies to the function roles', () => {
    account.allResourcesProperties('AWS::IAM::Role', { ManagedPolicyArns: Match.absent() });
  });
});
