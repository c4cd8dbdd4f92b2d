// The account stack: functions, documents, triggers, alarms, and least-privilege IAM.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { actionsOf, flat, resourcesOf, statementsOfRole, synth } from './support';

const ENV_NAMES = [
  'JOINKEEPER_PARAMETER_PREFIX',
  'JOINKEEPER_TOKEN_TTL_SECONDS',
  'JOINKEEPER_REFRESH_MARGIN_SECONDS',
  'JOINKEEPER_COMMAND_DEADLINE_SECONDS',
  'JOINKEEPER_COMMAND_POLL_MILLIS',
  'JOINKEEPER_JOIN_DEADLINE_SECONDS',
  'JOINKEEPER_DRAIN_TIMEOUT_SECONDS',
  'JOINKEEPER_REGENERATE_DOCUMENT',
  'JOINKEEPER_NODE_STATUS_DOCUMENT',
  'JOINKEEPER_DRAIN_DOCUMENT',
  'JOINKEEPER_JOIN_LOG_DOCUMENT',
  'RUST_LOG',
].sort();

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
        JOINKEEPER_TOKEN_TTL_SECONDS: '86400',
        JOINKEEPER_REFRESH_MARGIN_SECONDS: '28800',
        JOINKEEPER_COMMAND_DEADLINE_SECONDS: '120',
        JOINKEEPER_COMMAND_POLL_MILLIS: '1000',
        JOINKEEPER_JOIN_DEADLINE_SECONDS: '900',
        JOINKEEPER_DRAIN_TIMEOUT_SECONDS: '300',
        JOINKEEPER_REGENERATE_DOCUMENT: 'joinkeeper-regenerate',
        JOINKEEPER_NODE_STATUS_DOCUMENT: 'joinkeeper-node-status',
        JOINKEEPER_DRAIN_DOCUMENT: 'joinkeeper-drain',
        JOINKEEPER_JOIN_LOG_DOCUMENT: 'joinkeeper-join-log',
        RUST_LOG: 'info',
      });
    }
  });

  it('takes the architecture and the settings from context', () => {
    const { account: a } = synth({ architecture: 'arm64', parameterPrefix: '/platform/jk', tokenTtlSeconds: '43200', refreshMarginSeconds: '14400', rustLog: 'debug', documentPrefix: 'jk2' });
    a.allResourcesProperties('AWS::Lambda::Function', {
      Architectures: ['arm64'],
      Environment: {
        Variables: Match.objectLike({
          JOINKEEPER_PARAMETER_PREFIX: '/platform/jk',
          JOINKEEPER_TOKEN_TTL_SECONDS: '43200',
          JOINKEEPER_REFRESH_MARGIN_SECONDS: '14400',
          JOINKEEPER_REGENERATE_DOCUMENT: 'jk2-regenerate',
          RUST_LOG: 'debug',
        }),
      },
    });
    a.hasResourceProperties('AWS::SSM::Document', { Name: 'jk2-join-log' });
  });

  it('passes the optional hook check and node poll settings only when given', () => {
    const { account: a } = synth({ hookCheckSeconds: '300', nodePollSeconds: '10' });
    a.allResourcesProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ JOINKEEPER_HOOK_CHECK_SECONDS: '300', JOINKEEPER_NODE_POLL_SECONDS: '10' }) },
    });
    assert.throws(() => synth({ hookCheckSeconds: '900' }), /hookCheckSeconds/);
  });

  it('keeps each function log group with a retention', () => {
    account.resourceCountIs('AWS::Logs::LogGroup', 3);
    account.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    account.allResources('AWS::Logs::LogGroup', { DeletionPolicy: 'Retain' });
  });

  it('creates the four versioned SSM Command documents under their contract names', () => {
    account.resourceCountIs('AWS::SSM::Document', 4);
    for (const name of ['joinkeeper-regenerate', 'joinkeeper-node-status', 'joinkeeper-drain', 'joinkeeper-join-log']) {
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
      ScheduleExpression: 'rate(5 minutes)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^TokenRefresher'), 'Arn'] } })],
    });
  });

  for (const [detailType, fn] of [
    ['EC2 Instance-launch Lifecycle Action', 'LaunchHook'],
    ['EC2 Instance-terminate Lifecycle Action', 'TerminateHook'],
  ] as const) {
    it(`routes "${detailType}" from aws.autoscaling, for joinkeeper's hooks only, to ${fn}`, () => {
      account.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.autoscaling'],
          'detail-type': [detailType],
          detail: { LifecycleHookName: [{ prefix: 'joinkeeper-' }] },
        },
        State: 'ENABLED',
        Targets: [
          Match.objectLike({
            Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp(`^${fn}`), 'Arn'] },
            DeadLetterConfig: Match.objectLike({ Arn: Match.anyValue() }),
            RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 8 }),
          }),
        ],
      });
    });
  }

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

  it('has exactly three rules', () => {
    account.resourceCountIs('AWS::Events::Rule', 3);
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

  it('measures remaining_seconds of each cluster record from the refresher JSON log', () => {
    account.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: Match.stringLikeRegexp('^TokenRefresherLogs') },
      FilterPattern: '{ ($.cluster = "*") && ($.remaining_seconds >= -1000000000) }',
      MetricTransformations: [{ MetricName: 'JoinRecordRemainingSeconds', MetricNamespace: 'Joinkeeper', MetricValue: '$.remaining_seconds', Unit: 'Seconds' }],
    });
    account.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'JoinRecordRemainingSeconds',
      Namespace: 'Joinkeeper',
      Statistic: 'Minimum',
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 14400,
    });
  });

  it('counts abandoned hooks from the outcome field of the launch hook (and sweep) logs', () => {
    for (const lg of ['LaunchHookLogs', 'TokenRefresherLogs']) {
      account.hasResourceProperties('AWS::Logs::MetricFilter', {
        LogGroupName: { Ref: Match.stringLikeRegexp(`^${lg}`) },
        FilterPattern: '{ ($.outcome = "abandon") || ($.fields.outcome = "abandon") }',
        MetricTransformations: [Match.objectLike({ MetricName: 'HooksAbandoned', MetricValue: '1' })],
      });
    }
    account.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'HooksAbandoned',
      Statistic: 'Sum',
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Threshold: 1,
    });
  });
});

describe('account stack: IAM', () => {
  const { account } = synth();

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

  it('sends commands only with joinkeeper documents', () => {
    const expected: Record<string, string[]> = {
      [ROLES.refresher]: ['joinkeeper-drain', 'joinkeeper-join-log', 'joinkeeper-node-status', 'joinkeeper-regenerate'],
      [ROLES.launch]: ['joinkeeper-join-log', 'joinkeeper-node-status', 'joinkeeper-regenerate'],
      [ROLES.terminate]: ['joinkeeper-drain', 'joinkeeper-node-status'],
    };
    for (const [role, names] of Object.entries(expected)) {
      const { docs } = sendCommand(role);
      const arns = docs.flatMap((s) => resourcesOf(s).map(flat)).sort();
      assert.deepEqual(arns, names.map((n) => `arn:{AWS::Partition}:ssm:{AWS::Region}:{AWS::AccountId}:document/${n}`).sort(), role);
      for (const s of docs) assert.equal(s.Condition, undefined);
    }
  });

  it('sends commands to control-plane instances by tag, and to workers only where the join log is read', () => {
    for (const role of Object.values(ROLES)) {
      const { st, docs, instances } = sendCommand(role);
      assert.equal(st.length, docs.length + instances.length, `${role}: every SendCommand statement is for documents or instances`);
      for (const s of instances) {
        assert.deepEqual(resourcesOf(s).map(flat), ['arn:{AWS::Partition}:ec2:{AWS::Region}:{AWS::AccountId}:instance/*']);
        assert.ok(s.Condition?.StringEquals?.['ssm:resourceTag/joinkeeper:role'], `${role}: role tag condition`);
        assert.equal(s.Condition?.Null?.['ssm:resourceTag/joinkeeper:cluster'], 'false');
      }
      const tagged = instances.map((s) => s.Condition!.StringEquals['ssm:resourceTag/joinkeeper:role']).sort();
      if (role === ROLES.terminate) assert.deepEqual(tagged, ['control-plane']);
      else assert.deepEqual(tagged, ['control-plane', 'worker']);
      if (tagged.includes('worker')) {
        assert.ok(
          docs.some((s) => resourcesOf(s).some((r) => flat(r).endsWith(':document/joinkeeper-join-log'))),
          `${role}: worker access exists only alongside the join-log document`,
        );
      }
    }
  });

  it('completes lifecycle actions only on groups tagged joinkeeper:cluster', () => {
    for (const role of Object.values(ROLES)) {
      const st = statementsOfRole(account, role).filter((s) => actionsOf(s).some((a) => /LifecycleAction/.test(a)));
      assert.equal(st.length, 1, role);
      assert.deepEqual(actionsOf(st[0]).sort(), ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat']);
      assert.equal(st[0].Condition?.Null?.['aws:ResourceTag/joinkeeper:cluster'], 'false');
      assert.equal(st[0].Condition?.StringEquals?.['aws:ResourceTag/joinkeeper:role'], 'worker');
      assert.match(flat(resourcesOf(st[0])[0]), /:autoscaling:\{AWS::Region\}:\{AWS::AccountId\}:autoScalingGroup:\*:autoScalingGroupName\/\*$/);
    }
  });

  it('reads and writes SSM parameters only under the prefix', () => {
    for (const role of Object.values(ROLES)) {
      const st = statementsOfRole(account, role).filter((s) => actionsOf(s).some((a) => /Parameter/.test(a)));
      if (role === ROLES.terminate) {
        assert.equal(st.length, 0, 'the terminate hook needs no parameters');
        continue;
      }
      for (const s of st) {
        for (const r of resourcesOf(s).map(flat)) {
          assert.match(r, /^arn:\{AWS::Partition\}:ssm:\{AWS::Region\}:\{AWS::AccountId\}:parameter\/joinkeeper(\/\*)?$/);
        }
      }
    }
    const { account: a } = synth({ parameterPrefix: '/platform/jk' });
    const st = statementsOfRole(a, ROLES.launch).filter((s) => actionsOf(s).includes('ssm:PutParameter'));
    assert.deepEqual(resourcesOf(st[0]).map(flat).map((r) => r.replace(/.*:parameter/, '')), ['/platform/jk', '/platform/jk/*']);
  });

  it('decrypts only through SSM, only for joinkeeper parameters', () => {
    for (const role of [ROLES.refresher, ROLES.launch]) {
      const st = statementsOfRole(account, role).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
      assert.equal(st.length, 1);
      assert.deepEqual(actionsOf(st[0]), ['kms:Decrypt']);
      assert.equal(flat(st[0].Condition?.StringEquals?.['kms:ViaService']), 'ssm.{AWS::Region}.amazonaws.com');
      assert.match(flat(st[0].Condition?.StringLike?.['kms:EncryptionContext:PARAMETER_ARN']), /:parameter\/joinkeeper\/\*$/);
    }
    assert.equal(statementsOfRole(account, ROLES.terminate).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:'))).length, 0);
    const key = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const { account: a } = synth({ parameterKmsKeyArn: key });
    const st = statementsOfRole(a, ROLES.launch).filter((s) => actionsOf(s).includes('kms:Decrypt'));
    assert.deepEqual(resourcesOf(st[0]), [key]);
  });

  it('gives "*" only to actions that have no resource-level permissions', () => {
    const allowedOnStar = new Set([
      'ssm:GetCommandInvocation',
      'ssm:ListCommandInvocations',
      'ssm:ListCommands',
      'ssm:CancelCommand',
      'ssm:DescribeInstanceInformation',
      'ec2:DescribeInstances',
      'ec2:DescribeTags',
      'autoscaling:DescribeAutoScalingGroups',
      'autoscaling:DescribeAutoScalingInstances',
      'autoscaling:DescribeLifecycleHooks',
      'autoscaling:DescribeTags',
    ]);
    for (const role of Object.values(ROLES)) {
      for (const s of statementsOfRole(account, role)) {
        if (resourcesOf(s).includes('*')) {
          for (const a of actionsOf(s)) assert.ok(allowedOnStar.has(a), `${role}: ${a} on "*"`);
        }
        assert.equal(s.Effect, 'Allow');
      }
    }
  });

  it('does not attach broad managed policies to the function roles', () => {
    account.allResourcesProperties('AWS::IAM::Role', { ManagedPolicyArns: Match.absent() });
  });
});
