// The cluster stack's optional warm pool: context values, the AWS::AutoScaling::WarmPool, the
// boot unit in the worker user data, hibernation for a Hibernated pool.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { clusterConfig, ConfigError } from '../lib/config';
import { renderUserData, synth } from './support';

type Res = { Type: string; Properties: Record<string, any> };

function workerTemplateData(t: Template): Record<string, any> {
  const templates = (Object.values(t.findResources('AWS::EC2::LaunchTemplate')) as Res[])
    .map((r) => r.Properties.LaunchTemplateData)
    .filter((d) => d?.UserData && renderUserData(d.UserData).includes("JK_ROLE='worker'"));
  assert.equal(templates.length, 1);
  return templates[0];
}
const workerUserData = (t: Template) => renderUserData(workerTemplateData(t).UserData);
const BOOT_UNIT = '/opt/joinkeeper/bin/joinkeeper-boot-unit --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --deadline-seconds "$JK_JOIN_DEADLINE"';
const JOIN = '/opt/joinkeeper/bin/joinkeeper-join --cluster "$JK_CLUSTER" --prefix "$JK_PREFIX" --deadline-seconds "$JK_JOIN_DEADLINE"';

describe('warm pool context values', () => {
  const cfg = (ctx: Record<string, unknown>) => clusterConfig(new App({ context: ctx }).node);

  it('default to no pool, Stopped, no reuse', () => {
    const c = cfg({});
    assert.deepEqual([c.warmPoolMinSize, c.warmPoolState, c.warmPoolReuseOnScaleIn], [0, 'Stopped', false]);
  });

  it('accept strings from -c and typed values from cdk.json', () => {
    const c = cfg({ warmPoolMinSize: '2', warmPoolState: 'Hibernated', warmPoolReuseOnScaleIn: 'true' });
    assert.deepEqual([c.warmPoolMinSize, c.warmPoolState, c.warmPoolReuseOnScaleIn], [2, 'Hibernated', true]);
    assert.equal(cfg({ warmPoolMinSize: 1, warmPoolReuseOnScaleIn: true }).warmPoolReuseOnScaleIn, true);
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a negative size', { warmPoolMinSize: '-1' }, /warmPoolMinSize/],
    ['a size that is not a number', { warmPoolMinSize: 'two' }, /warmPoolMinSize/],
    ['an unknown pool state', { warmPoolMinSize: '1', warmPoolState: 'stopped' }, /warmPoolState/],
    ['reuse that is not a boolean', { warmPoolMinSize: '1', warmPoolReuseOnScaleIn: 'yes' }, /warmPoolReuseOnScaleIn/],
    ['a pool state without a pool', { warmPoolState: 'Running' }, /warmPoolState: needs a warm pool/],
    ['reuse without a pool', { warmPoolMinSize: '0', warmPoolReuseOnScaleIn: 'true' }, /warmPoolReuseOnScaleIn: needs a warm pool/],
  ];
  for (const [what, ctx, re] of bad) {
    it(`reject ${what}`, () => {
      assert.throws(() => cfg(ctx), (e: unknown) => e instanceof ConfigError && re.test((e as Error).message));
    });
  }
});

describe('cluster stack without a warm pool', () => {
  const { cluster } = synth({});

  it('has no warm pool; the worker user data installs the boot unit all the same, then joins', () => {
    cluster.resourceCountIs('AWS::AutoScaling::WarmPool', 0);
    const ud = workerUserData(cluster);
    assert.ok(ud.indexOf(BOOT_UNIT) > 0 && ud.indexOf(JOIN) > ud.indexOf(BOOT_UNIT));
    assert.equal(workerTemplateData(cluster).HibernationOptions, undefined);
  });
});

for (const state of ['Stopped', 'Running', 'Hibernated'] as const) {
  describe(`cluster stack with a ${state} warm pool`, () => {
    const reuse = state !== 'Running';
    const { cluster } = synth({ warmPoolMinSize: '2', warmPoolState: state, warmPoolReuseOnScaleIn: String(reuse) });

    it('gives the worker group a warm pool with the context values', () => {
      cluster.resourceCountIs('AWS::AutoScaling::WarmPool', 1);
      const groups = Object.keys(cluster.findResources('AWS::AutoScaling::AutoScalingGroup'));
      assert.equal(groups.length, 1);
      cluster.hasResourceProperties('AWS::AutoScaling::WarmPool', {
        AutoScalingGroupName: { Ref: groups[0] },
        MinSize: 2,
        PoolState: state,
        InstanceReusePolicy: { ReuseOnScaleIn: reuse },
      });
    });

    it('keeps the launch hook, which fires on entering and on leaving the pool', () => {
      cluster.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
        LifecycleHookSpecificationList: Match.arrayWith([
          Match.objectLike({ LifecycleHookName: 'joinkeeper-launch', LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING' }),
          Match.objectLike({ LifecycleHookName: 'joinkeeper-terminate', LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING' }),
        ]),
      });
    });

    it('installs the boot unit in the worker user data, after the packages and before the join', () => {
      const ud = workerUserData(cluster);
      const packages = ud.indexOf('\nkubernetes_packages\n');
      const unit = ud.indexOf(BOOT_UNIT);
      const join = ud.indexOf(JOIN);
      assert.ok(packages > 0 && unit > packages && join > unit, 'kubernetes_packages, then the boot unit, then the join');
      assert.equal(ud.split('joinkeeper-boot-unit').length - 1, 1);
    });

    it(state === 'Hibernated' ? 'launches workers with hibernation configured' : 'does not configure hibernation', () => {
      const data = workerTemplateData(cluster);
      if (state === 'Hibernated') {
        assert.deepEqual(data.HibernationOptions, { Configured: true });
        // Hibernation keeps the memory image on the root volume: it must be encrypted.
        assert.equal(data.BlockDeviceMappings[0].Ebs.Encrypted, true);
      } else {
        assert.equal(data.HibernationOptions, undefined);
      }
    });
  });
}
