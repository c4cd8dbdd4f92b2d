// Builds the joinkeeper CDK app: the account stack and one cluster stack, from context values.
import { App, AppProps } from 'aws-cdk-lib';
import { JoinkeeperAccountStack } from './account-stack';
import { JoinkeeperClusterStack } from './cluster-stack';
import { accountConfig, clusterConfig } from './config';

/**
 * Feature flags the app relies on; cdk.json carries the same values (a test checks it), and
 * buildApp sets them too so that synth without the CLI (tests, scripts/synth-all.ts) matches.
 */
export const FEATURE_FLAGS: Record<string, boolean> = {
  // Auto Scaling groups use launch templates, never the retired launch configurations.
  '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true,
  '@aws-cdk/aws-ec2:uniqueImdsv2TemplateName': true,
  '@aws-cdk/aws-iam:minimizePolicies': true,
  '@aws-cdk/aws-lambda:recognizeLayerVersion': true,
  '@aws-cdk/core:enablePartitionLiterals': true,
};

export const ACCOUNT_STACK_ID = 'JoinkeeperAccount';
export function clusterStackId(clusterName: string): string {
  return `JoinkeeperCluster-${clusterName.replace(/[^A-Za-z0-9-]/g, '-')}`;
}

export interface JoinkeeperApp {
  readonly app: App;
  readonly account: JoinkeeperAccountStack;
  readonly cluster: JoinkeeperClusterStack;
}

/** `context` is merged over the CLI's context; FEATURE_FLAGS apply unless a caller overrides them. */
export function buildApp(props: AppProps = {}): JoinkeeperApp {
  const app = new App({ ...props, context: { ...FEATURE_FLAGS, ...(props.context ?? {}) } });
  for (const [k, v] of Object.entries(FEATURE_FLAGS)) {
    if (app.node.tryGetContext(k) === undefined) app.node.setContext(k, v);
  }
  // No account lookups: the stacks are environment-agnostic unless CDK_DEFAULT_* are set by the CLI.
  const env =
    process.env.CDK_DEFAULT_ACCOUNT && process.env.CDK_DEFAULT_REGION
      ? { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION }
      : undefined;
  const account = new JoinkeeperAccountStack(app, ACCOUNT_STACK_ID, { env, config: accountConfig(app.node) });
  const cc = clusterConfig(app.node);
  const cluster = new JoinkeeperClusterStack(app, clusterStackId(cc.clusterName), { env, config: cc });
  return { app, account, cluster };
}

