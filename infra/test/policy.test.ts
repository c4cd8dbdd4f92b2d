// The policy rules (policy/rules, run by cfn-lint --append-rules) reject the deliberately bad
// templates in test/fixtures/policy, accept the good one, and accept what the stacks synthesize.
// Needs cfn-lint: CFN_LINT, or ../.venv/bin/cfn-lint (bash ../scripts/bootstrap-python.sh).
// Without it these tests are skipped, except under CI=true or JOINKEEPER_REQUIRE_CFN_LINT=1,
// where a missing cfn-lint fails them (scripts/check.sh sets it).
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { buildApp } from '../lib/app';
import { INFRA_DIR } from '../lib/sources';
import { findCfnLint, offlineContext } from './support';

const cfnLint = findCfnLint();
const required = process.env.CI === 'true' || process.env.JOINKEEPER_REQUIRE_CFN_LINT === '1';
const skip = !cfnLint && !required ? 'cfn-lint not found (run bash ../scripts/bootstrap-python.sh)' : false;
const FIXTURES = path.join(INFRA_DIR, 'test', 'fixtures', 'policy');
const RULES = path.join(INFRA_DIR, 'policy', 'rules');

function lint(files: string[]) {
  assert.ok(cfnLint, 'cfn-lint is required here: run bash ../scripts/bootstrap-python.sh');
  const r = spawnSync(cfnLint!, ['--non-zero-exit-code', 'error', '--ignore-checks', 'W3005', '--append-rules', RULES, '--', ...files], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('policy rules', { skip }, () => {
  const expected: Record<string, string> = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'expected.json'), 'utf8'));

  it('reject a template that allows ssm:SendCommand on Resource "*"', () => {
    const r = lint([path.join(FIXTURES, 'bad-sendcommand-star.json')]);
    assert.notEqual(r.status, 0, r.out);
    assert.match(r.out, /E9101 .*ssm:SendCommand allowed on Resource "\*"/);
  });

  for (const [file, rule] of Object.entries(expected)) {
    it(`reject ${file} with ${rule}`, () => {
      const r = lint([path.join(FIXTURES, file)]);
      assert.notEqual(r.status, 0, r.out);
      assert.match(r.out, new RegExp(`^${rule} `, 'm'), r.out);
    });
  }

  it('every bad fixture has an expected rule', () => {
    const bad = fs.readdirSync(FIXTURES).filter((f) => f.startsWith('bad-'));
    assert.deepEqual(bad.sort(), Object.keys(expected).sort());
  });

  it('accept the least-privilege fixture', () => {
    const r = lint([path.join(FIXTURES, 'good-least-privilege.json')]);
    assert.equal(r.status, 0, r.out);
  });

  it('accept the synthesized stacks (default variant, HA)', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'jk-policy-synth-'));
    after(() => fs.rmSync(out, { recursive: true, force: true }));
    const { app } = buildApp({ outdir: out, context: offlineContext({ controlPlaneMode: 'ha' }) });
    const assembly = (app as App).synth();
    const files = assembly.stacks.map((s) => path.join(out, s.templateFile));
    assert.equal(files.length, 2);
    const r = lint(files);
    assert.equal(r.status, 0, r.out);
  });
});
