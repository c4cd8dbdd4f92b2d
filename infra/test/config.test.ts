// Context values, feature flags and where synth takes its inputs from.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp, FEATURE_FLAGS } from '../lib/app';
import { accountConfig, clusterConfig, ConfigError, hookTimeouts, SETTING_CONTEXT, SETTINGS } from '../lib/config';
import { NODE_SCRIPTS_EXCLUDE } from '../lib/cluster-stack';
import { checkDocument, elfArchitecture, functionsArchitecture, functionsDir, INFRA_DIR, loadDocument, nodeScriptsDir } from '../lib/sources';
import { functionsDirForSynth, offlineContext, placeholderFunctionsDir, tmpOutdir } from './support';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jk-config-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function node(ctx: Record<string, unknown>) {
  return new App({ context: ctx }).node;
}

function elf(machine: number): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2; // 64-bit
  b[5] = 1; // little endian
  b.writeUInt16LE(machine, 18);
  return b;
}

describe('feature flags', () => {
  it('cdk.json sets the same flags as buildApp, launch templates for Auto Scaling groups included', () => {
    const cdkJson = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'cdk.json'), 'utf8'));
    assert.equal(FEATURE_FLAGS['@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig'], true);
    for (const [k, v] of Object.entries(FEATURE_FLAGS)) assert.equal(cdkJson.context[k], v, k);
  });

  it('the app sees the launch-template flag even without the CLI', () => {
    const { app } = buildApp({ outdir: tmpOutdir(), context: offlineContext() });
    assert.equal(app.node.tryGetContext('@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig'), true);
  });
});

describe('context values', () => {
  it('has the documented defaults', () => {
    const a = accountConfig(node({}));
    assert.equal(a.parameterPrefix, '/joinkeeper');
    assert.equal(a.tokenTtlSeconds, 7200);
    assert.equal(a.refreshMarginSeconds, 3600);
    assert.equal(a.refreshIntervalMinutes, 10);
    assert.equal(a.commandDeadlineSeconds, 120);
    assert.equal(a.commandPollMillis, 1000);
    assert.equal(a.joinDeadlineSeconds, 900);
    assert.equal(a.drainTimeoutSeconds, 300);
    assert.equal(a.rustLog, 'info');
    assert.equal(a.functionsDir, '../target/lambda');
    assert.equal(a.documentsDir, '../node-scripts/documents');
    const c = clusterConfig(node({}));
    assert.equal(c.clusterName, 'demo');
    assert.equal(c.controlPlaneMode, 'single');
    assert.equal(c.installer, 'kubeadm');
    assert.equal(c.workerImdsHopLimit, 1);
    assert.equal(c.clusterKmsKey, true);
    assert.equal(clusterConfig(node({ clusterKmsKey: 'false' })).clusterKmsKey, false);
    assert.equal(c.documentPrefix, 'joinkeeper');
    assert.deepEqual(hookTimeouts(c), { launchHeartbeatSeconds: 1200, terminateHeartbeatSeconds: 600 });
  });

  it('accepts strings from -c and typed values from cdk.json', () => {
    assert.equal(accountConfig(node({ tokenTtlSeconds: '7200', refreshMarginSeconds: 3600 })).tokenTtlSeconds, 7200);
    assert.equal(clusterConfig(node({ controlPlaneMode: 'ha' })).controlPlaneMode, 'ha');
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['cluster name with a space', { clusterName: 'a b' }, /clusterName/],
    ['cluster name too long', { clusterName: 'a'.repeat(64) }, /clusterName/],
    ['unknown control-plane mode', { controlPlaneMode: 'triple' }, /controlPlaneMode/],
    ['unknown installer', { installer: 'rke' }, /installer/],
    ['prefix without a slash', { parameterPrefix: 'joinkeeper' }, /parameterPrefix/],
    ['prefix with a trailing slash', { parameterPrefix: '/joinkeeper/' }, /parameterPrefix/],
    ['ttl not a number', { tokenTtlSeconds: '24h' }, /tokenTtlSeconds/],
    ['margin above the ttl', { refreshMarginSeconds: '90000' }, /refreshMarginSeconds/],
    ['join deadline beyond a hook timeout', { joinDeadlineSeconds: '7000' }, /joinDeadlineSeconds/],
    ['max below min', { workerMinCapacity: '3', workerMaxCapacity: '2' }, /workerMaxCapacity/],
    ['shell in rustLog', { rustLog: 'info;reboot' }, /rustLog/],
    ['http kURL url', { kurlInstallerUrl: 'http://kurl.sh/latest' }, /kurlInstallerUrl/],
  ];
  for (const [what, ctx, re] of bad) {
    it(`rejects ${what}`, () => {
      assert.throws(
        () => {
          accountConfig(node(ctx));
          clusterConfig(node(ctx));
        },
        (e: unknown) => e instanceof ConfigError && re.test((e as Error).message),
      );
    });
  }
});

describe("the functions' settings table (settings.json, written by shared/src/config/settings.rs)", () => {
  it('gives the defaults', () => {
    const a = accountConfig(node({}));
    assert.equal(a.tokenTtlSeconds, SETTINGS.token_ttl.default);
    assert.equal(a.commandDeadlineSeconds, SETTINGS.command_deadline.default);
    assert.equal(a.commandPollMillis, SETTINGS.command_poll.default);
    assert.equal(a.joinDeadlineSeconds, SETTINGS.join_deadline.default);
    assert.equal(a.drainTimeoutSeconds, SETTINGS.drain_timeout.default);
    assert.equal(a.parameterPrefix, SETTINGS.parameter_prefix.default);
    assert.equal(a.hookNamePrefix, SETTINGS.hook_prefix.default);
  });

  for (const [name, key] of Object.entries(SETTING_CONTEXT)) {
    const s = SETTINGS[name];
    it(`bounds ${key} as the functions bound ${s.variable} (${s.min}..${s.max})`, () => {
      for (const v of [s.min! - 1, s.max! + 1]) {
        assert.throws(
          () => accountConfig(node({ [key]: String(v) })),
          (e: unknown) => e instanceof ConfigError && (e as Error).message.startsWith(`context ${key}:`),
        );
      }
    });
  }

  it('passes the exits settings only when given, validated as the functions validate them', () => {
    assert.deepEqual(accountConfig(node({})).exitSettings, {});
    const given = accountConfig(node({ rebalanceAction: 'drain', standbyAction: 'none', maintenanceLeadSeconds: '600', maintenanceReplace: 'true' }));
    assert.deepEqual(given.exitSettings, {
      JOINKEEPER_REBALANCE_ACTION: 'drain',
      JOINKEEPER_STANDBY_ACTION: 'none',
      JOINKEEPER_MAINTENANCE_LEAD_SECONDS: '600',
      JOINKEEPER_MAINTENANCE_REPLACE: 'true',
    });
    assert.deepEqual(SETTINGS.rebalance_action.choices, ['cordon', 'drain', 'none']);
    for (const bad of [{ rebalanceAction: 'evict' }, { standbyAction: 'Drain' }, { maintenanceReplace: 'yes' }]) {
      assert.throws(() => accountConfig(node(bad)), ConfigError, JSON.stringify(bad));
    }
  });

  it('accepts the ends of the ranges the functions accept', () => {
    const short = { tokenTtlSeconds: '600', refreshMarginSeconds: '300', refreshIntervalMinutes: '1', joinDeadlineSeconds: '10' };
    assert.equal(accountConfig(node(short)).tokenTtlSeconds, 600);
    assert.equal(accountConfig(node({ commandDeadlineSeconds: '30', commandPollMillis: '100' })).commandDeadlineSeconds, 30);
    assert.equal(accountConfig(node({ commandDeadlineSeconds: '880', commandPollMillis: '60000' })).commandPollMillis, 60000);
    const long = { tokenTtlSeconds: '604800', joinDeadlineSeconds: '6900', drainTimeoutSeconds: '6900' };
    assert.deepEqual(hookTimeouts(accountConfig(node(long))), { launchHeartbeatSeconds: 7200, terminateHeartbeatSeconds: 7200 });
  });

  it("applies the table's below rules", () => {
    assert.throws(() => accountConfig(node({ tokenTtlSeconds: '900', joinDeadlineSeconds: '900' })), /joinDeadlineSeconds: 900 must be below tokenTtlSeconds/);
    assert.throws(() => accountConfig(node({ tokenTtlSeconds: '7200', refreshMarginSeconds: '7200' })), /refreshMarginSeconds/);
  });

});

describe('inputs: functions, documents, node scripts', () => {
  it('says how to build the functions when they are missing', () => {
    assert.throws(() => functionsDir(path.join(tmp, 'nothing')), /cargo lambda build --release/);
  });

  it('reads the architecture of the built bootstrap files and refuses a mismatch', () => {
    const dir = path.join(tmp, 'arm');
    for (const n of ['token-refresher', 'launch-hook', 'terminate-hook']) {
      fs.mkdirSync(path.join(dir, n), { recursive: true });
      fs.writeFileSync(path.join(dir, n, 'bootstrap'), elf(0xb7));
    }
    assert.equal(elfArchitecture(path.join(dir, 'launch-hook', 'bootstrap')), 'arm64');
    assert.equal(functionsArchitecture(dir, undefined), 'arm64');
    assert.throws(() => functionsArchitecture(dir, 'x86_64'), /built for arm64/);
    fs.writeFileSync(path.join(dir, 'launch-hook', 'bootstrap'), elf(0x3e));
    assert.throws(() => functionsArchitecture(dir, undefined), /different architectures/);
    assert.equal(functionsArchitecture(placeholderFunctionsDir(), undefined), 'x86_64');
  });

  it('deploys arm64 when the built functions are arm64', () => {
    const dir = path.join(tmp, 'arm64-built');
    for (const n of ['token-refresher', 'launch-hook', 'terminate-hook']) {
      fs.mkdirSync(path.join(dir, n), { recursive: true });
      fs.writeFileSync(path.join(dir, n, 'bootstrap'), elf(0xb7));
    }
    const { account } = buildApp({ outdir: tmpOutdir(), context: offlineContext({ functionsDir: dir }) });
    Template.fromStack(account).allResourcesProperties('AWS::Lambda::Function', { Architectures: ['arm64'] });
  });

  it('offline checks use placeholders for the other architecture; a deploy refuses it', () => {
    const dir = path.join(tmp, 'x86-built');
    for (const n of ['token-refresher', 'launch-hook', 'terminate-hook']) {
      fs.mkdirSync(path.join(dir, n), { recursive: true });
      fs.writeFileSync(path.join(dir, n, 'bootstrap'), elf(0x3e));
    }
    const saved = process.env.JOINKEEPER_FUNCTIONS_DIR;
    process.env.JOINKEEPER_FUNCTIONS_DIR = dir;
    try {
      assert.deepEqual(functionsDirForSynth('x86_64'), { dir, placeholder: false });
      const arm = functionsDirForSynth('arm64');
      assert.equal(arm.placeholder, true);
      assert.match(arm.why ?? '', /built for x86_64, not arm64/);
      const { account } = buildApp({ outdir: tmpOutdir(), context: offlineContext({ architecture: 'arm64' }) });
      Template.fromStack(account).allResourcesProperties('AWS::Lambda::Function', { Architectures: ['arm64'] });
    } finally {
      if (saved === undefined) delete process.env.JOINKEEPER_FUNCTIONS_DIR;
      else process.env.JOINKEEPER_FUNCTIONS_DIR = saved;
    }
    assert.throws(
      () => buildApp({ outdir: tmpOutdir(), context: { ...offlineContext(), functionsDir: dir, architecture: 'arm64' } }),
      (e: unknown) => e instanceof ConfigError && /built for x86_64/.test((e as Error).message),
    );
  });

  it('prefers the real SSM documents and checks them against the contract', () => {
    const dir = path.join(tmp, 'docs');
    fs.mkdirSync(dir);
    const doc = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'test/fixtures/documents/joinkeeper-drain.json'), 'utf8'));
    doc.description = 'the real one';
    fs.writeFileSync(path.join(dir, 'joinkeeper-drain.json'), JSON.stringify(doc));
    const n = node({ allowStandIns: true });
    const real = loadDocument(n, dir, 'drain');
    assert.equal(real.standIn, false);
    assert.equal(real.value.description, 'the real one');
    const standIn = loadDocument(n, dir, 'joinLog');
    assert.equal(standIn.standIn, true);
    assert.throws(() => loadDocument(node({}), dir, 'joinLog'), /joinkeeper-join-log.json is missing/);
    const noPattern = { ...doc, parameters: { InstanceId: { type: 'String' }, DrainTimeoutSeconds: doc.parameters.DrainTimeoutSeconds } };
    assert.throws(() => checkDocument('x', noPattern, ['InstanceId', 'DrainTimeoutSeconds']), /allowedPattern/);
    assert.throws(() => checkDocument('x', { ...doc, schemaVersion: '1.2' }, []), /2\.2/);
    assert.throws(() => checkDocument('x', doc, ['Lines']), /Lines is missing/);
  });

  it('documents in node-scripts/documents, when present, match the contract', () => {
    const dir = path.join(INFRA_DIR, '../node-scripts/documents');
    const keys = ['regenerate', 'nodeStatus', 'drain', 'joinLog'] as const;
    const present = keys.filter((k) => !loadDocument(node({ allowStandIns: true }), dir, k).standIn);
    // Each real document present must load (loadDocument validates it); absent ones fall back.
    for (const k of present) assert.equal(loadDocument(node({}), dir, k).standIn, false);
  });

  it('uploads the real node scripts when present, never the stand-ins or tests', () => {
    const n = node({ allowStandIns: true });
    const src = nodeScriptsDir(n, '../node-scripts');
    const real = fs.existsSync(path.join(INFRA_DIR, '../node-scripts/bin/joinkeeper-join'));
    assert.equal(src.standIn, !real);
    for (const x of ['standins', 'tests', 'documents']) assert.ok(NODE_SCRIPTS_EXCLUDE.includes(x));
    assert.throws(() => nodeScriptsDir(node({}), path.join(tmp, 'none')), /node scripts .* are missing/);
  });
});
