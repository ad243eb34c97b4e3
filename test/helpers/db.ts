/**
 * One database per test file, cloned from the migrated template that the
 * global setup made. Real PostgreSQL, never a mock.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, inject } from 'vitest';
import { connect, ensureDatabase, type Sql } from '../../db/connect.ts';

export interface TestDatabase {
  /** URL of this file's database */
  readonly url: string;
  /** a pool on it */
  readonly sql: Sql;
}

export function urlFor(name: string): string {
  const u = new URL(inject('adminUrl'));
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

/** Create a fresh database cloned from the template; returns its URL. */
export async function createTestDatabase(): Promise<string> {
  const name = `${inject('runId')}_${randomBytes(5).toString('hex')}`;
  await ensureDatabase(inject('adminUrl'), name, inject('template'));
  return urlFor(name);
}

/** Registers hooks that give the calling test file its own database. */
export function useTestDatabase(opts: { max?: number } = {}): TestDatabase {
  let url: string | undefined;
  let sql: Sql | undefined;
  beforeAll(async () => {
    url = await createTestDatabase();
    sql = connect(url, { max: opts.max ?? 10, name: 'volstate-test' });
  });
  afterAll(async () => {
    await sql?.end({ timeout: 5 });
  });
  return {
    get url() {
      if (!url) throw new Error('the test database exists only inside tests and hooks');
      return url;
    },
    get sql() {
      if (!sql) throw new Error('the test database exists only inside tests and hooks');
      return sql;
    },
  };
}
