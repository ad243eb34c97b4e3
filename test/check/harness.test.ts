/**
 * The harness, CI-sized: a mixed storm on real nodes with a node SIGKILLed
 * every few seconds ends with the history checker finding nothing; and the
 * same harness against a deliberately broken enforcer (a guard compiled
 * as TRUE) is caught by the checker.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runHarness, type HarnessOptions } from '../../src/harness/run.ts';
import { createTestDatabase } from '../helpers/db.ts';

/** A CI-sized run: the mixed storm, 8 clients, no faults unless given. */
const ciRun = (opts: Partial<HarnessOptions>) =>
  runHarness({ scenario: 'mixed', nodes: 1, clients: 8, ops: 800, seed: 1, faults: {}, token: 'admin:harness', timeoutMs: 2000, ...opts });

describe('volstate harness', () => {
  it('runs a mixed storm (700 operations) on two nodes (grouping their transitions), one SIGKILLed every 3 s, and the checker finds 0 violations', async () => {
    const report = join(mkdtempSync(join(tmpdir(), 'volstate-report-')), 'report.html');
    // The nodes group their transaction-free transitions (group commit, off by default): the
    // checker judges the batched statements under kills as it judges the single ones.
    const summary = await ciRun({
      nodes: 2,
      ops: 700,
      seed: 7,
      faults: { killEveryMs: 3000, driverLatencyMs: 10 },
      databaseUrl: await createTestDatabase(),
      reportFile: report,
      nodeEnv: { VOLSTATE_GROUP_COMMIT: '64' },
    });
    expect(summary.checkText).toMatch(/: 0 violations$/);
    expect(summary.violations).toBe(0);
    expect(summary.faults.filter((f) => f.kind === 'kill').length).toBeGreaterThanOrEqual(1);
    // The storm did real work (how much depends on how many kills a busy machine's slower run
    // meets: 144 of 1,500 with another heavy test file alongside, about 300 alone; 1,000, then 700
    // since 2026-12-05, for npm test to stay under 300 s).
    expect(summary.outcomes.filter((o) => o.status >= 200 && o.status < 300).length).toBeGreaterThan(50);
    expect(summary.outcomes.filter((o) => o.status >= 500)).toEqual([]);
    // --ops counts what the report counts (a step with nothing to act on is no operation).
    expect(summary.endedBy).toBe('ops');
    expect(summary.outcomes.length).toBe(700);
    const html = readFileSync(report, 'utf8');
    expect(html).toContain('ended by its --ops');
    expect(html).toContain('<svg');
    expect(html).toContain('seed 7');
    // The run ends on its 700th operation (1,500, then 1,000, until 2026-12-05); this is only the guard against a hang. It took 84 s on a
    // quiet machine, 114 s beside an apt-get and about 100 s under two CPU hogs: 120 s was a flake
    // waiting for a busier machine.
  }, 300_000);

  it('rides out PostgreSQL restarts (its own embedded server, restarted every 2 s) with 0 violations', async () => {
    // 300 operations (500 until 2026-12-05): a request that meets a restart now waits for the
    // database and answers 503 or its outcome, where it answered 500 at once (connect ENOENT was
    // no connection error), which made the same 500 operations take 39 → 69 s. Then one restart
    // in five or so took 10 s, not 0.2 s: a pool connection that closed with a write pending never
    // sent its next startup message (postgres.js, guards 7 and 8 of scripts/patch-postgres.mjs), and
    // the server's fast shutdown waited for it until connect_timeout; 300 operations 48 → 12 s.
    // At least 300 operations and two restarts: the first restart is ridden out by the operations
    // made before the second (a fast machine made all 300 in under 2 s, before any restart).
    const summary = await ciRun({ seed: 3, ops: 300, minFaults: 2, faults: { pgRestartEveryMs: 2000 } });
    expect(summary.faults.filter((f) => f.kind === 'pg-restart').length).toBeGreaterThanOrEqual(2);
    expect(summary.checkText).toMatch(/: 0 violations$/);
    expect(summary.outcomes.filter((o) => o.status === 500).map((o) => o.op)).toEqual([]);
    const statuses = summary.outcomes.map((o) => o.status);
    console.log(
      `pg-restart: ${statuses.length} operations, ${statuses.filter((s) => s === 503).length} × 503, ${statuses.filter((s) => s === 0).length} unanswered`,
    );
  }, 180_000);

  it('catches a broken enforcer: with the guard "no snapshots" dropped from the SQL, deletes are let through under snapshots and the volumes never come to rest', async () => {
    const summary = await ciRun({
      scenario: 'snapshot-vs-delete',
      ops: 300,
      seed: 11,
      databaseUrl: await createTestDatabase(),
      nodeEnv: { VOLSTATE_BREAK_GUARDS: 'volume.noSnapshots' },
      settleMs: 5000,
    });
    console.log(`broken enforcer: ${summary.checkText?.split('\n').slice(0, 4).join(' | ')}`);
    expect(summary.violations).toBeGreaterThan(0);
    expect(summary.checkText).toMatch(/^(snapshot-outlives-volume|not-at-rest) /m);
  }, 120_000);
});
