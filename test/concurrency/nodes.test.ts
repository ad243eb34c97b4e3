/**
 * Active/Active with real processes: several `volstate serve` nodes on one
 * PostgreSQL, clients spread over them, a node SIGKILLed while its steps
 * are in flight, PostgreSQL itself restarted under load. Invariants:
 * every resource reaches a resting state; the dead node's rows are taken
 * back within three worker timeouts; the history holds only machine
 * edges; no resource was worked on by two owners at once (the fake
 * driver's journal, across processes); no request answered with a 5xx
 * had changed anything.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { APP_DATABASE, ensureDatabase, sqlClient } from '../../db/connect.ts';
import { freePort, startEmbedded, type EmbeddedServer } from '../../db/servers/embedded.ts';
import { migrate } from '../../db/migrate.ts';
import { MODELS, modelOf, type ResourceModel, type ResourceType } from '../../machines/index.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { call, overlapsIn, startNode, type VolstateNode } from '../helpers/nodes.ts';
import { isMachineEdge } from '../helpers/rows.ts';
import { eventually, until } from '../helpers/wait.ts';

const TIMEOUT_MS = 2000;
const running: VolstateNode[] = [];
const cleanups: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const n of running) n.proc.kill('SIGKILL');
  await Promise.all(running.map((n) => n.exited));
  for (const c of cleanups) await c();
});

async function nodes(count: number, databaseUrl: string, latencyMs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'volstate-nodes-'));
  const journal = join(dir, 'journal');
  writeFileSync(journal, '');
  const started = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      startNode({ databaseUrl, dataDir: join(dir, `node${i}`), storage: join(dir, 'storage'), journal, latencyMs, timeoutMs: TIMEOUT_MS }),
    ),
  );
  running.push(...started);
  /** One more node on the same database, storage and journal. */
  const another = async (latency: number) => {
    const node = await startNode({
      databaseUrl,
      dataDir: join(dir, `node${running.length}`),
      storage: join(dir, 'storage'),
      journal,
      latencyMs: latency,
      timeoutMs: TIMEOUT_MS,
    });
    running.push(node);
    return node;
  };
  return { nodes: started, journal, another };
}

/**
 * Call any live node, moving on to the next when one does not answer. Each
 * call goes round the whole pool from where it starts: with one counter
 * shared by every caller, the other callers' turns could land one call's
 * every try on the killed node ("no node answered", once in a full run).
 */
function client(pool: VolstateNode[]) {
  let next = 0;
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const first = next++;
    for (let tries = 0; tries < pool.length * 3; tries++) {
      const node = pool[(first + tries) % pool.length]!;
      const r = await call(node, method, path, body, headers);
      if (r.status !== 0) return r;
    }
    throw new Error(`no node answered ${method} ${path}`);
  };
}

/**
 * Clients wait out busy resources (`Prefer: wait`), but not for long: a
 * request whose node died after its CAS and before its answer is retried,
 * and the retry may be refused for good (the extend already happened; an
 * orphan snapshot made by the lost request keeps its volume from being
 * deleted). Waiting on those ends only at the deadline.
 */
const WAIT = { prefer: 'wait=10' };
const busy = (status: number) => status === 409 || status === 0;

/**
 * A retry loop's patience: past it the loop fails naming what it waited
 * for and the last answer, instead of running into the test's timeout.
 */
function patience(what: string, ms = 60_000) {
  const until = Date.now() + ms;
  return (r: { status: number; body: unknown }) => {
    if (Date.now() > until) throw new Error(`${what}: still refused after ${ms} ms, last answer ${r.status} ${JSON.stringify(r.body)}`);
  };
}

/** Rows not at rest: owned by a worker, or in a state with a step (at most 10, with what a failure should name). */
async function stepStates(sql: postgres.Sql) {
  return sql.unsafe<{ resource_type: string; resource_id: string; state: string; owner: string | null; updated_at: Date }[]>(
    `SELECT resource_type, resource_id, state, owner, updated_at FROM resource_states WHERE owner IS NOT NULL OR ${(
      Object.values(MODELS) as ResourceModel[]
    )
      .filter((m) => m.index.stepStates.length)
      .map((m) => `(resource_type = '${m.type}' AND state IN (${m.index.stepStates.map((s) => `'${s}'`).join(', ')}))`)
      .join(' OR ')} LIMIT 10`,
  );
}

/** Wait for every row to come to rest; a timeout names the rows that did not. */
async function settle(sql: postgres.Sql, ms: number) {
  await eventually(
    async () => {
      const left = await stepStates(sql);
      if (left.length > 0)
        throw new Error(
          left.map((r) => `${r.resource_type} ${r.resource_id} ${r.state} owner ${r.owner} since ${r.updated_at.toISOString()}`).join('; '),
        );
      return true;
    },
    ms,
    'every resource to come to rest',
  );
}

async function checkHistory(sql: postgres.Sql) {
  const rows = await sql`SELECT resource_type, from_state, event, to_state FROM state_transitions`;
  const bad = rows.filter((h) => !isMachineEdge(modelOf(h.resource_type as ResourceType), h.from_state, h.event, h.to_state));
  expect(bad).toEqual([]);
  return rows.length;
}

describe('three nodes, 200 volumes, one node SIGKILLed mid-run', () => {
  it('loses nothing, leaves nothing stuck, and never lets two owners work on one resource', { timeout: 240_000 }, async () => {
    const url = await createTestDatabase();
    const sql = sqlClient(url, { max: 4, onnotice: () => {} });
    cleanups.push(() => sql.end());
    const { nodes: three, journal } = await nodes(3, url, 100);
    const api = client(three);
    const victim = three[1]!;
    const volumes: string[] = [];
    let done = 0;
    let orphans = 0;

    const lifecycle = async () => {
      const created = await api('POST', '/v3/volumes', { volume: { size: 1 } });
      expect(created.status).toBe(202);
      const id = created.body.volume.id as string;
      volumes.push(id);
      for (const waited = patience(`extend ${id}`); ;) {
        const r = await api('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } }, WAIT);
        if (r.status === 202) break;
        waited(r);
        expect(busy(r.status) || r.status === 400, JSON.stringify(r.body)).toBe(true);
        if (r.status === 400) break; // an earlier try went through before its node died
      }
      let snap: string | undefined;
      for (const waited = patience(`snapshot ${id}`); !snap;) {
        const r = await api('POST', '/v3/snapshots', { snapshot: { volume_id: id } }, WAIT);
        if (r.status === 202) snap = r.body.snapshot.id;
        else {
          waited(r);
          expect(busy(r.status), JSON.stringify(r.body)).toBe(true);
        }
      }
      for (const waited = patience(`delete snapshot ${snap}`); ;) {
        const r = await api('DELETE', `/v3/snapshots/${snap}`, undefined, WAIT);
        if (r.status === 202 || r.status === 404) break;
        waited(r);
        expect(busy(r.status) || r.status === 400, JSON.stringify(r.body)).toBe(true);
      }
      // A snapshot create whose answer was lost (its node died after the
      // CAS) was retried, so the volume may hold a snapshot nobody heard
      // of: a plain delete is then refused for good (400, it has
      // snapshots), and the client deletes with cascade, as a person would.
      let cascade = '';
      for (const waited = patience(`delete volume ${id}`); ;) {
        const r = await api('DELETE', `/v3/volumes/${id}${cascade}`, undefined, WAIT);
        if (r.status === 202 || r.status === 404) break;
        waited(r);
        expect(busy(r.status) || r.status === 400, JSON.stringify(r.body)).toBe(true);
        if (r.status === 400) {
          expect(r.body.badRequest.message, 'a plain delete is refused only for snapshots').toMatch(/snapshot/i);
          cascade = '?cascade=True';
          orphans++;
        }
      }
      done++;
    };

    // 200 (500, then 300, until 2026-12-05): the same kill and recovery, less of the suite's busiest
    // minutes (npm test ≤ 300 s on 2 cores, issue 18; this file and the harness's are half of its
    // CPU); a tenth are done before the kill, 180 run through it.
    const TOTAL = 200;
    let launched = 0;
    const users = Array.from({ length: 40 }, async () => {
      while (launched < TOTAL) {
        launched++;
        await lifecycle();
      }
    });

    // Kill a node once work is well under way (a tenth of the lifecycles done) and it owns steps in flight.
    let killedAt = 0;
    await until(() => done >= TOTAL / 10, 120_000, `${TOTAL / 10} lifecycles to finish before the kill`);
    const ownedAtKill = await eventually(
      async () => {
        const owned = (await sql`SELECT resource_id FROM resource_states WHERE owner = ${victim.workerId}`).map(
          (r) => r.resource_id as string,
        );
        return owned.length > 0 ? owned : undefined;
      },
      60_000,
      'the victim to own steps in flight',
    );
    victim.proc.kill('SIGKILL');
    killedAt = Date.now();
    const [{ now: killedDb }] = (await sql`SELECT now()`) as unknown as [{ now: Date }];
    await victim.exited;
    running.splice(running.indexOf(victim), 1);
    expect(ownedAtKill.length).toBeGreaterThan(0);

    // The dead node's rows are taken back within three timeouts of the kill, on the database's
    // clock (the WORKER_LOST transitions' own time, not this test's polling). That is the bound
    // for a healthy worker: one whose beats came late (a starved machine) restarts its healthy
    // clock and judges nobody dead until it has beaten steadily for a timeout (db/workers.ts),
    // so its bound starts from there.
    await until(
      async () => (await sql`SELECT 1 AS one FROM resource_states WHERE owner = ${victim.workerId}`).length === 0,
      60_000,
      "the dead node's rows to be taken back",
    );
    // The first WORKER_LOST: when recovery began (the dead judged, its rows then sent back one
    // CAS each; on a loaded database applying a dozen takes a second or more, and is not the bound).
    const [lost] = await sql<{ at: Date; actor: string }[]>`
      SELECT at, actor FROM state_transitions WHERE event = 'WORKER_LOST' AND at >= ${killedDb} ORDER BY at LIMIT 1`;
    const [last] = await sql<{ at: Date }[]>`SELECT max(at) AS at FROM state_transitions WHERE event = 'WORKER_LOST' AND at >= ${killedDb}`;
    expect(lost, 'a WORKER_LOST after the kill').toBeDefined();
    const [judge] = await sql<
      { healthy_since: Date }[]
    >`SELECT healthy_since FROM workers WHERE id = ${lost!.actor.replace(/^recovery:/, '')}`;
    const clockFrom = judge && judge.healthy_since.getTime() > killedDb.getTime() - TIMEOUT_MS ? judge.healthy_since : killedDb;
    const recoveryMs = lost!.at.getTime() - killedDb.getTime();
    const allBackMs = last!.at.getTime() - killedDb.getTime();
    expect(
      lost!.at.getTime() - clockFrom.getTime(),
      `recovery began ${recoveryMs} ms after the kill (all back after ${allBackMs} ms); the judge healthy since ${clockFrom.toISOString()}`,
    ).toBeLessThanOrEqual(3 * TIMEOUT_MS);

    await Promise.all(users);
    expect(done).toBe(TOTAL);
    await settle(sql, 3 * TIMEOUT_MS);

    const live = await sql`SELECT resource_type, state, count(*)::int AS n FROM resource_states GROUP BY 1, 2 ORDER BY 1, 2`;
    // Everything the clients made is deleted; at most a few volumes made by a
    // request whose node died before answering remain, at rest.
    for (const row of live) expect(['deleted', 'available']).toContain(row.state);
    const transitions = await checkHistory(sql);
    expect(overlapsIn(journal, new Map([[victim.proc.pid!, killedAt]]))).toEqual([]);
    const [leases] = await sql`SELECT count(*)::int AS n FROM leases`;
    expect(leases!.n).toBe(0);
    const recoveries = await sql`SELECT count(*)::int AS n FROM state_transitions WHERE event = 'WORKER_LOST'`;
    expect(recoveries[0]!.n).toBeGreaterThan(0);
    console.log(
      `nodes: ${TOTAL} volumes through create/extend/snapshot/delete on 3 nodes; node killed owning ${ownedAtKill.length} rows; ` +
        `recovery began ${recoveryMs} ms after (all back after ${allBackMs} ms; timeout ${TIMEOUT_MS} ms); ${recoveries[0]!.n} WORKER_LOST; ${orphans} cascade deletes for snapshots of lost answers; ` +
        `${transitions} transitions, all machine edges`,
    );
  });
});

describe('R5: a node dies in the middle of cascade deletes', () => {
  it('every volume and snapshot still reaches its end', { timeout: 120_000 }, async () => {
    const url = await createTestDatabase();
    const sql = sqlClient(url, { max: 4, onnotice: () => {} });
    cleanups.push(() => sql.end());
    const { nodes: first, another } = await nodes(1, url, 300);
    const volumes: string[] = [];
    const made = client(first);
    for (let i = 0; i < 10; i++) volumes.push((await made('POST', '/v3/volumes', { volume: { size: 1 } })).body.volume.id);
    for (const id of volumes) {
      for (let s = 0; s < 2; s++) expect((await made('POST', '/v3/snapshots', { snapshot: { volume_id: id } }, WAIT)).status).toBe(202);
    }
    // Every snapshot available. Then the victim joins, a node whose backend calls outlast the
    // test: a snapshot delete it claims stays its own until it is killed, so the test sees it
    // own one however loaded the machine (a 300 ms victim's could come and go between two looks).
    await settle(sql, 30_000);
    const victim = await another(600_000);
    const api = client([first[0]!, victim]);
    for (const id of volumes) expect((await api('DELETE', `/v3/volumes/${id}?cascade=True`)).status).toBe(202);
    // Killed while it works on the cascade: once it owns a snapshot's delete.
    await until(
      async () =>
        (await sql`SELECT 1 AS one FROM resource_states WHERE owner = ${victim.workerId} AND resource_type = 'snapshot'`).length > 0,
      30_000,
      'the victim to own a snapshot delete',
    );
    victim.proc.kill('SIGKILL');
    await victim.exited;
    running.splice(running.indexOf(victim), 1);
    await settle(sql, 30_000);
    const left = await sql`SELECT resource_type, state, count(*)::int AS n FROM resource_states GROUP BY 1, 2`;
    expect(left.map((r) => `${r.resource_type} ${r.state}`).sort()).toEqual(['snapshot deleted', 'volume deleted']);
    await checkHistory(sql);
  });
});

describe('PostgreSQL restarted under load', () => {
  it('nodes reconnect, and no request answered with a 5xx changed anything', { timeout: 120_000 }, async () => {
    // A PostgreSQL of its own, to restart.
    const dir = mkdtempSync(join(tmpdir(), 'volstate-test-restart-'));
    chmodSync(dir, 0o755);
    const port = await freePort();
    let pg: EmbeddedServer = await startEmbedded({ dir, port, fast: true });
    cleanups.push(async () => pg.stop());
    await ensureDatabase(pg.adminUrl, APP_DATABASE);
    const url = pg.urlFor(APP_DATABASE);
    await migrate(url);
    const { nodes: two } = await nodes(2, url, 20);
    const api = client(two);

    const failed = new Map<string, string>(); // request id → what was asked and answered
    const errors: string[] = []; // 500s: an outage is a 503 (the database is unavailable), never an internal error
    let requests = 0;
    let stop = false;
    // The outage, and the requests in flight across some of it.
    let downAt = Infinity;
    let upAt = Infinity;
    let metOutage = 0;
    let acceptedAfter = 0;
    const timed: typeof api = async (...args) => {
      const started = Date.now();
      const r = await api(...args);
      if (r.status === 500) errors.push(`${args[0]} ${args[1]} → 500 ${JSON.stringify(r.body)}`);
      if (started < upAt && Date.now() > downAt) metOutage++;
      if (started > upAt && r.status < 300) acceptedAfter++;
      return r;
    };
    const load = Array.from({ length: 10 }, async () => {
      while (!stop) {
        const created = await timed('POST', '/v3/volumes', { volume: { size: 1 } });
        requests++;
        if (created.status >= 500) {
          if (created.requestId) failed.set(created.requestId, `POST /v3/volumes → ${created.status} ${JSON.stringify(created.body)}`);
          continue;
        }
        const id = created.body.volume.id;
        for (const [method, path, body] of [
          ['POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } }],
          ['DELETE', `/v3/volumes/${id}`, undefined],
        ] as const) {
          const r = await timed(method, path, body, { prefer: 'wait=10' });
          requests++;
          if (r.status >= 500 && r.requestId) failed.set(r.requestId, `${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
        }
      }
    });
    // The outage comes under load, lasts until every node has seen it (its /readyz says the
    // database is gone), and the run goes on until the nodes accept changes again: each moment
    // is an event the test sees, not a margin of time.
    await until(() => requests >= 30, 60_000, 'load before the outage');
    downAt = Date.now();
    await pg.stop();
    for (const n of two) await until(async () => (await call(n, 'GET', '/readyz')).status === 503, 30_000, `${n.url} to see the outage`);
    pg = await startEmbedded({ dir, port, fast: true });
    upAt = Date.now();
    await until(() => acceptedAfter >= 30, 60_000, 'changes accepted after the restart');
    stop = true;
    await Promise.all(load);

    for (const n of two) expect(n.proc.exitCode, n.output()).toBeNull(); // still running
    const sql = sqlClient(url, { max: 2, onnotice: () => {} });
    cleanups.unshift(() => sql.end());
    await settle(sql, 30_000).catch(async (err: Error) => {
      // What the nodes' workers say, and what the database's sessions are doing, when a row stays put.
      const workers = await Promise.all(
        two.map(async (n) => {
          const text = await fetch(`${n.url}/metrics`, { headers: { 'x-auth-token': 'admin:admin' } })
            .then((r) => r.text())
            .catch((e: Error) => e.message);
          return `${n.url}: ${text
            .split('\n')
            .filter((l) => /^volstate_(worker|pending)/.test(l))
            .join('; ')}\n${n.output().slice(-30000)}`;
        }),
      );
      const sessions = await sql`
        SELECT application_name, state, wait_event_type, wait_event, left(query, 100) AS query, now() - state_change AS for
        FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`.catch((e: Error) => e.message);
      // The global locks held, and whether one is a stuck row's fence (src/worker/worker.ts: resource-<type>:<id>).
      const locks = await sql`
        SELECT a.application_name, a.pid, l.granted, r.resource_id AS fence_of
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        LEFT JOIN resource_states r ON ((hashtextextended('resource-' || r.resource_type || ':' || r.resource_id, 0) >> 32) & 4294967295)::oid = l.classid
          AND (hashtextextended('resource-' || r.resource_type || ':' || r.resource_id, 0) & 4294967295)::oid = l.objid
        WHERE l.locktype = 'advisory'`.catch((e: Error) => e.message);
      throw new Error(`${err.message}\nlocks: ${JSON.stringify(locks)}\nsessions: ${JSON.stringify(sessions)}\n${workers.join('\n')}`);
    });
    // Requests met the outage: those in flight when it began wait for the
    // database to say what they did (src/api/changes.ts), so many answer
    // after it, as done or as 503.
    expect(metOutage, 'some requests met the outage').toBeGreaterThan(0);
    const changed = failed.size
      ? await sql`SELECT request_id, resource_type, from_state, event, to_state FROM state_transitions WHERE request_id IN ${sql([...failed.keys()])}`
      : [];
    expect(errors).toEqual([]);
    expect(changed.map((c) => `${failed.get(c.request_id)} but ${c.resource_type} ${c.from_state} -${c.event}-> ${c.to_state}`)).toEqual(
      [],
    );
    await checkHistory(sql);
    console.log(`restart: ${requests} requests, ${metOutage} met the outage, ${failed.size} answered 5xx, none of which changed state`);
  });
});
