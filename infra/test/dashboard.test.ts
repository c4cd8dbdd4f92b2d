// The operators' dashboard and the per-cluster alarms on the functions' embedded metrics.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Match } from 'aws-cdk-lib/assertions';
import { EMF_METRICS, EMF_NAMESPACE, perClusterQuery } from '../lib/dashboard';
import { INFRA_DIR } from '../lib/sources';
import { actionsOf, flat, resourcesOf, statementsOfRole, synth } from './support';

type Resource = { Properties: Record<string, unknown> };

function dashboardBody(t: ReturnType<typeof synth>['account']): { widgets: Array<{ type: string; properties: Record<string, unknown> }> } {
  const dashboards = Object.values(t.findResources('AWS::CloudWatch::Dashboard')) as Resource[];
  assert.equal(dashboards.length, 1);
  return JSON.parse(flat(dashboards[0].Properties.DashboardBody));
}

function alarmWithQuery(t: ReturnType<typeof synth>['account'], query: string): Record<string, unknown> {
  const alarms = Object.values(t.findResources('AWS::CloudWatch::Alarm')) as Resource[];
  const found = alarms.filter((a) => JSON.stringify(a.Properties.Metrics ?? []).includes(JSON.stringify(query).slice(1, -1)));
  assert.equal(found.length, 1, `one alarm on ${query}`);
  return found[0].Properties;
}

describe('operations: metrics the functions print', () => {
  it('names exactly the metrics shared/src/metrics/catalogue.rs lists, in the namespace of emf.rs', () => {
    const dir = path.join(INFRA_DIR, '..', 'shared', 'src', 'metrics');
    const emf = fs.readFileSync(path.join(dir, 'emf.rs'), 'utf8');
    assert.ok(emf.includes(`pub const NAMESPACE: &str = "${EMF_NAMESPACE}";`));
    const rust = fs.readFileSync(path.join(dir, 'catalogue.rs'), 'utf8');
    const block = rust.slice(rust.indexOf('pub mod name {'), rust.indexOf('\n}\n', rust.indexOf('pub mod name {')));
    const names = [...block.matchAll(/pub const [A-Z_]+: &str = "([A-Za-z]+)";/g)].map((m) => m[1]).sort();
    assert.deepEqual(names, Object.values(EMF_METRICS).sort());
  });
});

describe('operations: per-cluster alarms', () => {
  const { account } = synth();

  it('alarms when any cluster record has less than expiryAlarmSeconds left, each cluster a contributor', () => {
    const p = alarmWithQuery(account, perClusterQuery('MIN', 'RecordRemainingSeconds'));
    assert.equal(p.Threshold, 1800);
    assert.equal(p.ComparisonOperator, 'LessThanThreshold');
    assert.equal(p.EvaluationPeriods, 1);
    const [m] = p.Metrics as Array<Record<string, unknown>>;
    assert.equal(m.Expression, 'SELECT MIN(RecordRemainingSeconds) FROM SCHEMA("joinkeeper", Cluster) GROUP BY Cluster');
    assert.equal(m.Period, 600, 'Metrics Insights alarms carry their period');
    assert.match((p.AlarmActions as Array<{ Ref: string }>)[0].Ref, /^Alarms/);
    assert.match(String(p.AlarmDescription), /joinkeeper rotate --cluster/);
  });

  it('follows the expiryAlarmSeconds context value', () => {
    const { account: a } = synth({ expiryAlarmSeconds: '900' });
    assert.equal(alarmWithQuery(a, perClusterQuery('MIN', 'RecordRemainingSeconds')).Threshold, 900);
  });

  it('alarms when a cluster fails to refresh twice in a row', () => {
    const p = alarmWithQuery(account, perClusterQuery('SUM', 'RefreshFailures'));
    assert.equal(p.Threshold, 1);
    assert.equal(p.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
    assert.equal(p.EvaluationPeriods, 2);
    assert.equal(p.DatapointsToAlarm, 2);
    assert.match((p.AlarmActions as Array<{ Ref: string }>)[0].Ref, /^Alarms/);
  });

  it('alarms on every abandoned launch, per cluster', () => {
    const p = alarmWithQuery(account, perClusterQuery('SUM', 'LaunchesAbandoned'));
    assert.equal(p.Threshold, 1);
    assert.equal(p.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
    assert.match((p.AlarmActions as Array<{ Ref: string }>)[0].Ref, /^Alarms/);
  });

  it('alarms on the failed-events queue', () => {
    account.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Namespace: 'AWS/SQS',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('^FailedEvents'), 'QueueName'] } }],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^Alarms') }],
    });
  });
});

describe('operations: dashboard', () => {
  const { account } = synth();
  const body = dashboardBody(account);
  const text = JSON.stringify(body);

  it('is one dashboard per region', () => {
    account.hasResourceProperties('AWS::CloudWatch::Dashboard', {
      DashboardName: { 'Fn::Join': ['', ['joinkeeper-', { Ref: 'AWS::Region' }]] },
    });
  });

  it('graphs every embedded metric with one line per cluster', () => {
    for (const metric of Object.values(EMF_METRICS)) {
      assert.ok(
        text.includes(`SEARCH('{${EMF_NAMESPACE},Cluster} MetricName=\\"${metric}\\"'`) ||
          text.includes(`SEARCH('{${EMF_NAMESPACE},Cluster,Reason} MetricName=\\"${metric}\\"'`) ||
          text.includes(`SEARCH('{${EMF_NAMESPACE},Cluster,Result} MetricName=\\"${metric}\\"'`),
        `a graph of ${metric}`,
      );
    }
    assert.ok(text.includes("${PROP('Dim.Cluster')}"), 'lines are labelled by cluster');
    // The alarm threshold is drawn on the record graph.
    const record = body.widgets.find((w) => String(w.properties.title).startsWith('Join record'));
    assert.ok(record);
    assert.deepEqual((record.properties.annotations as { horizontal: Array<{ value: number }> }).horizontal.map((h) => h.value), [1800]);
  });

  it('shows every alarm of the stack and the failed-events queue', () => {
    const status = body.widgets.find((w) => w.type === 'alarm');
    assert.ok(status, 'an alarm status widget');
    const shown = (status.properties.alarms as string[]).length;
    assert.equal(shown, Object.keys(account.findResources('AWS::CloudWatch::Alarm')).length);
    assert.ok(text.includes('ApproximateNumberOfMessagesVisible'));
  });
});

describe('operations: the revoke-tokens document', () => {
  const { account } = synth();

  it('is deployed, and no function may send it (operators run it with their own credentials)', () => {
    account.hasResourceProperties('AWS::SSM::Document', {
      Name: 'joinkeeper-revoke-tokens',
      Content: Match.objectLike({ parameters: Match.objectLike({ KeepTokenId: Match.objectLike({ allowedPattern: '^[a-z0-9]{6}$' }) }) }),
    });
    for (const role of ['TokenRefresherRole', 'LaunchHookRole', 'TerminateHookRole']) {
      const sendable = statementsOfRole(account, role)
        .filter((s) => actionsOf(s).includes('ssm:SendCommand'))
        .flatMap((s) => resourcesOf(s).map(flat));
      assert.ok(sendable.length > 0, role);
      assert.ok(!sendable.some((r) => r.includes('revoke-tokens')), `${role} may not send joinkeeper-revoke-tokens`);
    }
  });
});
