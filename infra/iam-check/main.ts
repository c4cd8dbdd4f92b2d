// The IAM check: every AWS call the tests and the demo recorded (.calls/*.jsonl, written by the
// emulator's --record-calls) is evaluated against its principal's policies in the synthesized
// templates; a must-deny set and a must-allow set are evaluated the same way; infra/README.md's
// permission table is compared with the templates. Exit status 0 only when every recorded call of
// a deployed principal is allowed, every must-deny case denied, every must-allow case allowed,
// the table matches, and there was something to check.
//
// Usage (from infra/): npx tsx scripts/iam-check.ts [--calls DIR] [--readme FILE] [--print-table]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Case, caseFacts, mustAllow, mustDeny } from './cases';
import { EC_SURROGATE, Evaluator, Variant, VARIANTS } from './evaluate';
import { DEFAULT_ACCOUNT, DEFAULT_REGION, Policies, PRINCIPALS, synthesize } from './policies';
import { awaitsOwnRecord, CallVerdict, evaluateCall, isDeployed, NOT_DEPLOYED, readCalls } from './recorded';
import { checkTable, formatRow, templateRows } from './table';

export interface Options {
  readonly callsDir: string;
  readonly readme: string;
  readonly out?: (line: string) => void;
}

export interface Summary {
  readonly ok: boolean;
  readonly checked: number;
  readonly denied: number;
  readonly mustDeny: { total: number; denied: number };
  readonly mustAllow: { total: number; allowed: number };
  readonly perPrincipal: Record<string, { checked: number; allowed: number; denied: number }>;
}

const pad = (s: string | number, n: number) => String(s).padEnd(n);
const lpad = (s: string | number, n: number) => String(s).padStart(n);

export async function runCheck(o: Options): Promise<Summary> {
  const out = o.out ?? ((l: string) => console.log(l));
  const failures: string[] = [];
  const started = Date.now();
  const variants: Record<Variant, Policies> = {
    default: new Policies(synthesize()),
    awsSsm: new Policies(synthesize({ clusterKmsKey: false })),
    perInstance: new Policies(synthesize({ joinMode: 'per-instance' })),
    perInstanceAwsSsm: new Policies(synthesize({ clusterKmsKey: false, joinMode: 'per-instance' })),
  };
  const evaluators = Object.fromEntries(VARIANTS.map((v) => [v, new Evaluator(variants[v])])) as Record<Variant, Evaluator>;
  out(`IAM check: templates synthesized (default: the cluster's own key; and clusterKmsKey=false: aws/ssm) in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // ---- recorded calls ------------------------------------------------------------------------
  const { files, calls } = readCalls(o.callsDir);
  out(`recordings in ${o.callsDir}: ${files.length ? files.map((f) => `${f.name} (${f.lines} calls)`).join(', ') : 'none'}`);
  const per: Summary['perPrincipal'] = Object.fromEntries(PRINCIPALS.map((p) => [p, { checked: 0, allowed: 0, denied: 0 }]));
  const inferred: Record<string, number> = {};
  const skipped: Record<string, number> = {};
  const deniedCalls: CallVerdict[] = [];
  const ignoredKeys = new Map<string, Set<string>>();
  const byVariant: Record<Variant, number> = { default: 0, awsSsm: 0, perInstance: 0, perInstanceAwsSsm: 0 };
  let awaited = 0;
  for (const call of calls) {
    if (!isDeployed(call.principal)) {
      skipped[call.principal] = (skipped[call.principal] ?? 0) + 1;
      continue;
    }
    const v = await evaluateCall(evaluators, call);
    byVariant[v.variant]++;
    const s = per[call.principal];
    s.checked++;
    if (v.allowed) s.allowed++;
    else if (awaitsOwnRecord(call)) awaited++;
    else {
      s.denied++;
      deniedCalls.push(v);
    }
    if (v.clusterFromResource) inferred[call.principal] = (inferred[call.principal] ?? 0) + 1;
    for (const k of v.ignoredKeys) {
      if (!ignoredKeys.has(call.action)) ignoredKeys.set(call.action, new Set());
      ignoredKeys.get(call.action)!.add(k);
    }
  }
  const checked = Object.values(per).reduce((a, s) => a + s.checked, 0);
  out('');
  out(`${pad('principal', 16)}${lpad('checked', 9)}${lpad('allowed', 9)}${lpad('denied', 8)}   caller's cluster taken from the call`);
  for (const p of PRINCIPALS) {
    const s = per[p];
    out(`${pad(p, 16)}${lpad(s.checked, 9)}${lpad(s.allowed, 9)}${lpad(s.denied, 8)}   ${p === 'control-plane' || p === 'worker' ? (inferred[p] ?? 0) : '-'}`);
  }
  out(`${pad('total', 16)}${lpad(checked, 9)}${lpad(checked - deniedCalls.length - awaited, 9)}${lpad(deniedCalls.length, 8)}`);
  out(`evaluated against the default templates: ${byVariant.default}; against clusterKmsKey=false (an instance role's KMS call with the aws/ssm key): ${byVariant.awsSsm}; against joinMode=per-instance (a worker's call about its own record): ${byVariant.perInstance + byVariant.perInstanceAwsSsm}`);
  if (awaited) out(`denied as designed: ${awaited} reads by a per-instance worker of its own record before it existed (AWS answers AccessDenied, the emulator ParameterNotFound; the worker waits)`);
  for (const v of deniedCalls.slice(0, 50)) {
    for (const d of v.denials) {
      out(`  DENIED ${v.call.principal} ${v.call.action} ${d.resource} -> ${d.decision.result}${d.decision.detail ? ` (${d.decision.detail})` : ''} [${v.call.at}]`);
    }
  }
  if (deniedCalls.length > 50) out(`  ... and ${deniedCalls.length - 50} more denied calls`);
  for (const [p, n] of Object.entries(skipped).sort()) {
    if (NOT_DEPLOYED[p]) out(`not evaluated: ${n} calls of ${p} (${NOT_DEPLOYED[p]})`);
    else {
      out(`UNKNOWN principal ${JSON.stringify(p)}: ${n} calls, no deployed role and not a known test principal`);
      failures.push(`unknown principal ${p}`);
    }
  }
  if (checked === 0) failures.push(`no recorded call of a deployed principal in ${o.callsDir}: a check that checks nothing`);
  if (deniedCalls.length) failures.push(`${deniedCalls.length} recorded calls denied`);
  for (const p of PRINCIPALS) if (per[p].checked === 0) out(`note: no recorded call of ${p}`);

  // ---- must-deny / must-allow ------------------------------------------------------------------
  const facts = caseFacts(variants.default, { account: DEFAULT_ACCOUNT, region: DEFAULT_REGION });
  const run = async (cases: Case[], want: boolean) => {
    const wrong: string[] = [];
    for (const c of cases) {
      const d = await evaluators[c.variant].evaluate(c.request);
      if (d.result === 'Error') wrong.push(`${c.name}: the simulator could not evaluate it (${d.detail})`);
      else if (d.allowed !== want) wrong.push(`${c.name}: ${d.result}`);
    }
    return wrong;
  };
  const deny = mustDeny(facts);
  const allow = mustAllow(facts);
  const allowedButMustNot = await run(deny, false);
  const deniedButMust = await run(allow, true);
  out('');
  out(`must-deny: ${deny.length} cases, ${deny.length - allowedButMustNot.length} denied`);
  for (const w of allowedButMustNot) out(`  NOT DENIED ${w}`);
  out(`must-allow (control): ${allow.length} cases, ${allow.length - deniedButMust.length} allowed`);
  for (const w of deniedButMust) out(`  NOT ALLOWED ${w}`);
  if (allowedButMustNot.length) failures.push(`${allowedButMustNot.length} must-deny cases not denied`);
  if (deniedButMust.length) failures.push(`${deniedButMust.length} must-allow cases not allowed`);

  // ---- README table ----------------------------------------------------------------------------
  const table = checkTable(variants.default.templates, fs.readFileSync(o.readme, 'utf8'));
  out('');
  if (table.missing.length || table.extra.length || table.withoutReason.length) {
    out(`README permission table (${o.readme}) does not match the templates:`);
    for (const r of table.missing) out(`  missing row: ${formatRow(r)}`);
    for (const r of table.extra) out(`  row not in the templates (line ${r.line}): ${formatRow(r)}`);
    for (const l of table.withoutReason) out(`  row without the call that needs it (line ${l})`);
    failures.push('README permission table differs from the templates');
  } else {
    out(`README permission table: ${table.rows} rows, all match the templates`);
  }

  // ---- what the evaluator cannot model -----------------------------------------------------------
  out('');
  out('modelling notes:');
  out(`  - kms:EncryptionContext:<key> conditions are evaluated under the key ${EC_SURROGATE}<key> (iam-simulate does not match colon-variable keys)`);
  out('  - the record names no calling instance: an instance role\'s cluster is taken from the parameters, KMS context or ClusterName the call names');
  out('  - the aws/ssm key is given AWS\'s managed key policy (any principal of the account, through SSM); only the functions\' explicit Deny keeps them out');
  out('  - a customer managed key the emulator made, tagged joinkeeper:cluster=C, stands for cluster C\'s key in the templates');
  out('  - S3: the bucket policy of the CDK assets bucket (it only denies requests without TLS) and its encryption key are not modelled');
  out('  - not modelled: SCPs, permission boundaries, session policies, the Lambda/EC2 trust policies, CloudWatch Logs calls (not recorded)');
  for (const [action, keys] of [...ignoredKeys].sort()) out(`  - context keys iam-simulate ignores for ${action}: ${[...keys].sort().join(', ')}`);

  const ok = failures.length === 0;
  out('');
  out(ok ? 'IAM check passed' : `IAM check FAILED: ${failures.join('; ')}`);
  return {
    ok,
    checked,
    denied: deniedCalls.length,
    mustDeny: { total: deny.length, denied: deny.length - allowedButMustNot.length },
    mustAllow: { total: allow.length, allowed: allow.length - deniedButMust.length },
    perPrincipal: per,
  };
}

export async function main(argv: string[]): Promise<number> {
  const infra = path.resolve(__dirname, '..');
  let callsDir = path.resolve(infra, '..', '.calls');
  let readme = path.join(infra, 'README.md');
  let printTable = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--calls') callsDir = path.resolve(argv[++i]);
    else if (argv[i] === '--readme') readme = path.resolve(argv[++i]);
    else if (argv[i] === '--print-table') printTable = true;
    else {
      console.error('usage: iam-check.ts [--calls DIR] [--readme FILE] [--print-table]');
      return 2;
    }
  }
  if (printTable) {
    for (const r of templateRows(synthesize())) console.log(formatRow(r));
    return 0;
  }
  const s = await runCheck({ callsDir, readme });
  return s.ok ? 0 : 1;
}
