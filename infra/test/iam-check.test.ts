// The IAM check itself (iam-check/), on hand-made recordings in the emulator's format.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { runCheck, Summary } from '../iam-check/main';
import { Policies, synthesize } from '../iam-check/policies';
import { BEGIN, END } from '../iam-check/table';
import { INFRA_DIR } from '../lib/sources';

const CALLS = path.join(INFRA_DIR, 'test', 'fixtures', 'calls');
const README = path.join(INFRA_DIR, 'README.md');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jk-iam-check-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function check(callsDir: string, readme = README): Promise<Summary & { text: string }> {
  const lines: string[] = [];
  const s = await runCheck({ callsDir, readme, out: (l) => lines.push(l) });
  return { ...s, text: lines.join('\n') };
}

describe('IAM check', () => {
  it('allows every call of the good recording, every principal among them, and prints the figures', async () => {
    const s = await check(path.join(CALLS, 'good'));
    assert.ok(s.ok, s.text);
    assert.deepEqual(s.perPrincipal, {
      'token-refresher': { checked: 3, allowed: 3, denied: 0 },
      'launch-hook': { checked: 4, allowed: 4, denied: 0 },
      'terminate-hook': { checked: 5, allowed: 5, denied: 0 },
      'control-plane': { checked: 5, allowed: 5, denied: 0 },
      worker: { checked: 3, allowed: 3, denied: 0 },
    });
    assert.match(s.text, /not evaluated: 1 calls of test-harness/);
    assert.equal(s.mustDeny.denied, s.mustDeny.total);
    assert.ok(s.mustDeny.total >= 86, `${s.mustDeny.total} must-deny cases`);
    assert.match(s.text, /against clusterKmsKey=false \(an instance role's KMS call with the aws\/ssm key\): 2/);
    assert.equal(s.mustAllow.allowed, s.mustAllow.total);
    assert.match(s.text, /README permission table: \d+ rows, all match the templates/);
  });

  it('fails and names each denied call: a lock outside leases, a decrypt, a certificate key read, an unmodelled call', async () => {
    const s = await check(path.join(CALLS, 'denied'));
    assert.equal(s.ok, false);
    assert.equal(s.denied, 4);
    assert.match(s.text, /DENIED terminate-hook ssm:PutParameter arn:aws:ssm:us-east-1:123456789012:parameter\/joinkeeper\/demo\/join-record -> ImplicitlyDenied \[suite.jsonl:2\]/);
    assert.match(s.text, /DENIED launch-hook kms:Decrypt \S+ -> ExplicitlyDenied/);
    assert.match(s.text, /DENIED worker ssm:GetParameter \S+\/control-plane-join -> ImplicitlyDenied/);
    assert.match(s.text, /DENIED token-refresher ec2:RunInstances \* -> NotModelled/);
    assert.match(s.text, /IAM check FAILED: 4 recorded calls denied/);
  });

  it("evaluates S3 calls (the node scripts object only) and a cluster's own key, found by its tag", async () => {
    const policies = new Policies(synthesize());
    const bucket = 'arn:aws:s3:::cdk-hnb659fds-assets-123456789012-us-east-1';
    const key = 'arn:aws:kms:us-east-1:123456789012:key/3b0c8f1e-1111-4222-8333-944455556666';
    const record = 'arn:aws:ssm:us-east-1:123456789012:parameter/joinkeeper/demo/join-record';
    const line = (principal: string, action: string, resource: string, context: Record<string, unknown> = {}) =>
      JSON.stringify({ principal, action, account: '123456789012', region: 'us-east-1', resources: [resource], context: { [resource]: { 'aws:RequestedRegion': 'us-east-1', ...context } }, status: 200, modelled: true });
    const viaSsm = (cluster: string) => ({
      'kms:ViaService': 'ssm.us-east-1.amazonaws.com',
      'kms:CallerAccount': '123456789012',
      'kms:EncryptionContext:PARAMETER_ARN': record,
      'kms:EncryptionContextKeys': ['PARAMETER_ARN'],
      'aws:ResourceTag/joinkeeper:cluster': cluster,
    });
    const dir = path.join(tmp, 's3-kms');
    fs.mkdirSync(dir);
    fs.writeFileSync(
      path.join(dir, 'suite.jsonl'),
      [
        line('worker', 's3:GetObject', `${bucket}/${policies.nodeScriptsAssetKey()}`),
        line('control-plane', 's3:GetObject', `${bucket}/${policies.nodeScriptsAssetKey()}`),
        line('worker', 's3:GetObject', `${bucket}/${policies.functionAssetKey()}`),
        line('control-plane', 's3:ListBucket', bucket),
        line('control-plane', 'kms:Encrypt', key, viaSsm('demo')),
        line('worker', 'kms:Decrypt', key, viaSsm('demo')),
        line('worker', 'kms:Decrypt', key, viaSsm('other')),
      ].join('\n') + '\n',
    );
    const s = await check(dir);
    assert.equal(s.ok, false);
    assert.deepEqual(s.perPrincipal['control-plane'], { checked: 3, allowed: 2, denied: 1 }, s.text);
    assert.deepEqual(s.perPrincipal.worker, { checked: 4, allowed: 2, denied: 2 }, s.text);
    assert.match(s.text, new RegExp(`DENIED worker s3:GetObject ${bucket}/${policies.functionAssetKey()} -> ImplicitlyDenied`));
    assert.match(s.text, new RegExp(`DENIED control-plane s3:ListBucket ${bucket} -> ImplicitlyDenied`));
    // A key tagged for another cluster is that cluster's key: its policy does not know this worker.
    assert.match(s.text, /DENIED worker kms:Decrypt \S+ -> ImplicitlyDenied/);
  });

  it('fails on a principal that is neither deployed nor a known test driver', async () => {
    const s = await check(path.join(CALLS, 'stranger'));
    assert.equal(s.ok, false);
    assert.match(s.text, /UNKNOWN principal "launch_hook"/);
  });

  it('fails when there is nothing to check', async () => {
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    for (const dir of [empty, path.join(tmp, 'missing')]) {
      const s = await check(dir);
      assert.equal(s.ok, false);
      assert.equal(s.checked, 0);
      assert.match(s.text, /a check that checks nothing/);
    }
  });

  it('fails when the README table and the templates differ', async () => {
    const text = fs.readFileSync(README, 'utf8');
    const [head, rest] = text.split(BEGIN);
    const [table, tail] = rest.split(END);
    const rows = table.split('\n');
    const leases = rows.findIndex((r) => r.includes('parameter/joinkeeper/*/leases/*'));
    assert.ok(leases > 0);
    rows[leases] = rows[leases].replace('`ssm:PutParameter`', '`ssm:PutParameter`, `ssm:LabelParameterVersion`');
    const edited = path.join(tmp, 'README.md');
    fs.writeFileSync(edited, `${head}${BEGIN}${rows.join('\n')}${END}${tail}`);
    const s = await check(path.join(CALLS, 'good'), edited);
    assert.equal(s.ok, false);
    assert.match(s.text, /missing row: \| token-refresher, launch-hook, terminate-hook \| Allow \| `ssm:DeleteParameter`, `ssm:GetParameter`, `ssm:PutParameter`/);
    assert.match(s.text, /row not in the templates \(line \d+\)/);
  });

  it('keeps the AGPL evaluator a test-only dev dependency: nothing deployed imports it', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'package.json'), 'utf8'));
    assert.ok(pkg.devDependencies['@cloud-copilot/iam-simulate']);
    assert.equal(pkg.dependencies['@cloud-copilot/iam-simulate'], undefined);
    const walk = (dir: string): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    for (const file of [...walk(path.join(INFRA_DIR, 'lib')), ...walk(path.join(INFRA_DIR, 'bin'))]) {
      const src = fs.readFileSync(file, 'utf8');
      const imports = [...src.matchAll(/(?:from\s+|require\(\s*|import\(\s*)['"]([^'"]+)['"]/g)].map((m) => m[1]);
      for (const i of imports) assert.ok(!i.includes('@cloud-copilot') && !i.includes('iam-check'), `${file} imports ${i}`);
    }
  });
});
