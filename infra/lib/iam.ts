// Least-privilege IAM statements for the joinkeeper functions.
//
// What IAM can and cannot say here (README.md, "IAM"): a SendCommand request is authorized once per
// resource it names — the document, then each instance — so one principal's policy can restrict
// the documents and the instances, but cannot tie a given document to a given kind of instance.
// The worker-instance statement is therefore only given to the functions that read a worker's
// join log (launch hook and the refresher's sweep), and the control-plane documents do nothing
// useful on a worker (no admin kubeconfig there).
import { Stack, ArnFormat } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { TAG_CLUSTER, TAG_ROLE, ROLE_CONTROL_PLANE, ROLE_WORKER } from './tags';

export interface FunctionGrants {
  /** SSM document names this function may run. */
  readonly documents: readonly string[];
  /** May send commands to worker instances (only the join-log document needs this). */
  readonly workerInstances: boolean;
  /** May read and write parameters under the prefix (join record, regenerate lock). */
  readonly parameters: boolean;
  /** May complete lifecycle actions and record heartbeats on joinkeeper's groups. */
  readonly lifecycle: boolean;
  readonly parameterPrefix: string;
  /** Customer managed key of the SecureString; default: any key, only through SSM for our parameters. */
  readonly parameterKmsKeyArn?: string;
}

export function parameterArns(stack: Stack, prefix: string): string[] {
  // prefix "/joinkeeper" → parameter/joinkeeper and parameter/joinkeeper/*
  const name = prefix.replace(/^\//, '');
  return [
    stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name, arnFormat: ArnFormat.SLASH_RESOURCE_NAME }),
    stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: `${name}/*`, arnFormat: ArnFormat.SLASH_RESOURCE_NAME }),
  ];
}

export function documentArn(stack: Stack, documentName: string): string {
  return stack.formatArn({ service: 'ssm', resource: 'document', resourceName: documentName, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
}

export function instanceArnPattern(stack: Stack): string {
  return stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
}

/** kms:Decrypt through SSM only, only for parameters under `scopePrefix` (e.g. /joinkeeper or /joinkeeper/demo). */
export function decryptParametersStatement(stack: Stack, scopePrefix: string, keyArn?: string, actions = ['kms:Decrypt']): iam.PolicyStatement {
  const name = scopePrefix.replace(/^\//, '');
  return new iam.PolicyStatement({
    sid: 'DecryptJoinkeeperParametersViaSsm',
    actions,
    resources: [keyArn ?? stack.formatArn({ service: 'kms', resource: 'key', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME })],
    conditions: {
      StringEquals: { 'kms:ViaService': `ssm.${stack.region}.amazonaws.com` },
      StringLike: {
        'kms:EncryptionContext:PARAMETER_ARN': stack.formatArn({
          service: 'ssm',
          resource: 'parameter',
          resourceName: `${name}/*`,
          arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
        }),
      },
    },
  });
}

export function functionStatements(stack: Stack, g: FunctionGrants): iam.PolicyStatement[] {
  const s: iam.PolicyStatement[] = [];
  if (g.documents.length > 0) {
    s.push(
      new iam.PolicyStatement({
        sid: 'SendJoinkeeperDocuments',
        actions: ['ssm:SendCommand'],
        resources: g.documents.map((d) => documentArn(stack, d)),
      }),
      new iam.PolicyStatement({
        sid: 'SendCommandToControlPlane',
        actions: ['ssm:SendCommand'],
        resources: [instanceArnPattern(stack)],
        conditions: {
          StringEquals: { [`ssm:resourceTag/${TAG_ROLE}`]: ROLE_CONTROL_PLANE },
          Null: { [`ssm:resourceTag/${TAG_CLUSTER}`]: 'false' },
        },
      }),
    );
    if (g.workerInstances) {
      s.push(
        new iam.PolicyStatement({
          sid: 'SendJoinLogCommandToWorkers',
          actions: ['ssm:SendCommand'],
          resources: [instanceArnPattern(stack)],
          conditions: {
            StringEquals: { [`ssm:resourceTag/${TAG_ROLE}`]: ROLE_WORKER },
            Null: { [`ssm:resourceTag/${TAG_CLUSTER}`]: 'false' },
          },
        }),
      );
    }
    s.push(
      new iam.PolicyStatement({
        // These actions have no resource-level permissions: "*" is the only form IAM accepts.
        sid: 'FollowCommands',
        // CancelCommand: a command past its deadline is cancelled on its instance.
        actions: ['ssm:GetCommandInvocation', 'ssm:ListCommandInvocations', 'ssm:ListCommands', 'ssm:CancelCommand', 'ssm:DescribeInstanceInformation'],
        resources: ['*'],
      }),
    );
  }
  if (g.parameters) {
    s.push(
      new iam.PolicyStatement({
        sid: 'JoinkeeperParameters',
        actions: ['ssm:GetParameter', 'ssm:GetParameters', 'ssm:GetParametersByPath', 'ssm:PutParameter', 'ssm:DeleteParameter'],
        resources: parameterArns(stack, g.parameterPrefix),
      }),
      decryptParametersStatement(stack, g.parameterPrefix, g.parameterKmsKeyArn),
    );
  }
  if (g.lifecycle) {
    s.push(
      new iam.PolicyStatement({
        sid: 'CompleteJoinkeeperLifecycleActions',
        actions: ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'],
        resources: [stack.formatArn({ service: 'autoscaling', resource: 'autoScalingGroup', resourceName: '*:autoScalingGroupName/*', arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
        conditions: {
          Null: { [`aws:ResourceTag/${TAG_CLUSTER}`]: 'false' },
          StringEquals: { [`aws:ResourceTag/${TAG_ROLE}`]: ROLE_WORKER },
        },
      }),
    );
  }
  s.push(
    new iam.PolicyStatement({
      // Discovery by tag and the instance/group state the decisions need; Describe* calls have
      // no resource-level permissions.
      sid: 'DiscoverClusters',
      actions: [
        'ec2:DescribeInstances',
        'ec2:DescribeTags',
        'autoscaling:DescribeAutoScalingGroups',
        'autoscaling:DescribeAutoScalingInstances',
        'autoscaling:DescribeLifecycleHooks',
        'autoscaling:DescribeTags',
      ],
      resources: ['*'],
    }),
  );
  return s;
}
