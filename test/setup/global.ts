/**
 * Once per test run: a PostgreSQL for the whole run (the embedded one, or
 * the server of DATABASE_URL when set), and a migrated template database.
 * Each test file then gets its own database cloned from the template
 * (test/helpers/db.ts), as graphile-worker does: no shared mutable state
 * between files, and a fresh schema costs a file copy, not a migration.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureDatabase, sqlClient } from '../../db/connect.ts';
import { cleanStaleDirs, startEmbedded, type EmbeddedServer } from '../../db/servers/embedded.ts';
import { migrate } from '../../db/migrate.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of a database on the test server that may run CREATE DATABASE */
    adminUrl: string;
    /** migrated template to clone */
    template: string;
    /** prefix of every database this run creates */
    runId: string;
  }
}

const PREFIX = 'volstate-test-';

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

export default async function setup(project: TestProject) {
  let embedded: EmbeddedServer | undefined;
  let dir: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    await cleanStaleDirs(PREFIX);
    dir = mkdtempSync(join(tmpdir(), PREFIX));
    chmodSync(dir, 0o755); // mkdtemp makes it 0700; as root, postgres runs as user postgres
    embedded = await startEmbedded({ dir, fast: true });
    adminUrl = embedded.adminUrl;
  }
  const runId = `vt${process.pid}`;
  const template = `${runId}_template`;
  const admin = sqlClient(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS "${template}"`);
  await admin.end();
  await ensureDatabase(adminUrl, template);
  await migrate(withDatabase(adminUrl, template));

  project.provide('adminUrl', adminUrl);
  project.provide('template', template);
  project.provide('runId', runId);

  return async () => {
    if (embedded) {
      await embedded.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
      return;
    }
    // On a shared server, drop what this run created.
    const cleanup = sqlClient(adminUrl, { max: 1, onnotice: () => {} });
    const dbs = await cleanup<{ datname: string }[]>`SELECT datname FROM pg_database WHERE datname LIKE ${`${runId}_%`}`;
    for (const { datname } of dbs) await cleanup.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    await cleanup.end();
  };
}
