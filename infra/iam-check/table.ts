// infra/README.md's permission table, checked against the templates: one row per distinct
// statement (principals that share it are listed together), between the markers
//   <!-- permissions:begin --> and <!-- permissions:end -->
// Columns: principals | effect | actions | resources | conditions | the call that needs it.
// Cells hold comma-separated items (conditions: ';'-separated); backticks are ignored. ARNs are
// written without `arn:aws:`, with R for the region, A for the account and <cluster> for the
// cluster stack's cluster, <asset> for an asset's content hash; the prefix is the default /joinkeeper.
import { CLUSTER_SENTINEL, PRINCIPAL_ROLES, PRINCIPALS, resolve, roleStatements, Statement, Synthesized, SYMBOLIC, Template } from './policies';

export const BEGIN = '<!-- permissions:begin -->';
export const END = '<!-- permissions:end -->';

export interface Row {
  readonly principals: string[];
  readonly effect: string;
  readonly actions: string[];
  readonly resources: string[];
  readonly conditions: string[];
}

const list = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function compact(value: unknown): string {
  // An asset's object key is the hash of its content: <asset> keeps the table stable across edits.
  return String(value).replace(/^arn:aws:/, '').split(CLUSTER_SENTINEL).join('<cluster>').replace(/\/[0-9a-f]{64}(\.[a-z]+)$/, '/<asset>$1');
}

function conditionItems(c: Statement['Condition']): string[] {
  const out: string[] = [];
  for (const [op, block] of Object.entries(c ?? {})) {
    for (const [key, v] of Object.entries(block)) out.push(`${op} ${key}=${list(v).map(compact).join(',')}`);
  }
  return out.sort();
}

function key(r: Omit<Row, 'principals'>): string {
  return JSON.stringify([r.effect, r.actions, r.resources, r.conditions]);
}

/** The rows the templates imply. */
export function templateRows(t: Synthesized): Row[] {
  const byKey = new Map<string, Row>();
  for (const p of PRINCIPALS) {
    const tpl: Template = PRINCIPAL_ROLES[p].stack === 'account' ? t.account : t.cluster;
    for (const st of resolve(tpl, roleStatements(tpl, PRINCIPAL_ROLES[p].role), SYMBOLIC) as Statement[]) {
      const row = {
        effect: st.Effect,
        actions: list(st.Action).map(String).sort(),
        resources: list(st.Resource).map(compact).sort(),
        conditions: conditionItems(st.Condition),
      };
      const k = key(row);
      const hit = byKey.get(k);
      if (hit) hit.principals.push(p);
      else byKey.set(k, { principals: [p], ...row });
    }
  }
  return [...byKey.values()];
}

function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.replace(/`/g, '').replace(/\\\|/g, '|').trim());
}

const items = (cell: string, sep = ','): string[] =>
  cell
    .split(sep)
    .map((s) => s.trim())
    .filter(Boolean);

/** The table between the markers; throws when the markers or the header are missing. */
export function readmeRows(readme: string): Array<Row & { neededBy: string; line: number }> {
  const lines = readme.split('\n');
  const begin = lines.findIndex((l) => l.trim() === BEGIN);
  const end = lines.findIndex((l) => l.trim() === END);
  if (begin < 0 || end < begin) throw new Error(`README: no permission table between ${BEGIN} and ${END}`);
  const rows: Array<Row & { neededBy: string; line: number }> = [];
  for (let i = begin + 1; i < end; i++) {
    const l = lines[i];
    if (!l.trim().startsWith('|')) continue;
    const c = cells(l);
    if (c[0] === 'principals' || /^-+$/.test(c[0].replace(/[: ]/g, ''))) continue;
    if (c.length !== 6) throw new Error(`README line ${i + 1}: expected 6 columns, found ${c.length}`);
    const conditions = c[4] === '—' || c[4] === '-' || c[4] === '' ? [] : items(c[4], ';').sort();
    rows.push({
      principals: items(c[0]).sort(),
      effect: c[1],
      actions: items(c[2]).sort(),
      resources: items(c[3]).sort(),
      conditions,
      neededBy: c[5],
      line: i + 1,
    });
  }
  return rows;
}

export function formatRow(r: Row, neededBy = 'TODO'): string {
  const code = (xs: string[]) => xs.map((x) => `\`${x}\``).join(', ');
  const conds = r.conditions.length ? r.conditions.map((x) => `\`${x}\``).join('; ') : '—';
  return `| ${r.principals.join(', ')} | ${r.effect} | ${code(r.actions)} | ${code(r.resources)} | ${conds} | ${neededBy} |`;
}

export interface TableCheck {
  readonly rows: number;
  readonly missing: Row[];
  readonly extra: Array<Row & { line: number }>;
  readonly withoutReason: number[];
}

export function checkTable(t: Synthesized, readme: string): TableCheck {
  const want = templateRows(t);
  const have = readmeRows(readme);
  const full = (r: Row) => JSON.stringify([[...r.principals].sort(), r.effect, r.actions, r.resources, r.conditions]);
  const haveKeys = new Set(have.map(full));
  const wantKeys = new Set(want.map(full));
  return {
    rows: have.length,
    missing: want.filter((r) => !haveKeys.has(full(r))),
    extra: have.filter((r) => !wantKeys.has(full(r))),
    withoutReason: have.filter((r) => !r.neededBy || r.neededBy === 'TODO').map((r) => r.line),
  };
}
