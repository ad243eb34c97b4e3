/**
 * The harness's report: per operation tried / accepted / refused (busy,
 * invalid, not found) / failed, latency percentiles, throughput over time,
 * the faults injected and how long until the next accepted change after
 * each; as a table for the terminal and as an HTML page with plots
 * (throughput and p50 latency per second, faults marked), no libraries.
 */
import type { Outcome } from './client.ts';

export interface FaultEvent {
  kind: string;
  /** ms since the run started */
  at: number;
  detail: string;
  /** ms from the fault to the next accepted change sent after it (undefined: none came) */
  recoveredAfter?: number | undefined;
  /** per node (its URL): ms from the fault to that node's first accepted change sent after it (pg-failover) */
  nodes?: Record<string, number | undefined> | undefined;
}

export interface RunSummary {
  seed: number;
  scenario: string;
  nodes: number;
  clients: number;
  durationMs: number;
  /** the limit that ended the run: --ops reached, or --duration over */
  endedBy: 'ops' | 'duration';
  outcomes: Outcome[];
  faults: FaultEvent[];
  violations: number | undefined;
  checkText: string | undefined;
  /** changes clients were told succeeded (2xx with a request id), and how many of them the history lacks (checked runs) */
  acknowledged?: { total: number; missing: number } | undefined;
  /** `--notify`: notifications the history says were due, received (copies), duplicates, missing; the consumer's reconnections */
  notifications?:
    { expected: number; received: number; duplicates: number; missing: number; reconnects: number; lagMs?: [number, number] } | undefined;
}

/**
 * Write unavailability per failover: from the kill to the first accepted
 * change sent after it (any node), and to the moment every node had one
 * (undefined: some node never wrote again).
 */
export function failoverWindows(faults: FaultEvent[]): { first: (number | undefined)[]; everyNode: (number | undefined)[] } {
  const fos = faults.filter((f) => f.kind === 'pg-failover');
  return {
    first: fos.map((f) => f.recoveredAfter),
    everyNode: fos.map((f) => {
      const per = Object.values(f.nodes ?? {});
      return per.length && per.every((x) => x !== undefined) ? Math.max(...per) : undefined;
    }),
  };
}

const p50max = (xs: (number | undefined)[]) => {
  const known = xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  const never = xs.length - known.length;
  return `p50 ${percentile(known, 50).toFixed(0)} ms, max ${(known.at(-1) ?? 0).toFixed(0)} ms${never ? ` (${never} never)` : ''}`;
};

const percentile = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;

export interface OpRow {
  op: string;
  tried: number;
  accepted: number;
  busy: number;
  invalid: number;
  notFound: number;
  otherRefused: number;
  failed: number;
  unknown: number;
  p50: number;
  p95: number;
  p99: number;
}

export function opRows(outcomes: Outcome[]): OpRow[] {
  const byOp = new Map<string, Outcome[]>();
  // One push per outcome: a copy per outcome (spreading the list so far) made this quadratic, and a
  // million-operation run's report never came (16 minutes in V8's array growth, issue 18).
  for (const o of outcomes) {
    const list = byOp.get(o.op);
    if (list) list.push(o);
    else byOp.set(o.op, [o]);
  }
  const rows = [...byOp].map(([op, os]) => {
    const ms = os.map((o) => o.ms).sort((a, b) => a - b);
    const n = (f: (s: number) => boolean) => os.filter((o) => f(o.status)).length;
    return {
      op,
      tried: os.length,
      accepted: n((s) => s >= 200 && s < 300),
      busy: n((s) => s === 409),
      invalid: n((s) => s === 400),
      notFound: n((s) => s === 404),
      otherRefused: n((s) => s >= 400 && s < 500 && s !== 400 && s !== 404 && s !== 409),
      failed: n((s) => s >= 500),
      unknown: n((s) => s === 0),
      p50: percentile(ms, 50),
      p95: percentile(ms, 95),
      p99: percentile(ms, 99),
    };
  });
  return rows.sort((a, b) => a.op.localeCompare(b.op));
}

/** Accepted operations per second of the run, and their p50 latency. */
export function perSecond(outcomes: Outcome[], durationMs: number): { ops: number[]; p50: number[] } {
  const seconds = Math.max(1, Math.ceil(durationMs / 1000));
  const buckets: number[][] = Array.from({ length: seconds }, () => []);
  for (const o of outcomes) if (o.status >= 200 && o.status < 300) buckets[Math.min(seconds - 1, Math.floor(o.at / 1000))]!.push(o.ms);
  return {
    ops: buckets.map((b) => b.length),
    p50: buckets.map((b) =>
      percentile(
        b.sort((x, y) => x - y),
        50,
      ),
    ),
  };
}

export function textReport(s: RunSummary): string {
  const rows = opRows(s.outcomes);
  const cols = [
    'op',
    'tried',
    'accepted',
    'busy 409',
    'invalid 400',
    '404',
    'other 4xx',
    'failed 5xx',
    'unknown',
    'p50 ms',
    'p95 ms',
    'p99 ms',
  ];
  const cells = rows.map((r) =>
    [
      r.op,
      r.tried,
      r.accepted,
      r.busy,
      r.invalid,
      r.notFound,
      r.otherRefused,
      r.failed,
      r.unknown,
      r.p50.toFixed(1),
      r.p95.toFixed(1),
      r.p99.toFixed(1),
    ].map(String),
  );
  const total = (k: keyof OpRow) => rows.reduce((a, r) => a + (r[k] as number), 0);
  cells.push(
    [
      'all',
      total('tried'),
      total('accepted'),
      total('busy'),
      total('invalid'),
      total('notFound'),
      total('otherRefused'),
      total('failed'),
      total('unknown'),
      '',
      '',
      '',
    ].map(String),
  );
  const width = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join('  ');
  const { ops } = perSecond(s.outcomes, s.durationMs);
  const lines = [
    `scenario ${s.scenario}, seed ${s.seed}, ${s.nodes ? `${s.nodes} nodes` : 'an endpoint'}, ${s.clients} clients, ${(s.durationMs / 1000).toFixed(1)} s: ` +
      `${total('tried')} operations, ${(total('tried') / (s.durationMs / 1000)).toFixed(0)} ops/s, ${(total('accepted') / (s.durationMs / 1000)).toFixed(0)} accepted/s; ` +
      `ended by ${s.endedBy === 'ops' ? 'its --ops' : 'its --duration'}`,
    fmt(cols),
    ...cells.map(fmt),
    `accepted per second: ${ops.join(' ')}`,
    `5xx answers by status: ${
      [...new Set(s.outcomes.filter((o) => o.status >= 500).map((o) => o.status))]
        .sort()
        .map((st) => `${st}×${s.outcomes.filter((o) => o.status === st).length}`)
        .join(' ') || 'none'
    } (503: the database went away; nothing was changed, or the answer says the outcome is unknown)`,
  ];
  if (s.faults.length) {
    const rec = s.faults
      .map((f) => f.recoveredAfter)
      .filter((x): x is number => x !== undefined)
      .sort((a, b) => a - b);
    lines.push(
      `faults: ${s.faults.length} (${[...new Set(s.faults.map((f) => f.kind))].join(', ')}); next accepted change after each: p50 ${percentile(rec, 50).toFixed(0)} ms, max ${(rec.at(-1) ?? 0).toFixed(0)} ms`,
    );
    for (const f of s.faults.slice(0, 20)) {
      const perNode = f.nodes
        ? `; each node: ${Object.values(f.nodes)
            .map((ms) => (ms === undefined ? 'never' : `${ms.toFixed(0)} ms`))
            .join(', ')}`
        : '';
      lines.push(
        `  ${(f.at / 1000).toFixed(1)} s ${f.kind} ${f.detail}: ${f.recoveredAfter === undefined ? 'no accepted change after it' : `next accepted change after ${f.recoveredAfter.toFixed(0)} ms`}${perNode}`,
      );
    }
    const fo = failoverWindows(s.faults);
    if (fo.first.length)
      lines.push(
        `failovers: ${fo.first.length}; write unavailability, to the first accepted change: ${p50max(fo.first)}; until every node wrote again: ${p50max(fo.everyNode)}`,
      );
  }
  if (s.acknowledged) lines.push(`acknowledged changes: ${s.acknowledged.total}, missing from the history: ${s.acknowledged.missing}`);
  if (s.notifications)
    lines.push(
      `notifications: ${s.notifications.expected} due from the history, ${s.notifications.received} received (${s.notifications.duplicates} repeated, same message id), ${s.notifications.missing} missing; the consumer reconnected ${s.notifications.reconnects} times` +
        (s.notifications.lagMs
          ? `; from a transition to its notification p50 ${s.notifications.lagMs[0]} ms, p99 ${s.notifications.lagMs[1]} ms`
          : ''),
    );
  lines.push(s.violations === undefined ? 'history not checked (no database to read: give --database-url)' : `${s.violations} violations`);
  return lines.join('\n');
}

function svgChart(values: number[], faults: FaultEvent[], durationMs: number, title: string, unit: string): string {
  const w = 760;
  const h = 200;
  const pad = 40;
  const max = Math.max(1, ...values);
  const x = (i: number) => pad + (i / Math.max(1, values.length - 1)) * (w - 2 * pad);
  const y = (v: number) => h - pad + 10 - (v / max) * (h - 2 * pad);
  const line = values.map((v, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const marks = faults
    .map((f) => {
      const fx = pad + (f.at / Math.max(1, durationMs)) * (w - 2 * pad);
      return `<line x1="${fx}" x2="${fx}" y1="${pad - 10}" y2="${h - pad + 10}" stroke="#d33" stroke-dasharray="4 3"><title>${f.kind} ${f.detail}</title></line>`;
    })
    .join('');
  return `<figure><figcaption>${title}</figcaption><svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">
<line x1="${pad}" x2="${w - pad}" y1="${h - pad + 10}" y2="${h - pad + 10}" stroke="#888"/><text x="${pad}" y="${pad - 14}" font-size="11">${max.toFixed(0)} ${unit}</text>
<text x="${w - pad}" y="${h - 8}" font-size="11" text-anchor="end">${(durationMs / 1000).toFixed(0)} s</text>${marks}<path d="${line}" fill="none" stroke="#2463eb" stroke-width="1.5"/></svg></figure>`;
}

const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;');

export function htmlReport(s: RunSummary): string {
  const { ops, p50 } = perSecond(s.outcomes, s.durationMs);
  return `<!doctype html><html><head><meta charset="utf-8"><title>volstate harness: ${esc(s.scenario)} (seed ${s.seed})</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}pre{background:#f6f6f6;padding:1em;overflow:auto}figure{margin:1em 0}</style></head><body>
<h1>volstate harness: ${esc(s.scenario)}</h1>
<p>Seed ${s.seed}; replay with <code>--seed ${s.seed}</code>. Dashed red lines are faults.</p>
${svgChart(ops, s.faults, s.durationMs, 'accepted changes per second', '/s')}
${svgChart(p50, s.faults, s.durationMs, 'p50 latency of accepted changes, per second', 'ms')}
<h2>Report</h2><pre>${esc(textReport(s))}</pre>
${s.checkText ? `<h2>History check</h2><pre>${esc(s.checkText)}</pre>` : ''}
</body></html>`;
}
