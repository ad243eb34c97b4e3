/**
 * Losing the database's machine: a replicated PostgreSQL (etcd, Patroni,
 * two PostgreSQL servers from Debian's packages, a synchronous standby;
 * db/servers/patroni.ts) under a 3-node harness load, the primary killed whole
 * (Patroni and every PostgreSQL process at once) while the WAL senders
 * are stalled, so what the standby lacks is exactly what was committed
 * on the primary alone. Patroni promotes the standby; the nodes find it
 * (the multi-host DATABASE_URL, `target_session_attrs=read-write`).
 *
 * - Synchronous: 0 checker violations, 0 acknowledged changes missing
 *   from the new primary's history, and every node writing again within
 *   the stated bound (3 × Patroni's ttl).
 * - Asynchronous, the same fault: the check finds acknowledged changes
 *   missing. That is what an asynchronous standby loses, and the proof
 *   that the check catches a loss.
 *
 * Not in `npm test` (vitest.config.ts): `npm run test:failover`, which
 * `.ci/run` runs on its own; `npm run test:failover:long` runs a failover
 * every 30 s for four minutes.
 */
import { describe, expect, it, onTestFailed } from 'vitest';
import { failoverWindows } from '../../src/harness/report.ts';
import { runHarness, type HarnessOptions } from '../../src/harness/run.ts';

const LONG = Boolean(process.env.FAILOVER_LONG);
const TTL_S = 10;
/** Every node writes again within this of the kill: Patroni's ttl (the lost leader's key expiring) and then some. */
const BOUND_MS = 3 * TTL_S * 1000;
/**
 * A run takes 35-60 s here, and 155 s under a disk hog (stress-ng --hdd 4). The bound is what the
 * harness's own waits add up to (each gives up and says so): the cluster's start, the clients'
 * last answers (60 s), a promotion (120 s), the settle (60 s) and the stop (45 s).
 */
const TIMEOUT_MS = 360_000;

const run = (opts: Partial<HarnessOptions>) =>
  runHarness({
    scenario: 'mixed',
    nodes: 3,
    clients: 12,
    seed: 12,
    token: 'admin:harness',
    timeoutMs: 2000,
    patroniTtl: TTL_S,
    durationMs: LONG ? 240_000 : 35_000,
    faults: { pgFailoverEveryMs: LONG ? 30_000 : 8_000, stallStandbyMs: 1000 },
    progress: say,
    ...opts,
  });

/**
 * The harness's progress lines, each with the seconds since the test began: printed as they
 * come with VOLSTATE_TEST_LOG, and all of them when a test fails (a timeout included), so a
 * failure in CI names the step it stopped at.
 */
let lines: string[] = [];
let began = Date.now();
function say(line: string) {
  const stamped = `[+${((Date.now() - began) / 1000).toFixed(1)} s] ${line}`;
  lines.push(stamped);
  if (process.env.VOLSTATE_TEST_LOG) console.log(stamped);
}
function logOnFailure() {
  lines = [];
  began = Date.now();
  onTestFailed(() => console.log(`the harness's progress until the failure:\n${lines.join('\n')}`));
}

describe('PostgreSQL failover under load (Patroni + etcd)', () => {
  it(
    'loses nothing acknowledged with a synchronous standby, and every node writes again within the bound',
    { timeout: LONG ? 900_000 : TIMEOUT_MS },
    async () => {
      logOnFailure();
      const s = await run({ db: 'patroni' });
      const failovers = s.faults.filter((f) => f.kind === 'pg-failover');
      const { first, everyNode } = failoverWindows(s.faults);
      console.log(
        `synchronous: ${failovers.length} failover(s); first write after ${first.join(', ')} ms; every node after ${everyNode.join(', ')} ms; ` +
          `acknowledged ${s.acknowledged?.total}, missing ${s.acknowledged?.missing}; ${s.violations} violations`,
      );
      expect(failovers.length).toBeGreaterThanOrEqual(LONG ? 4 : 1);
      expect(s.checkText).toMatch(/: 0 violations$/);
      expect(s.acknowledged).toMatchObject({ missing: 0 });
      expect(s.acknowledged!.total).toBeGreaterThan(100);
      // Every node of the run wrote again after every failover, within the bound.
      const silent = failovers.flatMap((f) =>
        Object.entries(f.nodes ?? {})
          .filter(([, ms]) => ms === undefined || ms > BOUND_MS)
          .map(([node, ms]) => `${f.detail}: ${node} ${ms ?? 'never'}`),
      );
      expect(silent).toEqual([]);
      expect(everyNode.every((ms) => ms !== undefined && ms <= BOUND_MS)).toBe(true);
      // Truthful answers: a 5xx only for "nothing was changed" or "unknown" (503), never a 500.
      expect(s.outcomes.filter((o) => o.status >= 500 && o.status !== 503)).toEqual([]);
    },
  );

  it('shows what an asynchronous standby loses: the check finds the acknowledged changes missing', { timeout: TIMEOUT_MS }, async () => {
    logOnFailure();
    const s = await run({ db: 'patroni-async', durationMs: 20_000, faults: { pgFailoverEveryMs: 6_000, stallStandbyMs: 1000 } });
    console.log(`asynchronous: acknowledged ${s.acknowledged?.total}, missing ${s.acknowledged?.missing}; ${s.violations} violations`);
    expect(s.faults.filter((f) => f.kind === 'pg-failover').length).toBeGreaterThanOrEqual(1);
    expect(s.acknowledged!.missing).toBeGreaterThan(0);
    expect(s.checkText).toMatch(/^accepted-not-in-history /m);
  });
});
