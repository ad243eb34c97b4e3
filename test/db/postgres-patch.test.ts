/**
 * postgres.js 3.4.9 can crash the process when a deferred write fires on
 * a connection that closed meanwhile (porsager/postgres#1154, #1208):
 * seen here when PostgreSQL restarted under load. scripts/patch-postgres.mjs
 * (postinstall) guards it. Here: a connection whose backend died is used
 * again, which is that path; the process must survive and the query fail
 * in a way the caller can catch, and the pool carry on.
 */
import { describe, expect, it } from 'vitest';
import { connect } from '../../db/connect.ts';
import { useTestDatabase } from '../helpers/db.ts';

const db = useTestDatabase();

describe('postgres.js on a reserved session whose backend died', () => {
  it('fails the query catchably, survives, and carries on', { timeout: 20_000 }, async () => {
    const sql = connect(db.url, { max: 1 });
    try {
      const [row] = await sql`SELECT pg_backend_pid() AS pid`;
      const pid = row!.pid as number;
      await db.sql`SELECT pg_terminate_backend(${pid})`;
      // The next uses: the first may fail (the connection is found dead:
      // ECONNRESET, 57P01), then the client reconnects. Nothing may throw out
      // of band (that ends this process) or hang (the test's timeout).
      let result: unknown;
      for (let attempt = 0; attempt < 4 && !Array.isArray(result); attempt++) {
        result = await sql`SELECT 1 AS one`.then(
          (r) => [...r],
          (e: Error) => e,
        );
      }
      expect(result).toEqual([{ one: 1 }]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
