// The account stack: deployed once per account and region, it serves every cluster tagged for
// joinkeeper. Functions (prebuilt by cargo lambda), the schedule and lifecycle event rules, the
// SSM documents, log groups, alarms and least-privilege roles.
import * as path from 'node:path';
import { Annotations, CfnOutput, Duration, RemovalPolicy, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as lambdaSources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import eventSource from './event-source.json';
import exitEvents from './exit-events.json';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { AccountConfig, documentNames } from './config';
import { JoinkeeperOperations } from './dashboard';
import { functionStatements } from './iam';
import { DOCUMENT_FILES, DocumentKey, FunctionName, functionsArchitecture, functionsDir, loadDocument } from './sources';

export const METRIC_NAMESPACE = 'Joinkeeper';
export const LAUNCH_DETAIL_TYPE = 'EC2 Instance-launch Lifecycle Action';
export const TERMINATE_DETAIL_TYPE = 'EC2 Instance-terminate Lifecycle Action';
/**
 * The rules of the exits without a hook, from their one source (exit-events.json, which the
 * functions' own event reader writes): [construct id, description, exact pattern].
 */
export const EXIT_RULES: [string, string, events.EventPattern][] = exitEvents.rules.map((r) => {
  const p = r.pattern as { source: string[]; 'detail-type': string[]; detail?: Record<string, unknown> };
  return [r.id, r.description, { source: p.source, detailType: p['detail-type'], ...(p.detail ? { detail: p.detail } : {}) }];
});
/** Lambda timeout of every function (JOINKEEPER_FUNCTION_TIMEOUT_SECONDS tells them). */
export const FUNCTION_TIMEOUT = Duration.minutes(15);

export interface AccountStackProps extends StackProps {
  readonly config: AccountConfig;
}

export class JoinkeeperAccountStack extends Stack {
  public readonly functions: Record<FunctionName, lambda.Function>;
  public readonly documentNames: ReturnType<typeof documentNames>;
  public readonly alarmTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: AccountStackProps) {
    super(scope, id, props);
    const cfg = props.config;
    this.templateOptions.description =
      'joinkeeper account stack: keeps kubeadm/kURL join commands fresh and holds new workers until their Node is Ready';
    Tags.of(this).add('joinkeeper:component', 'account');

    // ---- SSM documents (versioned; the functions only ever run these) -------------------------
    const names = documentNames(cfg.documentPrefix);
    this.documentNames = names;
    const standIns: string[] = [];
    for (const key of Object.keys(DOCUMENT_FILES) as DocumentKey[]) {
      const doc = loadDocument(this.node, cfg.documentsDir, key);
      if (doc.standIn) standIns.push(doc.path);
      new ssm.CfnDocument(this, `Document-${key}`, {
        name: names[key],
        documentType: 'Command',
        documentFormat: 'JSON',
        content: doc.value,
        // A content change becomes a new default version instead of a replacement, which a
        // custom-named document could not survive.
        updateMethod: 'NewVersion',
        tags: [{ key: 'joinkeeper:document', value: key }],
      });
    }
    if (standIns.length > 0) {
      Annotations.of(this).addWarningV2(
        'joinkeeper:standInDocuments',
        `SSM documents taken from test stand-ins (node-scripts/documents missing): ${standIns.join(', ')}`,
      );
    }

    // ---- Functions ------------------------------------------------------------------------------
    const dir = functionsDir(cfg.functionsDir);
    const architecture = functionsArchitecture(dir, cfg.architecture) === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64;
    const environment: Record<string, string> = {
      JOINKEEPER_PARAMETER_PREFIX: cfg.parameterPrefix,
      JOINKEEPER_TOKEN_TTL_SECONDS: String(cfg.tokenTtlSeconds),
      JOINKEEPER_REFRESH_MARGIN_SECONDS: String(cfg.refreshMarginSeconds),
      JOINKEEPER_COMMAND_DEADLINE_SECONDS: String(cfg.commandDeadlineSeconds),
      JOINKEEPER_COMMAND_POLL_MILLIS: String(cfg.commandPollMillis),
      JOINKEEPER_JOIN_DEADLINE_SECONDS: String(cfg.joinDeadlineSeconds),
      JOINKEEPER_DRAIN_TIMEOUT_SECONDS: String(cfg.drainTimeoutSeconds),
      JOINKEEPER_DEREGISTRATION_DELAY_SECONDS: String(cfg.deregistrationDelaySeconds),
      JOINKEEPER_DRAIN_CONCURRENCY: String(cfg.drainConcurrency),
      JOINKEEPER_REGENERATE_DOCUMENT: names.regenerate,
      JOINKEEPER_NODE_STATUS_DOCUMENT: names.nodeStatus,
      JOINKEEPER_DRAIN_DOCUMENT: names.drain,
      JOINKEEPER_JOIN_LOG_DOCUMENT: names.joinLog,
      JOINKEEPER_NODES_DOCUMENT: names.nodes,
      JOINKEEPER_CORDON_DOCUMENT: names.cordon,
      JOINKEEPER_FUNCTION_TIMEOUT_SECONDS: String(FUNCTION_TIMEOUT.toSeconds()),
      JOINKEEPER_HOOK_PREFIX: cfg.hookNamePrefix,
      RUST_LOG: cfg.rustLog,
    };
    // Set only when given: the functions' own defaults apply otherwise.
    if (cfg.nodePollSeconds !== undefined) environment.JOINKEEPER_NODE_POLL_SECONDS = String(cfg.nodePollSeconds);
    if (cfg.controlPlaneProfiles !== undefined) environment.JOINKEEPER_CONTROL_PLANE_PROFILES = cfg.controlPlaneProfiles;
    Object.assign(environment, cfg.exitSettings);

    // Events that could not be delivered (EventBridge) or failed after Lambda's retries land here.
    const failed = new sqs.Queue(this, 'FailedEvents', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    // Every function runs the same reconciler (any trigger reconciles the whole cluster: launch,
    // terminate, drain, heartbeats, and a join record that would expire before a worker could
    // join is regenerated first), so all three run the same documents. No function gets the
    // upload-certs document: control planes ask each other for it.
    const documents = [names.regenerate, names.nodes, names.nodeStatus, names.drain, names.cordon, names.joinLog];
    const grants: Record<FunctionName, { documents: string[] }> = {
      'token-refresher': { documents },
      'launch-hook': { documents },
      'terminate-hook': { documents },
    };
    const descriptions: Record<FunctionName, string> = {
      'token-refresher': 'joinkeeper: keeps every cluster join record fresh; sweeps lifecycle hooks whose event was lost',
      'launch-hook': 'joinkeeper: holds a new worker in Pending:Wait until its Node is Ready, then CONTINUE (or ABANDON at the deadline)',
      'terminate-hook': 'joinkeeper: drains and deletes the Node of a terminating worker, then completes the hook',
    };

    const fns = {} as Record<FunctionName, lambda.Function>;
    const logGroups = {} as Record<FunctionName, logs.LogGroup>;
    for (const name of Object.keys(grants) as FunctionName[]) {
      const logGroup = new logs.LogGroup(this, `${pascal(name)}Logs`, {
        retention: retention(cfg.logRetentionDays),
        removalPolicy: RemovalPolicy.RETAIN,
      });
      const role = new iam.Role(this, `${pascal(name)}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `joinkeeper ${name}`,
      });
      logGroup.grantWrite(role);
      for (const st of functionStatements(this, { ...grants[name], parameterPrefix: cfg.parameterPrefix })) {
        role.addToPrincipalPolicy(st);
      }
      const fn = new lambda.Function(this, pascal(name), {
        description: descriptions[name],
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture,
        handler: 'bootstrap',
        // Only the binary: cargo lambda may leave a bootstrap.zip beside it.
        code: lambda.Code.fromAsset(path.join(dir, name), { exclude: ['*.zip'] }),
        memorySize: 256,
        // The launch hook keeps checking within one invocation (bounded well under this); the
        // refresher may regenerate and sweep; the terminate hook waits for a drain.
        timeout: FUNCTION_TIMEOUT,
        environment,
        role,
        logGroup,
      });
      fn.configureAsyncInvoke({
        retryAttempts: 2,
        maxEventAge: Duration.hours(2),
        onFailure: new destinations.SqsDestination(failed),
      });
      fns[name] = fn;
      logGroups[name] = logGroup;
    }
    this.functions = fns;

    // ---- Triggers -------------------------------------------------------------------------------
    const targetOpts = { deadLetterQueue: failed, retryAttempts: 8, maxEventAge: Duration.hours(2) };
    new events.Rule(this, 'RefreshSchedule', {
      description: 'joinkeeper: refresh join records and sweep waiting lifecycle hooks',
      schedule: events.Schedule.rate(Duration.minutes(cfg.refreshIntervalMinutes)),
      targets: [new targets.LambdaFunction(fns['token-refresher'], targetOpts)],
    });
    // Lifecycle events carry no tags, so the rule filters on what they do carry: the hook name
    // (joinkeeper's hooks are named <hookNamePrefix>launch / <hookNamePrefix>terminate), and the
    // group name when groupNamePrefix is set. The functions then check the joinkeeper:cluster tag.
    const detail = (): Record<string, unknown> => {
      const d: Record<string, unknown> = { LifecycleHookName: events.Match.prefix(cfg.hookNamePrefix) };
      if (cfg.groupNamePrefix) d.AutoScalingGroupName = events.Match.prefix(cfg.groupNamePrefix);
      return d;
    };
    // Lifecycle events go through a queue: a burst of N launches becomes a few batched
    // invocations, each reconciling each cluster of its batch once (the functions answer with
    // ReportBatchItemFailures). Visibility timeout 6 × the function timeout (AWS's guidance for
    // SQS event sources); a message that failed 5 receives moves to the dead-letter queue.
    // https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html
    const lifecycleDeadLetters = new sqs.Queue(this, 'LifecycleDeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    const lifecycleQueue = new sqs.Queue(this, 'LifecycleEvents', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(4),
      visibilityTimeout: Duration.seconds(FUNCTION_TIMEOUT.toSeconds() * eventSource.visibilityTimeoutFactor),
      deadLetterQueue: { queue: lifecycleDeadLetters, maxReceiveCount: eventSource.maxReceiveCount },
    });
    const queueTarget = new targets.SqsQueue(lifecycleQueue, { deadLetterQueue: failed, retryAttempts: 8, maxEventAge: Duration.hours(2) });
    new events.Rule(this, 'LaunchLifecycleRule', {
      description: 'joinkeeper: worker launching (launch lifecycle hook)',
      eventPattern: { source: ['aws.autoscaling'], detailType: [LAUNCH_DETAIL_TYPE], detail: detail() },
      targets: [queueTarget],
    });
    new events.Rule(this, 'TerminateLifecycleRule', {
      description: 'joinkeeper: worker terminating (terminate lifecycle hook)',
      eventPattern: { source: ['aws.autoscaling'], detailType: [TERMINATE_DETAIL_TYPE], detail: detail() },
      targets: [queueTarget],
    });
    // Workers leaving by doors without a hook: EC2's Spot warnings, rebalance recommendations
    // and state changes, and AWS Health's scheduled EC2 maintenance, straight to the terminate
    // function (no batching window: a Spot warning leaves two minutes). The events carry no tags;
    // the function asks EC2 and Auto Scaling which cluster an instance is a worker of.
    // https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
    const exitTarget = new targets.LambdaFunction(fns['terminate-hook'], targetOpts);
    for (const [id, description, pattern] of EXIT_RULES) {
      new events.Rule(this, id, { description, eventPattern: pattern, targets: [exitTarget] });
    }
    // Both lifecycle functions consume the queue (either reconciles any cluster, whatever the
    // transition); grants ReceiveMessage, DeleteMessage, GetQueueAttributes (and ChangeMessageVisibility).
    for (const name of ['launch-hook', 'terminate-hook'] as const) {
      fns[name].addEventSource(new lambdaSources.SqsEventSource(lifecycleQueue, {
        batchSize: cfg.eventBatchSize,
        maxBatchingWindow: Duration.seconds(cfg.eventBatchWindowSeconds),
        reportBatchItemFailures: true,
      }));
    }

    // ---- Alarms -------------------------------------------------------------------------------
    this.alarmTopic = new sns.Topic(this, 'Alarms', { displayName: 'joinkeeper alarms', enforceSSL: true });
    if (cfg.alarmEmail) this.alarmTopic.addSubscription(new subs.EmailSubscription(cfg.alarmEmail));
    const notify = new cwActions.SnsAction(this.alarmTopic);
    const period = Duration.minutes(Math.max(5, cfg.refreshIntervalMinutes));

    for (const name of Object.keys(fns) as FunctionName[]) {
      new cloudwatch.Alarm(this, `${pascal(name)}Errors`, {
        alarmDescription: `joinkeeper ${name} returned errors (see its log group)`,
        metric: fns[name].metricErrors({ period, statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }).addAlarmAction(notify);
    }

    // Record expiry and abandoned launches alarm per cluster on the functions' embedded metrics
    // (lib/dashboard.ts); only the failed-events queue is alarmed here.
    new cloudwatch.Alarm(this, 'FailedEventsAlarm', {
      alarmDescription: 'lifecycle or schedule events joinkeeper could not handle are waiting in the failed-events queue',
      metric: failed.metricApproximateNumberOfMessagesVisible({ period, statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }).addAlarmAction(notify);

    new cloudwatch.Alarm(this, 'LifecycleDeadLettersAlarm', {
      alarmDescription: 'lifecycle events that failed 5 deliveries are waiting in the lifecycle dead-letter queue',
      metric: lifecycleDeadLetters.metricApproximateNumberOfMessagesVisible({ period, statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }).addAlarmAction(notify);

    // Dashboard and per-cluster alarms on the functions' embedded metrics (lib/dashboard.ts).
    new JoinkeeperOperations(this, 'Operations', { failedEvents: failed, functions: fns, notify, period, expiryAlarmSeconds: cfg.expiryAlarmSeconds });

    // ---- Outputs ------------------------------------------------------------------------------
    for (const name of Object.keys(fns) as FunctionName[]) {
      new CfnOutput(this, `${pascal(name)}Name`, { value: fns[name].functionName });
    }
    new CfnOutput(this, 'DocumentNames', { value: Object.values(names).join(' ') });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarmTopic.topicArn });
    new CfnOutput(this, 'FailedEventsQueueUrl', { value: failed.queueUrl });
    new CfnOutput(this, 'LifecycleQueueUrl', { value: lifecycleQueue.queueUrl });
  }
}

function pascal(s: string): string {
  return s.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase());
}

function retention(days: number): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number' && v > 0).sort((a, b) => a - b);
  const pick = allowed.find((d) => d >= days) ?? allowed[allowed.length - 1];
  return pick as logs.RetentionDays;
}
