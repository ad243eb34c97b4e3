/**
 * The harness's report at the size the soak runs: a million outcomes.
 * Building the per-operation rows copied each operation's list so far for
 * every outcome (quadratic): the million-operation soak's report never came
 * (16 minutes in V8's array growth before it was killed). Here the text and
 * HTML reports of a million outcomes are built (under a second) and every
 * figure checked; with the quadratic version this test was still running
 * when killed after 200 s, so npm test never ended.
 */
import { describe, expect, it } from 'vitest';
import type { Outcome } from '../../src/harness/client.ts';
import { OPERATIONS } from '../../src/harness/scenario.ts';
import { htmlReport, opRows, textReport, type RunSummary } from '../../src/harness/report.ts';

const OPS = OPERATIONS.slice(0, 10);
const N = 1_000_000;

/** Outcome i: operation i mod 10; status by ⌊i / 10⌋ mod 5 (202, 202, 409, 400, 503), so each operation sees each; latency i mod 100 ms; one answer every 5 ms. */
function outcomes(): Outcome[] {
  const statuses = [202, 202, 409, 400, 503];
  return Array.from({ length: N }, (_, i) => ({
    op: OPS[i % OPS.length]!,
    status: statuses[Math.floor(i / 10) % statuses.length]!,
    ms: i % 100,
    at: i * 5,
    requestId: `req-${i}`,
  }));
}

describe('harness report', () => {
  it('counts a million outcomes per operation, and writes the text and HTML reports', { timeout: 60_000 }, () => {
    const all = outcomes();
    const rows = opRows(all);
    expect(rows.map((r) => r.op)).toEqual([...OPS].sort());
    for (const r of rows) {
      // Each operation gets every tenth outcome, a fifth of them with each status.
      expect(r.tried).toBe(N / 10);
      expect([r.accepted, r.busy, r.invalid, r.failed, r.notFound]).toEqual([(2 * N) / 50, N / 50, N / 50, N / 50, 0]);
      expect(r.p50).toBeGreaterThanOrEqual(0);
      expect(r.p99).toBeLessThanOrEqual(99);
    }
    expect(rows.reduce((a, r) => a + r.accepted, 0)).toBe((2 * N) / 5);

    const summary: RunSummary = {
      seed: 18,
      scenario: 'mixed',
      nodes: 3,
      clients: 32,
      durationMs: N * 5,
      endedBy: 'ops',
      outcomes: all,
      faults: [{ kind: 'kill', at: 10_000, detail: 'node 1', recoveredAfter: 5 }],
      violations: 0,
      checkText: 'checked 1 transitions of 1 resources: 0 violations',
      acknowledged: { total: (2 * N) / 5, missing: 0 },
    };
    const text = textReport(summary);
    expect(text).toContain(`${N} operations`);
    expect(text).toContain(`503×${N / 5}`);
    expect(text).toContain(`acknowledged changes: ${(2 * N) / 5}, missing from the history: 0`);
    expect(htmlReport(summary)).toContain('volstate harness: mixed');
  });
});
