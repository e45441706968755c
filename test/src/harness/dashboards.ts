import { readdirSync, readFileSync } from 'node:fs';
import type { Sample } from './prometheus.js';

export interface DashboardFile {
  file: string;
  json: {
    uid: string;
    panels: Array<{ title?: string; targets?: Array<{ expr?: string; datasource?: { type?: string } }> }>;
    templating?: { list: Array<{ name: string; query?: string | { query?: string } }> };
  };
}

/** The Grafana dashboards shipped with the chart. */
export function readDashboards(dir: URL): DashboardFile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((file) => ({
      file,
      json: JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as DashboardFile['json'],
    }));
}

// Labels Prometheus attaches to every sample it scrapes (target labels), whichever way the metrics arrive.
const SCRAPE_LABELS = ['job', 'instance'];
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/**
 * What in the dashboards' PromQL names a metric or a label the scraped services do not export: every metric
 * name (outside strings, label matchers and grouping clauses) must be a scraped series name; every label in a
 * selector must be on that metric; every label of a `by (...)` / `without (...)` must be on one of the
 * expression's metrics; `label_values(metric, label)` of the template variables likewise.
 */
export function dashboardProblems(dashboards: DashboardFile[], samples: Sample[]): string[] {
  const labels = new Map<string, Set<string>>();
  for (const s of samples) {
    let set = labels.get(s.name);
    if (!set) {
      set = new Set(SCRAPE_LABELS);
      labels.set(s.name, set);
    }
    for (const k of Object.keys(s.labels)) set.add(k);
  }
  const problems: string[] = [];
  const check = (where: string, expr: string) => {
    const metrics = new Set<string>();
    for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g)) {
      const [, metric = '', matchers = ''] = m;
      metrics.add(metric);
      const known = labels.get(metric);
      if (!known) continue; // reported below with the other names
      for (const l of matchers.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
        if (!known.has(l[1] as string)) problems.push(`${where}: label ${l[1]} is not on ${metric}`);
      }
    }
    const bare = expr
      .replace(/"(?:[^"\\]|\\.)*"/g, '""')
      .replace(/\{[^}]*\}/g, '')
      .replace(/\[[^\]]*\]/g, '')
      .replace(/\b(?:by|without)\s*\(([^)]*)\)/g, (_all, group: string) => {
        for (const l of group
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)) {
          const onSome = [...metrics].some((m) => labels.get(m)?.has(l));
          if (!onSome)
            problems.push(`${where}: grouping label ${l} is on none of ${[...metrics].join(', ')}`);
        }
        return '';
      });
    for (const t of bare.matchAll(/(?<![\w.$:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:]|\s*\()/g)) {
      const name = t[1] as string;
      if (KEYWORDS.has(name.toLowerCase())) continue;
      if (!labels.has(name)) problems.push(`${where}: metric ${name} is not exported`);
    }
  };
  for (const { file, json } of dashboards) {
    for (const p of json.panels) {
      for (const t of p.targets ?? [])
        if (t.expr && t.datasource?.type !== 'loki') check(`${file} "${p.title}"`, t.expr);
    }
    for (const v of json.templating?.list ?? []) {
      const q = typeof v.query === 'string' ? v.query : v.query?.query;
      const lv = q ? /^label_values\(\s*([^,]+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(q) : null;
      if (!lv) continue;
      const [, sel = '', label = ''] = lv;
      const metric = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(sel)?.[0] ?? '';
      if (!labels.has(metric)) problems.push(`${file} variable ${v.name}: metric ${metric} is not exported`);
      else if (!labels.get(metric)?.has(label))
        problems.push(`${file} variable ${v.name}: label ${label} is not on ${metric}`);
    }
  }
  return problems;
}

/**
 * What in the dashboards' LogQL (Loki targets) names a field the services' decision log lines do not have: every
 * field of a label filter after `| json` (`| field op value`) and every `{{.field}}` of line_format must be a key
 * of `line`, a refusal decision as a service logged it. A query with no `event="decision"` filter is a problem too.
 */
export function logQueryProblems(dashboards: DashboardFile[], line: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const { file, json } of dashboards) {
    for (const p of json.panels) {
      for (const t of p.targets ?? []) {
        if (t.datasource?.type !== 'loki' || !t.expr) continue;
        const where = `${file} "${p.title}"`;
        if (!/\|\s*event\s*=\s*"decision"/.test(t.expr))
          problems.push(`${where}: no event="decision" filter`);
        const pipeline = t.expr.slice(t.expr.indexOf('}') + 1);
        const fields = new Set<string>();
        for (const m of pipeline.matchAll(/\|\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|>=|<=|==|=|>|<)/g))
          fields.add(m[1] as string);
        for (const m of pipeline.matchAll(/\{\{\s*\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g))
          fields.add(m[1] as string);
        for (const f of fields)
          if (!(f in line)) problems.push(`${where}: field ${f} is not in a decision log line`);
      }
    }
  }
  return problems;
}
