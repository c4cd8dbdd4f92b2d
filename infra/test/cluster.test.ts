// The cluster stack, in both control-plane modes and with both installers.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { actionsOf, flat, renderUserData, resourcesOf, statementsOfRole, synth } from './support';

type Res = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };

function userDataOf(t: Template, type: string, pick: (r: Res) => unknown): string[] {
  return (Object.values(t.findResources(type)) as Res[])
    .map(pick)
    .filter((u) => u !== undefined)
    .map((u) => renderUserData(u));
}
const instanceUserData = (t: Template) => userDataOf(t, 'AWS::EC2::Instance', (r) => r.Properties.UserData);
const workerUserData = (t: Template) =>
  userDataOf(t, 'AWS::EC2::LaunchTemplate', (r) => r.Properties.LaunchTemplateData?.UserData).filter((u) => u.includes("JK_ROLE='worker'"));

const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0;

function checkBash(script: string, name: string): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jk-ud-'));
  const file = path.join(dir, `${name}.sh`);
  fs.writeFileSync(file, script);
  try {
    const syntax = spawnSync('bash', ['-n', file], { encoding: 'utf8' });
    assert.equal(syntax.status, 0, `bash -n ${name}: ${syntax.stderr}`);
    if (hasShellcheck) {
      const sc = spawnSync('shellcheck', ['-s', 'bash', '-S', 'warning', file], { encoding: 'utf8' });
      assert.equal(sc.status, 0, `shellcheck ${name}:\n${sc.stdout}${sc.stderr}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

for (const mode of ['single', 'ha'] as const) {
  for (const installer of ['kubeadm', 'kurl'] as const) {
    describe(`cluster stack: ${mode} control plane, ${installer}`, () => {
      const { cluster } = synth({ controlPlaneMode: mode, installer });
      const cpCount = mode === 'ha' ? 3 : 1;

      it('has a VPC with public and private subnets and one security group for the nodes', () => {
        cluster.resourceCountIs('AWS::EC2::VPC', 1);
        cluster.hasResourceProperties('AWS::EC2::Subnet', { MapPublicIpOnLaunch: false });
        cluster.resourceCountIs('AWS::EC2::NatGateway', 1);
        cluster.resourceCountIs('AWS::EC2::SecurityGroup', 1);
        cluster.hasResourceProperties('AWS::EC2::SecurityGroup', {
          SecurityGroupIngress: Match.arrayWith([Match.objectLike({ FromPort: 6443, ToPort: 6443, IpProtocol: 'tcp' })]),
        });
        cluster.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { IpProtocol: '-1' });
      });

      it(`runs ${cpCount} control-plane instance(s), tagged and with IMDSv2 required`, () => {
        cluster.resourceCountIs('AWS::EC2::Instance', cpCount);
        cluster.allResourcesProperties('AWS::EC2::Instance', {
          Tags: Match.arrayWith([
            { Key: 'joinkeeper:cluster', Value: 'demo' },
            { Key: 'joinkeeper:role', Value: 'control-plane' },
          ]),
          LaunchTemplate: Match.objectLike({ LaunchTemplateName: Match.anyValue() }),
        });
        cluster.allResourcesProperties('AWS::EC2::LaunchTemplate', {
          LaunchTemplateData: Match.objectLike({ MetadataOptions: Match.objectLike({ HttpTokens: 'required' }) }),
        });
        // Control planes: hop limit 1 (no pod gets the control-plane role), whatever the AMI says.
        const cpTemplates = Object.values(cluster.findResources('AWS::EC2::LaunchTemplate')).filter(
          (t) => !(t as Res).Properties.LaunchTemplateData.UserData,
        ) as Res[];
        assert.equal(cpTemplates.length, cpCount);
        for (const t of cpTemplates) assert.deepEqual(t.Properties.LaunchTemplateData.MetadataOptions, { HttpEndpoint: 'enabled', HttpTokens: 'required', HttpPutResponseHopLimit: 1 });
      });

      it(mode === 'ha' ? 'puts the API servers behind an internal NLB on 6443' : 'has no load balancer', () => {
        if (mode === 'single') {
          cluster.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 0);
          return;
        }
        cluster.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Type: 'network', Scheme: 'internal' });
        cluster.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 6443, Protocol: 'TCP' });
        cluster.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
          Port: 6443,
          Protocol: 'TCP',
          Targets: Match.arrayWith([Match.objectLike({ Port: 6443 })]),
          TargetGroupAttributes: Match.arrayWith([{ Key: 'preserve_client_ip.enabled', Value: 'false' }]),
        });
        const tg = Object.values(cluster.findResources('AWS::ElasticLoadBalancingV2::TargetGroup'))[0] as Res;
        assert.equal(tg.Properties.Targets.length, 3);
      });

      it('creates the worker group on a launch template (no launch configuration), tagged for discovery', () => {
        cluster.resourceCountIs('AWS::AutoScaling::LaunchConfiguration', 0);
        cluster.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
          LaunchTemplate: Match.objectLike({ LaunchTemplateId: Match.anyValue(), Version: Match.anyValue() }),
          MinSize: '1',
          MaxSize: '5',
          Tags: Match.arrayWith([
            { Key: 'joinkeeper:cluster', PropagateAtLaunch: true, Value: 'demo' },
            { Key: 'joinkeeper:role', PropagateAtLaunch: true, Value: 'worker' },
          ]),
        });
        cluster.hasResourceProperties('AWS::EC2::LaunchTemplate', {
          LaunchTemplateData: Match.objectLike({
            MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
            IamInstanceProfile: Match.anyValue(),
            UserData: Match.anyValue(),
          }),
        });
      });

      it('holds new workers (the first ones too) with a launch hook that ABANDONs by default, and drains with a terminate hook', () => {
        // Part of the group, so the hooks exist before its first instance launches.
        cluster.resourceCountIs('AWS::AutoScaling::LifecycleHook', 0);
        cluster.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
          LifecycleHookSpecificationList: [
            {
              LifecycleHookName: 'joinkeeper-launch',
              LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
              DefaultResult: 'ABANDON',
              HeartbeatTimeout: 1200,
              NotificationMetadata: '{"cluster":"demo"}',
            },
            {
              LifecycleHookName: 'joinkeeper-terminate',
              LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
              DefaultResult: 'CONTINUE',
              HeartbeatTimeout: 600,
              NotificationMetadata: '{"cluster":"demo"}',
            },
          ],
        });
        const asg = Object.values(cluster.findResources('AWS::AutoScaling::AutoScalingGroup'))[0] as Res;
        for (const h of asg.Properties.LifecycleHookSpecificationList as Array<Record<string, unknown>>) {
          const t = h.HeartbeatTimeout as number;
          assert.ok(t >= 30 && t <= 7200, 'heartbeat timeout within 30..7200 s');
          assert.ok(String(h.LifecycleHookName).startsWith('joinkeeper-'), 'the account stack rules match this prefix');
          assert.equal(h.NotificationTargetARN, undefined, 'events go to EventBridge');
        }
      });

      it('creates the worker group only after every control plane has signalled', () => {
        cluster.hasResourceProperties('AWS::CloudFormation::WaitCondition', { Count: cpCount, Timeout: '3600' });
        const [waitId] = Object.keys(cluster.findResources('AWS::CloudFormation::WaitCondition'));
        const asg = Object.values(cluster.findResources('AWS::AutoScaling::AutoScalingGroup'))[0] as Res;
        assert.ok(asg.DependsOn?.includes(waitId), `ASG depends on ${waitId}`);
        const wait = cluster.findResources('AWS::CloudFormation::WaitCondition')[waitId] as Res;
        const instances = Object.keys(cluster.findResources('AWS::EC2::Instance'));
        assert.equal(instances.length, cpCount);
        for (const i of instances) assert.ok(wait.DependsOn?.includes(i), `wait condition depends on ${i}`);
      });

      it('user data installs the node scripts, then initializes or joins', () => {
        const cps = instanceUserData(cluster);
        const init = cps.filter((u) => u.includes('JK_CP_INDEX=0'));
        assert.equal(init.length, 1);
        for (const u of [...cps, ...workerUserData(cluster)]) {
          assert.match(u, /aws s3 cp --only-show-errors "s3:\/\/\$JK_SCRIPTS_BUCKET\/\$JK_SCRIPTS_KEY"/);
          assert.match(u, /unzip -oq "\$tmp\/node-scripts.zip" -d \/opt\/joinkeeper/);
          assert.match(u, /^install_node_scripts$/m);
        }
        const publish = '/opt/joinkeeper/bin/joinkeeper-publish --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --ttl-seconds "$JK_TTL"';
        if (installer === 'kubeadm') {
          assert.ok(init[0].includes('kubeadm init --config /root/kubeadm-init.yaml'));
          assert.ok(init[0].includes(`${publish}\n`));
          assert.ok(!init[0].includes('--mode kurl'));
        } else {
          assert.ok(init[0].includes('bash /root/kurl-install.sh'));
          assert.ok(init[0].includes(`${publish} --mode kurl`));
          assert.ok(init[0].includes('JOINKEEPER_MODE=kurl'));
        }
        for (const u of cps.filter((x) => !x.includes('JK_CP_INDEX=0'))) {
          const join = installer === 'kubeadm' ? 'kubeadm join --config /root/kubeadm-join.yaml' : 'bash /root/kurl-join.sh';
          assert.ok(u.includes(join));
          assert.ok(!u.includes('joinkeeper-publish'));
          // A valid certificate key first (asked of a healthy peer when the first has expired),
          // and out of Parameter Store once joined.
          const request = u.indexOf('/opt/joinkeeper/bin/joinkeeper-request-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX"');
          const forget = u.indexOf('/opt/joinkeeper/bin/joinkeeper-forget-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" || true');
          assert.ok(request > 0 && request < u.indexOf(join) && u.indexOf(join) < forget, 'request-certs, join, forget-certs in that order');
          assert.ok(u.includes("JK_UPLOAD_CERTS_DOCUMENT='joinkeeper-upload-certs'"));
        }
        if (mode === 'ha') {
          // The key goes to Parameter Store before the record, and is forgotten after a bounded wait.
          const upload = init[0].indexOf('/opt/joinkeeper/bin/joinkeeper-upload-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX"');
          assert.ok(upload > 0 && upload < init[0].indexOf(publish), 'upload-certs before publish');
          assert.ok(init[0].includes('joinkeeper-forget-certs --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --wait-seconds 3600'));
        } else {
          assert.ok(init[0].includes('JK_HA=0') && !init[0].includes('joinkeeper-forget-certs'), 'no certificate key to forget');
        }
        const workers = workerUserData(cluster);
        assert.equal(workers.length, 1);
        assert.ok(workers[0].includes('/opt/joinkeeper/bin/joinkeeper-join --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --deadline-seconds "$JK_JOIN_DEADLINE"'));
        assert.ok(workers[0].includes("JK_CLUSTER='demo'") && workers[0].includes("JK_PREFIX='/joinkeeper'"));
      });

      it(`user data is valid bash${hasShellcheck ? ' and shellcheck-clean' : ' (shellcheck not installed: syntax only)'}`, () => {
        instanceUserData(cluster).forEach((u, i) => checkBash(u, `cp${i}-${mode}-${installer}`));
        workerUserData(cluster).forEach((u, i) => checkBash(u, `worker${i}-${mode}-${installer}`));
      });

      it('never puts a token secret or certificate key on a command line it controls', () => {
        for (const u of instanceUserData(cluster)) {
          assert.ok(!/kubeadm (init|join)[^\n]*--(token|certificate-key|discovery-token-ca-cert-hash)/.test(u));
          assert.ok(!/put-parameter[^\n]*--value/.test(u));
          assert.ok(!/--arg \w+ "\$(value|certkey|token_secret|2)"/.test(u), 'secrets reach jq through the environment');
        }
      });
    });
  }
}

describe('cluster stack: IAM and tags', () => {
  const { cluster } = synth();
  const arn = (name: string) => `arn:{AWS::Partition}:ssm:{AWS::Region}:{AWS::AccountId}:parameter/joinkeeper/demo/${name}`;
  const ssmParameterActions = (sts: ReturnType<typeof statementsOfRole>) => {
    const byAction = new Map<string, string[]>();
    for (const s of sts.filter((x) => actionsOf(x).some((a) => /^ssm:.*Parameter/.test(a)))) {
      for (const a of actionsOf(s)) byAction.set(a, [...(byAction.get(a) ?? []), ...resourcesOf(s).map(flat)].sort());
    }
    return byAction;
  };

  it('lets control planes read and write their own cluster parameters, and nothing else', () => {
    const cp = ssmParameterActions(statementsOfRole(cluster, 'ControlPlaneRole'));
    const own = [arn('control-plane-join'), arn('join-record'), arn('join-record-meta')];
    const withRecords = [...own, arn('join/*')].sort();
    assert.deepEqual(Object.fromEntries(cp), {
      'ssm:DeleteParameter': withRecords,
      'ssm:GetParameter': own,
      'ssm:PutParameter': withRecords,
      'ssm:GetParameterHistory': [arn('join-record')],
      // Per-instance records: created with their tags, checked without decryption, deleted 10 a call.
      'ssm:AddTagsToResource': [arn('join/*')],
      'ssm:GetParameters': [arn('join/*')],
      'ssm:DeleteParameters': [arn('join/*')],
    });
  });

  it('joinMode=per-instance: a worker reads only the record tagged with its own instance, never the shared one', () => {
    const { cluster: pi } = synth({ joinMode: 'per-instance' });
    const worker = statementsOfRole(pi, 'WorkerRole');
    assert.deepEqual(Object.fromEntries(ssmParameterActions(worker)), { 'ssm:GetParameter': [arn('join/*')] });
    const read = worker.find((s) => actionsOf(s).includes('ssm:GetParameter'))!;
    assert.deepEqual(read.Condition, { StringEquals: { 'ssm:resourceTag/joinkeeper:instance': '${ec2:SourceInstanceARN}' } });
    const kms = worker.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    assert.equal(flat(kms[0].Condition?.StringLike?.['kms:EncryptionContext:PARAMETER_ARN']), arn('join/*'));
    pi.hasResourceProperties('AWS::SSM::Parameter', { Name: '/joinkeeper/demo/join-mode', Value: 'per-instance', Type: 'String' });
    cluster.hasResourceProperties('AWS::SSM::Parameter', { Name: '/joinkeeper/demo/join-mode', Value: 'shared' });
  });

  it('gives every control plane the profile joinkeeper-control-plane-<cluster>, the functions\' proof of identity', () => {
    const profiles = cluster.findResources('AWS::IAM::InstanceProfile', { Properties: { InstanceProfileName: 'joinkeeper-control-plane-demo' } });
    const ids = Object.keys(profiles);
    assert.equal(ids.length, 1, 'one control-plane profile, named after the cluster');
    const roles = (Object.values(profiles)[0] as Res).Properties.Roles.map(flat);
    assert.ok(roles.some((r: string) => r.includes('ControlPlaneRole')), `profile roles: ${roles}`);
    for (const inst of Object.values(cluster.findResources('AWS::EC2::Instance')) as Res[]) {
      assert.deepEqual(inst.Properties.IamInstanceProfile, { Ref: ids[0] });
    }
  });

  it('lets workers read their own cluster join record only, never the certificate key', () => {
    const worker = statementsOfRole(cluster, 'WorkerRole');
    assert.deepEqual(Object.fromEntries(ssmParameterActions(worker)), { 'ssm:GetParameter': [arn('join-record')] });
    const kms = worker.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    assert.equal(kms.length, 1);
    assert.deepEqual(actionsOf(kms[0]), ['kms:Decrypt']);
    assert.equal(flat(kms[0].Condition?.StringLike?.['kms:EncryptionContext:PARAMETER_ARN']), arn('join-record'));
  });

  it('uses keys only through SSM, only for the cluster parameters', () => {
    for (const role of ['ControlPlaneRole', 'WorkerRole']) {
      for (const st of statementsOfRole(cluster, role).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')))) {
        assert.equal(flat(st.Condition?.StringEquals?.['kms:ViaService']), 'ssm.{AWS::Region}.amazonaws.com');
        assert.match(flat(st.Condition?.StringLike?.['kms:EncryptionContext:PARAMETER_ARN']), /:parameter\/joinkeeper\/demo\//);
      }
    }
  });

  it('gives the SSM agent its own permissions instead of AmazonSSMManagedInstanceCore (no Parameter Store on "*")', () => {
    cluster.allResourcesProperties('AWS::IAM::Role', { ManagedPolicyArns: Match.absent() });
    for (const role of ['ControlPlaneRole', 'WorkerRole']) {
      const sts = statementsOfRole(cluster, role);
      assert.ok(sts.some((s) => s.Sid === 'SsmAgent' && actionsOf(s).includes('ssm:UpdateInstanceInformation') && actionsOf(s).includes('ssmmessages:OpenDataChannel')), role);
      for (const s of sts.filter((x) => resourcesOf(x).includes('*'))) {
        for (const a of actionsOf(s)) assert.ok(!/^ssm:(Get|Put|Delete)Parameter|^ssm:\*$|^\*$/.test(a), `${role}: ${a} on "*"`);
      }
    }
  });

  it('lets each instance role read the one node scripts object its user data downloads, nothing else of the assets bucket', () => {
    const keys = new Set([...instanceUserData(cluster), ...workerUserData(cluster)].map((u) => /^JK_SCRIPTS_KEY="([0-9a-f]{64}\.zip)"$/m.exec(u)?.[1]));
    assert.equal(keys.size, 1);
    const [key] = [...keys];
    assert.ok(key);
    for (const role of ['ControlPlaneRole', 'WorkerRole']) {
      const s3 = statementsOfRole(cluster, role).filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
      assert.equal(s3.length, 1, role);
      assert.deepEqual(actionsOf(s3[0]), ['s3:GetObject'], role);
      assert.deepEqual(resourcesOf(s3[0]).map(flat), [`arn:{AWS::Partition}:s3:::{"Fn::Sub":"cdk-hnb659fds-assets-\${AWS::AccountId}-\${AWS::Region}"}/${key}`], role);
    }
  });

  it('lets a control plane ask only its own cluster control planes to upload certificates', () => {
    const send = statementsOfRole(cluster, 'ControlPlaneRole').filter((s) => actionsOf(s).includes('ssm:SendCommand'));
    assert.equal(send.length, 2);
    const doc = send.find((s) => flat(resourcesOf(s)[0]).includes(':document/'))!;
    assert.deepEqual(resourcesOf(doc).map(flat), ['arn:{AWS::Partition}:ssm:{AWS::Region}:{AWS::AccountId}:document/joinkeeper-upload-certs']);
    const inst = send.find((s) => flat(resourcesOf(s)[0]).includes(':instance/'))!;
    assert.deepEqual(inst.Condition?.StringEquals, { 'ssm:resourceTag/joinkeeper:cluster': 'demo', 'ssm:resourceTag/joinkeeper:role': 'control-plane' });
    assert.ok(!statementsOfRole(cluster, 'WorkerRole').some((s) => actionsOf(s).includes('ssm:SendCommand')));
  });

  it('keeps pods away from the worker role (IMDS hop limit 1) unless workerImdsHopLimit opts out', () => {
    const { cluster: c } = synth({ workerImdsHopLimit: '2' });
    c.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 2 }, UserData: Match.anyValue() }),
    });
    assert.throws(() => synth({ workerImdsHopLimit: '0' }), /workerImdsHopLimit/);
  });

  it('uses the account aws/ssm key only when clusterKmsKey=false opts out', () => {
    const { cluster: c } = synth({ clusterKmsKey: 'false' });
    c.resourceCountIs('AWS::KMS::Key', 0);
    for (const role of ['ControlPlaneRole', 'WorkerRole']) {
      const kms = statementsOfRole(c, role).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
      assert.deepEqual(kms.flatMap(resourcesOf).map(flat), ['arn:{AWS::Partition}:kms:{AWS::Region}:{AWS::AccountId}:key/*'], role);
    }
    for (const u of instanceUserData(c)) assert.doesNotMatch(u, /JOINKEEPER_KMS_KEY_ID/);
  });

  it('creates, by default, a customer managed key only this cluster roles may use', () => {
    cluster.resourceCountIs('AWS::KMS::Key', 1);
    const { cluster: c } = synth({ controlPlaneMode: 'ha' });
    c.resourceCountIs('AWS::KMS::Key', 1);
    const [logicalId] = Object.keys(c.findResources('AWS::KMS::Key'));
    const key = c.findResources('AWS::KMS::Key')[logicalId] as Res;
    type KeyStatement = { Sid: string; Action: string | string[]; Principal: { AWS: unknown }; Condition?: Record<string, Record<string, unknown>> };
    const statements = key.Properties.KeyPolicy.Statement as KeyStatement[];
    const use = statements.filter((st) => [st.Action].flat().some((a) => /^kms:(Decrypt|Encrypt|GenerateDataKey|ReEncrypt|\*)/.test(a)));
    assert.deepEqual(use.map((st) => flat(st.Principal.AWS).replace(/[0-9A-F]{8}\./, '.')).sort(), ['{ControlPlaneRole.Arn}', '{WorkerRole.Arn}']);
    for (const st of use) assert.equal(flat(st.Condition?.StringEquals?.['kms:ViaService']), 'ssm.{AWS::Region}.amazonaws.com');
    const admin = statements.find((st) => st.Sid === 'Administer')!;
    assert.ok(![admin.Action].flat().some((a) => /Decrypt|Encrypt|GenerateDataKey|CreateGrant|^kms:\*$/.test(a)), 'the account administers, never uses');
    for (const role of ['ControlPlaneRole', 'WorkerRole']) {
      const kms = statementsOfRole(c, role).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
      assert.deepEqual(kms.flatMap(resourcesOf), [{ 'Fn::GetAtt': [logicalId, 'Arn'] }], role);
    }
    const cps = instanceUserData(c);
    assert.equal(cps.length, 3);
    for (const u of cps) assert.match(u, /^printf 'JOINKEEPER_KMS_KEY_ID=%s\\n' "TOKEN" >> \/etc\/joinkeeper\/joinkeeper.conf$/m);
  });

  it('tags every taggable resource with joinkeeper:cluster', () => {
    const all = cluster.toJSON().Resources as Record<string, Res>;
    let tagged = 0;
    for (const [id, r] of Object.entries(all)) {
      const tags = r.Properties?.Tags;
      if (!Array.isArray(tags)) continue;
      tagged++;
      assert.ok(tags.some((t: { Key: string; Value: string }) => t.Key === 'joinkeeper:cluster' && t.Value === 'demo'), id);
    }
    assert.ok(tagged >= 10);
  });

  it('names the stack after the cluster and validates the name', () => {
    const { built } = synth({ clusterName: 'prod.eu_1' });
    assert.equal(built.cluster.stackName, 'JoinkeeperCluster-prod-eu-1');
    Template.fromStack(built.cluster).hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      LifecycleHookSpecificationList: Match.arrayWith([Match.objectLike({ NotificationMetadata: '{"cluster":"prod.eu_1"}' })]),
    });
    assert.throws(() => synth({ clusterName: 'bad name' }), /clusterName/);
  });

  it('uses the arm64 Ubuntu image and instance types when asked', () => {
    const { cluster: c } = synth({ nodeArchitecture: 'arm64' });
    const params = c.toJSON().Parameters as Record<string, { Default: string }>;
    assert.ok(Object.values(params).some((p) => p.Default === '/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id'));
    c.hasResourceProperties('AWS::EC2::Instance', { InstanceType: 't4g.medium' });
  });
});
