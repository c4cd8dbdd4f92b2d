// A cluster stack (one per cluster): a VPC, the control plane (one instance, or three behind an
// internal NLB), and a worker Auto Scaling group on a launch template with joinkeeper's launch and
// terminate lifecycle hooks. Every resource carries joinkeeper:cluster; control-plane instances
// and the worker group also carry joinkeeper:role.
import { Annotations, CfnOutput, CfnWaitCondition, CfnWaitConditionHandle, Duration, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as targets from 'aws-cdk-lib/aws-elasticloadbalancingv2-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { ClusterConfig, documentNames, hookNames, hookTimeouts } from './config';
import { clusterParameterArn, controlPlaneStatements, KEY_ADMIN_ACTIONS, nodeScriptsReadStatement, PARAMETER_NAMES, viaSsmConditions, workerStatements } from './iam';
import { nodeScriptsDir } from './sources';
import { controlPlaneProfileName, ROLE_CONTROL_PLANE, ROLE_WORKER, TAG_CLUSTER, TAG_ROLE } from './tags';
import { controlPlaneJoinParameter, controlPlaneUserData, joinRecordParameter, workerUserData } from './user-data';

export interface ClusterStackProps extends StackProps {
  readonly config: ClusterConfig;
}

/** What goes into the node-scripts asset: the scripts, not the test doubles, tests or documents. */
export const NODE_SCRIPTS_EXCLUDE = ['standins', 'standins/**', 'test', 'test/**', 'tests', 'tests/**', 'boot', 'boot/**', 'documents', 'documents/**', '__pycache__', '**/__pycache__', '*.md', '.*'];

export function ubuntuAmiParameter(arch: 'arm64' | 'x86_64'): string {
  return `/aws/service/canonical/ubuntu/server/22.04/stable/current/${arch === 'arm64' ? 'arm64' : 'amd64'}/hvm/ebs-gp2/ami-id`;
}

export class JoinkeeperClusterStack extends Stack {
  public readonly workers: autoscaling.AutoScalingGroup;
  public readonly controlPlane: ec2.Instance[];

  constructor(scope: Construct, id: string, props: ClusterStackProps) {
    super(scope, id, props);
    const c = props.config;
    const ha = c.controlPlaneMode === 'ha';
    this.templateOptions.description = `joinkeeper cluster ${c.clusterName}: ${c.installer}, ${c.controlPlaneMode} control plane, worker group with lifecycle hooks`;
    // (Listeners: the CloudFormation schema cfn-lint checks against has no Tags on them.)
    Tags.of(this).add(TAG_CLUSTER, c.clusterName, { excludeResourceTypes: ['AWS::ElasticLoadBalancingV2::Listener'] });

    // ---- Network --------------------------------------------------------------------------------
    const vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(c.vpcCidr),
      maxAzs: ha ? 3 : 2,
      natGateways: c.natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'nodes', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
    });
    const nodesSg = new ec2.SecurityGroup(this, 'NodesSecurityGroup', {
      vpc,
      description: `joinkeeper ${c.clusterName}: Kubernetes nodes`,
      allowAllOutbound: true,
    });
    // Node-to-node: kubelet, etcd (control planes), the pod network (VXLAN) and NodePorts.
    nodesSg.addIngressRule(nodesSg, ec2.Port.allTraffic(), 'Kubernetes nodes of this cluster');
    // The API server from inside the VPC (the internal NLB forwards from its private addresses).
    nodesSg.addIngressRule(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(6443), 'Kubernetes API from the VPC');

    // ---- Node scripts (S3 asset, installed by user data into /opt/joinkeeper) -----------------
    const scriptsSrc = nodeScriptsDir(this.node, c.nodeScriptsDir);
    if (scriptsSrc.standIn) {
      Annotations.of(this).addWarningV2('joinkeeper:standInNodeScripts', `node scripts taken from the test stand-in ${scriptsSrc.path}`);
    }
    const scripts = new s3assets.Asset(this, 'NodeScripts', { path: scriptsSrc.value, exclude: NODE_SCRIPTS_EXCLUDE });

    const machineImage = ec2.MachineImage.fromSsmParameter(ubuntuAmiParameter(c.nodeArchitecture), { os: ec2.OperatingSystemType.LINUX });
    const rootVolume = (gib: number): ec2.BlockDevice => ({
      deviceName: '/dev/sda1',
      volume: ec2.BlockDeviceVolume.ebs(gib, { volumeType: ec2.EbsDeviceVolumeType.GP3, encrypted: true, deleteOnTermination: true }),
    });

    // ---- Instance roles -------------------------------------------------------------------------
    // One pair per cluster stack, scoped to this cluster's parameters: no AmazonSSMManagedInstanceCore
    // (it allows ssm:GetParameter* on every parameter of the account), the SSM agent's own
    // permissions instead (lib/iam.ts).
    const cpRole = new iam.Role(this, 'ControlPlaneRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: `joinkeeper ${c.clusterName}: control-plane instances`,
    });
    // The control planes' identity: the functions send commands only to instances with this
    // profile (tags alone can be set by anyone who may tag instances). Its name is derived from
    // the cluster's (instance profile names are unique per account; attaching it needs
    // iam:PassRole on cpRole); the functions expect exactly this name (shared/src/identity.rs).
    const cpProfile = new iam.InstanceProfile(this, 'ControlPlaneProfile', {
      role: cpRole,
      instanceProfileName: controlPlaneProfileName(c.clusterName),
    });
    const workerRole = new iam.Role(this, 'WorkerRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: `joinkeeper ${c.clusterName}: worker instances`,
    });
    // The cluster's customer managed key (default; clusterKmsKey=false opts out to aws/ssm): only
    // this cluster's roles may use it, only through SSM, only for this cluster's parameters (the
    // encryption context SSM sets, PARAMETER_ARN); the account may administer it but not decrypt
    // with it. The functions are not in it: they read the record without decryption.
    let key: kms.Key | undefined;
    if (c.clusterKmsKey) {
      const clusterParams = clusterParameterArn(this, c.parameterPrefix, c.clusterName, '*');
      const record = c.joinMode === 'per-instance'
        ? clusterParameterArn(this, c.parameterPrefix, c.clusterName, `${PARAMETER_NAMES.instanceRecords}/*`)
        : clusterParameterArn(this, c.parameterPrefix, c.clusterName, PARAMETER_NAMES.record);
      key = new kms.Key(this, 'ParameterKey', {
        description: `joinkeeper ${c.clusterName}: SecureString parameters of this cluster`,
        enableKeyRotation: true,
        policy: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({ sid: 'Administer', principals: [new iam.AccountRootPrincipal()], actions: KEY_ADMIN_ACTIONS, resources: ['*'] }),
            new iam.PolicyStatement({
              sid: 'ControlPlanes',
              principals: [new iam.ArnPrincipal(cpRole.roleArn)],
              actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
              resources: ['*'],
              conditions: viaSsmConditions(this, clusterParams),
            }),
            new iam.PolicyStatement({
              sid: 'Workers',
              principals: [new iam.ArnPrincipal(workerRole.roleArn)],
              actions: ['kms:Decrypt'],
              resources: ['*'],
              conditions: viaSsmConditions(this, record),
            }),
          ],
        }),
      });
    }
    const grants = { parameterPrefix: c.parameterPrefix, clusterName: c.clusterName, keyArn: key?.keyArn };
    for (const st of controlPlaneStatements(this, { ...grants, uploadCertsDocument: documentNames(c.documentPrefix).uploadCerts })) {
      cpRole.addToPrincipalPolicy(st);
    }
    for (const st of workerStatements(this, { ...grants, joinMode: c.joinMode })) workerRole.addToPrincipalPolicy(st);
    // The functions read the mode to mint per-instance tokens (absent: shared).
    new ssm.StringParameter(this, 'JoinMode', {
      parameterName: `${c.parameterPrefix}/${c.clusterName}/${PARAMETER_NAMES.joinMode}`,
      stringValue: c.joinMode,
      description: `joinkeeper ${c.clusterName}: how workers join (shared or per-instance)`,
    });
    // Each role reads the one object its user data downloads (not Asset.grantRead: that is
    // s3:GetObject* and s3:List* on the whole bootstrap bucket).
    const scriptsObject = scripts.bucket.arnForObjects(scripts.s3ObjectKey);
    for (const role of [workerRole, cpRole]) role.addToPrincipalPolicy(nodeScriptsReadStatement(scriptsObject));

    const cpCount = ha ? 3 : 1;
    const handle = new CfnWaitConditionHandle(this, 'ControlPlaneReadyHandle');
    const subnets = vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnets;
    let nlb: elbv2.NetworkLoadBalancer | undefined;
    let endpoint: string | undefined;
    if (ha) {
      nlb = new elbv2.NetworkLoadBalancer(this, 'ApiServerNlb', {
        vpc,
        internetFacing: false,
        crossZoneEnabled: true,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      });
      endpoint = `${nlb.loadBalancerDnsName}:6443`;
    }
    this.controlPlane = [];
    for (let i = 0; i < cpCount; i++) {
      const ud = ec2.UserData.forLinux();
      ud.addCommands(
        ...controlPlaneUserData({
          config: c,
          region: this.region,
          scripts: { bucket: scripts.s3BucketName, key: scripts.s3ObjectKey },
          index: i,
          endpoint,
          waitHandleUrl: handle.ref,
          parameterKeyArn: key?.keyArn,
        }),
      );
      const instance = new ec2.Instance(this, `ControlPlane${i}`, {
        vpc,
        vpcSubnets: { subnets: [subnets[i % subnets.length]] },
        instanceType: new ec2.InstanceType(c.controlPlaneInstanceType),
        machineImage,
        instanceProfile: cpProfile,
        securityGroup: nodesSg,
        userData: ud,
        blockDevices: [rootVolume(c.installer === 'kurl' ? 100 : 40)],
        detailedMonitoring: false,
      });
      // IMDSv2 only, hop limit 1: a pod on a control plane cannot fetch the control-plane role
      // (which writes the join record and the certificate key) whatever the AMI's default is.
      const metadata = new ec2.CfnLaunchTemplate(this, `ControlPlane${i}Metadata`, {
        launchTemplateName: `${this.stackName}-control-plane-${i}-metadata`,
        launchTemplateData: { metadataOptions: { httpEndpoint: 'enabled', httpTokens: 'required', httpPutResponseHopLimit: 1 } },
      });
      (instance.node.defaultChild as ec2.CfnInstance).launchTemplate = {
        launchTemplateName: metadata.launchTemplateName,
        version: metadata.attrLatestVersionNumber,
      };
      Tags.of(instance).add(TAG_ROLE, ROLE_CONTROL_PLANE);
      Tags.of(instance).add('Name', `${c.clusterName}-control-plane-${i}`);
      this.controlPlane.push(instance);
    }
    if (nlb) {
      const listener = nlb.addListener('ApiServer', { port: 6443, protocol: elbv2.Protocol.TCP });
      const tg = listener.addTargets('ControlPlane', {
        port: 6443,
        protocol: elbv2.Protocol.TCP,
        targets: this.controlPlane.map((inst) => new targets.InstanceTarget(inst, 6443)),
        healthCheck: { protocol: elbv2.Protocol.TCP, interval: Duration.seconds(10), healthyThresholdCount: 2, unhealthyThresholdCount: 2 },
        // A control plane reaching the API through the NLB may be routed to itself; with client IP
        // preservation on, that hairpin connection fails (a known NLB behaviour), so turn it off.
        preserveClientIp: false,
        deregistrationDelay: Duration.seconds(30),
      });
      void tg;
    }
    // The worker group is created only once every control plane has signalled that it is up
    // (kubeadm init / join done, join record published), so its first workers can join at once.
    const ready = new CfnWaitCondition(this, 'ControlPlaneReady', { count: cpCount, handle: handle.ref, timeout: String(60 * 60) });
    for (const inst of this.controlPlane) ready.node.addDependency(inst);

    // ---- Workers ------------------------------------------------------------------------------
    const workerUd = ec2.UserData.forLinux();
    workerUd.addCommands(...workerUserData({ config: c, region: this.region, scripts: { bucket: scripts.s3BucketName, key: scripts.s3ObjectKey } }));
    const template = new ec2.LaunchTemplate(this, 'WorkerTemplate', {
      machineImage,
      instanceType: new ec2.InstanceType(c.workerInstanceType),
      role: workerRole,
      securityGroup: nodesSg,
      userData: workerUd,
      requireImdsv2: true,
      // 1: pods (one network hop further away) cannot reach IMDS for the worker role's
      // credentials; workerImdsHopLimit=2 opts out (README.md, "Instance metadata").
      httpPutResponseHopLimit: c.workerImdsHopLimit,
      blockDevices: [rootVolume(c.installer === 'kurl' ? 100 : 40)],
      // A Hibernated warm pool needs instances launched with hibernation enabled (the encrypted
      // root volume above holds the memory image).
      hibernationConfigured: c.warmPoolMinSize > 0 && c.warmPoolState === 'Hibernated' ? true : undefined,
    });
    const hooks = hookNames(c.hookNamePrefix);
    const timeouts = hookTimeouts(c);
    const workers = new autoscaling.AutoScalingGroup(this, 'Workers', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate: template,
      minCapacity: c.workerMinCapacity,
      maxCapacity: c.workerMaxCapacity,
      healthChecks: autoscaling.HealthChecks.ec2({ gracePeriod: Duration.minutes(5) }),
    });
    workers.node.addDependency(ready);
    Tags.of(workers).add(TAG_ROLE, ROLE_WORKER, { applyToLaunchedInstances: true });
    Tags.of(workers).add('Name', `${c.clusterName}-worker`, { applyToLaunchedInstances: true });
    const metadata = JSON.stringify({ cluster: c.clusterName });
    // The hooks are part of the group itself (LifecycleHookSpecificationList), not separate
    // AWS::AutoScaling::LifecycleHook resources, so that they exist before the group launches its
    // first instances: the very first workers are held until their Node is Ready too.
    // No notification target: the lifecycle events go to EventBridge, where the account stack's
    // rules pick them up.
    (workers.node.defaultChild as autoscaling.CfnAutoScalingGroup).lifecycleHookSpecificationList = [
      {
        lifecycleHookName: hooks.launch,
        lifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        // A worker that never gets a decision is replaced, never left half-joined in service.
        defaultResult: 'ABANDON',
        heartbeatTimeout: timeouts.launchHeartbeatSeconds,
        notificationMetadata: metadata,
      },
      {
        lifecycleHookName: hooks.terminate,
        lifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
        // The instance goes regardless; CONTINUE lets it go when no decision came in time.
        defaultResult: 'CONTINUE',
        heartbeatTimeout: timeouts.terminateHeartbeatSeconds,
        notificationMetadata: metadata,
      },
    ];
    if (c.warmPoolMinSize > 0) {
      // Optional warm pool: its instances run the user data (packages, node scripts, the boot
      // unit) but join only when they leave the pool for service. The launch hook fires on
      // entering the pool (joinkeeper completes it at once) and again on leaving it (held until
      // the Node is Ready); with reuse, scale-in drains and deletes the Node through the
      // terminate hook and the instance goes back to the pool.
      workers.addWarmPool({
        minSize: c.warmPoolMinSize,
        poolState: { Stopped: autoscaling.PoolState.STOPPED, Running: autoscaling.PoolState.RUNNING, Hibernated: autoscaling.PoolState.HIBERNATED }[c.warmPoolState],
        reuseOnScaleIn: c.warmPoolReuseOnScaleIn,
      });
    }
    this.workers = workers;

    // ---- Outputs ------------------------------------------------------------------------------
    new CfnOutput(this, 'ClusterName', { value: c.clusterName });
    new CfnOutput(this, 'ApiEndpoint', { value: endpoint ?? `${this.controlPlane[0].instancePrivateIp}:6443` });
    new CfnOutput(this, 'ControlPlaneInstanceIds', { value: this.controlPlane.map((i) => i.instanceId).join(' ') });
    new CfnOutput(this, 'WorkerGroupName', { value: workers.autoScalingGroupName });
    new CfnOutput(this, 'JoinRecordParameter', { value: joinRecordParameter(c) });
    if (ha) new CfnOutput(this, 'ControlPlaneJoinParameter', { value: controlPlaneJoinParameter(c) });
    if (key) new CfnOutput(this, 'ParameterKeyArn', { value: key.keyArn });
  }
}
