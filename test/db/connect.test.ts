/**
 * db/connect.ts reads libpq's `host` parameter (a Unix socket's directory),
 * which postgres.js does not: the embedded server's URLs name its socket,
 * and a multi-host URL (Patroni's) is no WHATWG URL and must pass untouched.
 */
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect, sqlClient, tcpUrl } from '../../db/connect.ts';
import { freePort, startEmbedded } from '../../db/servers/embedded.ts';
import { migrate } from '../../db/migrate.ts';
import { isConnectionError, SQLSTATE, sqlState } from '../../db/sqlstate.ts';
import { until } from '../helpers/wait.ts';
import { useTestDatabase } from '../helpers/db.ts';

const db = useTestDatabase();

describe('database URLs', () => {
  it('drops the socket parameter for TCP, wherever it stands, and leaves every other URL as it is', () => {
    expect(tcpUrl('postgres://u:p@127.0.0.1:5555/db?host=%2Ftmp%2Fx')).toBe('postgres://u:p@127.0.0.1:5555/db');
    expect(tcpUrl('postgres://u:p@127.0.0.1:5555/db?host=%2Ftmp%2Fx&sslmode=disable')).toBe(
      'postgres://u:p@127.0.0.1:5555/db?sslmode=disable',
    );
    expect(tcpUrl('postgres://u:p@127.0.0.1:5555/db?sslmode=disable&host=%2Ftmp%2Fx')).toBe(
      'postgres://u:p@127.0.0.1:5555/db?sslmode=disable',
    );
    const multi = 'postgres://u@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=read-write';
    expect(tcpUrl(multi)).toBe(multi);
  });

  it("connects over the embedded server's Unix socket when its URL names one, and over TCP without it", async () => {
    const where = async (url: string) => {
      const sql = sqlClient(url, { max: 1, onnotice: () => {} });
      try {
        const [row] = await sql`SELECT client_addr FROM pg_stat_activity WHERE pid = pg_backend_pid()`;
        return row!.client_addr === null ? 'socket' : 'tcp';
      } finally {
        await sql.end();
      }
    };
    if (!db.url.includes('host=')) return; // DATABASE_URL of a server without a socket in its URL: TCP only, nothing to tell apart
    expect(await where(db.url)).toBe('socket');
    expect(await where(tcpUrl(db.url))).toBe('tcp');
  });
});

describe('migrations on a session the server ends', () => {
  it('fail with the connection error instead of hanging (postgres.js end() waits for ever on an ended session)', async () => {
    // Another session holds the migrations' lock, so migrate() waits on it; then the server ends
    // migrate()'s session, as pg_terminate_backend or a failover does. A node starting during
    // the Patroni soak's failovers hung here until Node found nothing left to wait on.
    const holder = sqlClient(db.url, { max: 1, onnotice: () => {} });
    const admin = sqlClient(db.url, { max: 1, onnotice: () => {} });
    try {
      await holder`SELECT pg_advisory_lock(${0x766f6c})`;
      const running = migrate(db.url).then(
        () => 'applied',
        (err: unknown) => err,
      );
      await until(
        async () =>
          (await admin`SELECT 1 FROM pg_stat_activity WHERE application_name = 'volstate-migrate' AND wait_event_type = 'Lock'`).length > 0,
      );
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'volstate-migrate'`;
      const outcome = await running;
      expect(isConnectionError(outcome) || sqlState(outcome) === SQLSTATE.ADMIN_SHUTDOWN, String(outcome)).toBe(true);
    } finally {
      await holder.end({ timeout: 5 });
      await admin.end({ timeout: 5 });
    }
  }, 30_000);
});

describe('a PostgreSQL that goes away and comes back', () => {
  it('is a connection error while its socket is gone (ENOENT), so the API answers 503, not 500', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'volstate-nosocket-'));
    const sql = sqlClient(`postgres://postgres@127.0.0.1:5432/postgres?host=${encodeURIComponent(dir)}`, { max: 1, onnotice: () => {} });
    try {
      const err = await sql`SELECT 1`.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as { code?: string }).code).toBe('ENOENT');
      expect(isConnectionError(err)).toBe(true);
    } finally {
      await sql.end({ timeout: 1 });
    }
    // A file that is not there is no connection error: only a connect's is.
    expect(isConnectionError(Object.assign(new Error('no such file'), { code: 'ENOENT', syscall: 'open' }))).toBe(false);
  });

  it('hears notifications again within seconds of a restart, however many connects failed meanwhile', async () => {
    // postgres.js waits before remaking a connection that closed with an error, 3^n/100 s after
    // n such closes in the whole pool, to 20 s; the LISTEN connection shares the count. An outage
    // under load took it to the cap: the nodes' workers fell back to their poll and every
    // `Prefer: wait` request to its lease until their LISTEN came back, up to 20 s after the
    // database did (test/concurrency/nodes.test.ts, 'PostgreSQL restarted under load').
    const dir = mkdtempSync(join(tmpdir(), 'volstate-test-listen-'));
    chmodSync(dir, 0o755);
    const port = await freePort();
    let pg = await startEmbedded({ dir, port, fast: true });
    const url = pg.urlFor('postgres');
    const sql = connect(url, { max: 4 });
    try {
      const heard: string[] = [];
      await sql.listen('volstate_test', (payload) => heard.push(payload));
      await pg.stop();
      // The load meets the outage: every pooled connect fails, again and again.
      for (let round = 0; round < 5; round++) await Promise.allSettled(Array.from({ length: 4 }, () => sql`SELECT 1`));
      pg = await startEmbedded({ dir, port, fast: true });
      const up = Date.now();
      const notifier = sqlClient(url, { max: 1, onnotice: () => {} });
      try {
        await until(
          async () => {
            await notifier`SELECT pg_notify('volstate_test', 'again')`;
            return heard.includes('again');
          },
          60_000,
          'a notification after the restart',
        );
      } finally {
        await notifier.end({ timeout: 1 });
      }
      // At most a second's backoff and a connect: 10–20 s before.
      expect(Date.now() - up).toBeLessThan(5000);
    } finally {
      await sql.end({ timeout: 1 });
      await pg.stop();
    }
  }, 90_000);
});
