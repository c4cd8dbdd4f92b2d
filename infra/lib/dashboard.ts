// What the people on call look at: a CloudWatch dashboard of the metrics the functions print in
// Embedded Metric Format (namespace `joinkeeper`, dimension `Cluster`; see shared/src/metrics/),
// one line per cluster in every graph (SEARCH expressions, so a new cluster shows up by itself),
// and per-cluster alarms (Metrics Insights queries grouped by cluster: one alarm, each cluster a
// contributor) on the record running out, on refreshes failing, and on abandoned launches.
import { Aws, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The namespace of the functions' embedded metrics (shared/src/metrics/emf.rs `NAMESPACE`). */
export const EMF_NAMESPACE = 'joinkeeper';

/** Metric names, as shared/src/metrics/catalogue.rs lists them (`pub mod name`). */
export const EMF_METRICS = {
  recordRemaining: 'RecordRemainingSeconds',
  refreshFailures: 'RefreshFailures',
  regenerations: 'Regenerations',
  regenerationDuration: 'RegenerationDuration',
  regenerationFailures: 'RegenerationFailures',
  launchesContinued: 'LaunchesContinued',
  launchesAbandoned: 'LaunchesAbandoned',
  joinSeconds: 'JoinSeconds',
  drains: 'Drains',
  drainSeconds: 'DrainSeconds',
  drainBlockedPods: 'DrainBlockedPods',
  completedBySweep: 'ActionsCompletedBySweep',
  commandsSent: 'CommandsSent',
  tokensMinted: 'JoinTokensMinted',
  tokensRevoked: 'JoinTokensRevoked',
} as const;

export interface OperationsProps {
  /** Where undeliverable or failed events land. */
  readonly failedEvents: sqs.IQueue;
  readonly functions: Record<string, lambda.IFunction>;
  /** The alarm topic's action. */
  readonly notify: cloudwatch.IAlarmAction;
  /** Alarm evaluation period (at least one refresh interval). */
  readonly period: Duration;
  /** A cluster's record with less than this left raises the alarm. */
  readonly expiryAlarmSeconds: number;
}

/** `SELECT <stat>(<metric>) FROM SCHEMA("joinkeeper", Cluster) GROUP BY Cluster`: one series per cluster. */
export function perClusterQuery(stat: 'MIN' | 'MAX' | 'SUM' | 'AVG', metric: string): string {
  return `SELECT ${stat}(${metric}) FROM SCHEMA("${EMF_NAMESPACE}", Cluster) GROUP BY Cluster`;
}

/** A graph line per cluster (metrics with exactly the Cluster dimension). */
function perCluster(metric: string, statistic: string, extra: string[] = []): cloudwatch.MathExpression {
  const dims = ['Cluster', ...extra].join(',');
  const label = ['Cluster', ...extra].map((d) => `\${PROP('Dim.${d}')}`).join(' ');
  return new cloudwatch.MathExpression({
    expression: `SEARCH('{${EMF_NAMESPACE},${dims}} MetricName="${metric}"', '${statistic}', 300)`,
    label,
    period: Duration.minutes(5),
  });
}

export class JoinkeeperOperations extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;
  public readonly recordRemainingAlarm: cloudwatch.Alarm;
  public readonly refreshFailingAlarm: cloudwatch.Alarm;
  public readonly abandonedAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: OperationsProps) {
    super(scope, id);
    const { period } = props;
    const query = (label: string, expression: string) => new cloudwatch.MathExpression({ expression, label, period });

    // A per-cluster alarm: a Metrics Insights query grouped by cluster (each cluster a
    // contributor), quiet while no function reports, and told to the people on call.
    const perClusterAlarm = (
      id: string,
      alarmDescription: string,
      label: string,
      stat: 'MIN' | 'SUM',
      metric: string,
      rule: Pick<cloudwatch.AlarmProps, 'threshold' | 'evaluationPeriods' | 'datapointsToAlarm' | 'comparisonOperator'>,
    ) => {
      const alarm = new cloudwatch.Alarm(this, id, {
        alarmDescription,
        metric: query(label, perClusterQuery(stat, metric)),
        ...rule,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(props.notify);
      return alarm;
    };
    const atLeastOne = { threshold: 1, comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD };

    this.recordRemainingAlarm = perClusterAlarm(
      'RecordRemainingLow',
      `a cluster's join record has less than ${props.expiryAlarmSeconds} s left (the contributor names the cluster): ` +
        'the refresher is not rotating it; `joinkeeper status --cluster <C>` shows why, `joinkeeper rotate --cluster <C>` rotates by hand',
      'seconds left per cluster',
      'MIN',
      EMF_METRICS.recordRemaining,
      { threshold: props.expiryAlarmSeconds, evaluationPeriods: 1, comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD },
    );
    this.refreshFailingAlarm = perClusterAlarm(
      'RefreshFailing',
      "a cluster's join record failed to refresh on two runs in a row (the contributor names the cluster); " +
        'the token-refresher log lines with outcome "failed" say why',
      'failed refreshes per cluster',
      'SUM',
      EMF_METRICS.refreshFailures,
      { ...atLeastOne, evaluationPeriods: 2, datapointsToAlarm: 2 },
    );
    this.abandonedAlarm = perClusterAlarm(
      'LaunchesAbandoned',
      'joinkeeper ABANDONed a worker that did not join by its deadline (the contributor names the cluster); ' +
        'the log line "abandoning a worker that could not join" has the reason and the tail of its join log',
      'abandoned launches per cluster',
      'SUM',
      EMF_METRICS.launchesAbandoned,
      { ...atLeastOne, evaluationPeriods: 1 },
    );

    // Every alarm of the stack (the functions' errors and the failed-events queue included).
    const alarms = Stack.of(this)
      .node.findAll()
      .filter((c): c is cloudwatch.Alarm => c instanceof cloudwatch.Alarm);

    const graph = (title: string, left: cloudwatch.IMetric[], opts: Partial<cloudwatch.GraphWidgetProps> = {}) =>
      new cloudwatch.GraphWidget({ title, left, width: 8, height: 6, ...opts });
    const fns = Object.values(props.functions);

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `joinkeeper-${Aws.REGION}`,
      defaultInterval: Duration.days(1),
      widgets: [
        [
          new cloudwatch.TextWidget({
            markdown:
              '# joinkeeper\nOne line per cluster. `joinkeeper status` for the details of one cluster, ' +
              '`joinkeeper rotate --cluster C [--revoke-all]` to rotate by hand (README, operators).',
            width: 8,
            height: 6,
          }),
          new cloudwatch.AlarmStatusWidget({
            title: 'Alarms',
            alarms,
            width: 16,
            height: 6,
            sortBy: cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP,
          }),
        ],
        [
          graph('Join record: seconds left (minimum)', [perCluster(EMF_METRICS.recordRemaining, 'Minimum')], {
            leftAnnotations: [{ value: props.expiryAlarmSeconds, label: 'alarm', color: cloudwatch.Color.RED }],
            leftYAxis: { min: 0 },
          }),
          graph('Refreshes failed', [perCluster(EMF_METRICS.refreshFailures, 'Sum')]),
          graph(
            'Regenerations (and failures)',
            [perCluster(EMF_METRICS.regenerations, 'Sum'), perCluster(EMF_METRICS.regenerationFailures, 'Sum')],
            { right: [perCluster(EMF_METRICS.regenerationDuration, 'Maximum')] },
          ),
        ],
        [
          graph('Launches completed CONTINUE', [perCluster(EMF_METRICS.launchesContinued, 'Sum')]),
          graph('Launches ABANDONed, by reason', [perCluster(EMF_METRICS.launchesAbandoned, 'Sum', ['Reason'])]),
          graph('Join latency: launch → Node Ready → hook completed (s)', [
            perCluster(EMF_METRICS.joinSeconds, 'p50'),
            perCluster(EMF_METRICS.joinSeconds, 'Maximum'),
          ]),
        ],
        [
          graph('Drains, by result; pods that blocked them', [
            perCluster(EMF_METRICS.drains, 'Sum', ['Result']),
            perCluster(EMF_METRICS.drainBlockedPods, 'Sum'),
          ], {
            right: [perCluster(EMF_METRICS.drainSeconds, 'Maximum')],
          }),
          graph('Actions completed by the sweep (their event was lost or late)', [perCluster(EMF_METRICS.completedBySweep, 'Sum')]),
          graph('Run Commands sent', [perCluster(EMF_METRICS.commandsSent, 'Sum')]),
          graph('Per-instance join tokens minted and revoked', [
            perCluster(EMF_METRICS.tokensMinted, 'Sum'),
            perCluster(EMF_METRICS.tokensRevoked, 'Sum'),
          ]),
        ],
        [
          graph('Failed events waiting', [
            props.failedEvents.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
          ]),
          graph('Function errors', fns.map((f) => f.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }))),
          graph('Function duration (max, ms)', fns.map((f) => f.metricDuration({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }))),
        ],
      ],
    });
    // The stack's tags stay off the dashboard: the cfn-lint schema the checks use predates Tags
    // on AWS::CloudWatch::Dashboard, and a dashboard costs the same tagged or not.
    (this.dashboard.node.defaultChild as cloudwatch.CfnDashboard).addPropertyDeletionOverride('Tags');
  }
}
