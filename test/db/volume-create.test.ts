/**
 * A volume's create as one statement (db/volume-create.ts): what a plain
 * create sends, read off the client's own log of the statements it sends.
 * Alone when there is nothing to lock and no limit to judge; refused by
 * that statement, changing nothing, when the volume is too large or its
 * type unknown; and run again in a transaction, with `admit`, when a limit
 * of the project must be judged.
 */
import { describe, expect, it } from 'vitest';
import { sqlClient } from '../../db/connect.ts';
import { VOLUME_CREATE } from '../../db/volume-create.ts';
import { Enforcer } from '../../src/enforcer.ts';
import { ApiError } from '../../src/errors.ts';
import type { Caller } from '../../src/services/caller.ts';
import { VolumeService, type NewVolumeInput } from '../../src/services/volumes.ts';
import { useTestDatabase } from '../helpers/db.ts';

const db = useTestDatabase();

const caller = (projectId: string): Caller => ({ userId: 'u', projectId, isAdmin: false, requestId: undefined });
const input = (size: number, more: Partial<NewVolumeInput> = {}): NewVolumeInput => ({
  size,
  name: null,
  description: null,
  metadata: {},
  multiattach: false,
  ...more,
});

/** A service on a client that logs every statement it sends, and that log (from after the client's own first reads). */
async function logged() {
  const sent: string[] = [];
  const sql = sqlClient(db.url, { max: 1, prepare: true, onnotice: () => {}, debug: (_c, query) => sent.push(query) });
  await sql`SELECT 1`;
  sent.length = 0;
  return { service: new VolumeService(sql, new Enforcer()), sent, end: () => sql.end({ timeout: 5 }) };
}

async function rowsOf(project: string) {
  const [v] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM volumes WHERE project_id = ${project}`;
  const usage = await db.sql<{ resource: string; in_use: number }[]>`
    SELECT resource, sum(in_use)::int AS in_use FROM quota_usages WHERE project_id = ${project} GROUP BY resource ORDER BY resource`;
  return { volumes: v!.n, usage: Object.fromEntries(usage.map((u) => [u.resource, u.in_use])) };
}

const error = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => (e instanceof ApiError ? e.code : e),
  );

describe('a volume create', () => {
  it('with nothing to lock and no limit, is one statement: the type, the data row, the state row and the usage', async () => {
    const { service, sent, end } = await logged();
    try {
      const made = await service.create(caller('p-plain'), input(2, { volumeType: '__DEFAULT__', multiattach: true }));
      expect(sent).toEqual([VOLUME_CREATE.text]);
      expect(made).toMatchObject({ project_id: 'p-plain', volume_type: '__DEFAULT__', multiattach: true, size: 2, state: 'creating.db' });
      const type = made.volume_type_id!;
      expect(await rowsOf('p-plain')).toEqual({
        volumes: 1,
        usage: { gigabytes: 2, [`gigabytes@${type}`]: 2, volumes: 1, [`volumes@${type}`]: 1 },
      });
    } finally {
      await end();
    }
  });

  it('too large for per_volume_gigabytes, or of an unknown type, is refused by that one statement, changing nothing', async () => {
    await db.sql`INSERT INTO quota_limits (project_id, resource, hard_limit) VALUES ('p-small', 'per_volume_gigabytes', 4)`;
    const { service, sent, end } = await logged();
    try {
      expect(await error(service.create(caller('p-small'), input(5)))).toBe('VolumeSizeExceedsLimit');
      expect(sent).toEqual([VOLUME_CREATE.text]);
      expect(await error(service.create(caller('p-small'), input(4, { volumeType: 'no-such-type' })))).toBe('VolumeTypeNotFound');
      expect(sent).toEqual([VOLUME_CREATE.text, VOLUME_CREATE.text]);
      expect(await rowsOf('p-small')).toEqual({ volumes: 0, usage: {} });
      // Within it: made, alone (per_volume_gigabytes is judged by the statement, not counted).
      await service.create(caller('p-small'), input(4));
      expect(sent).toHaveLength(3);
      expect(await rowsOf('p-small')).toMatchObject({ volumes: 1, usage: { gigabytes: 4, volumes: 1 } });
    } finally {
      await end();
    }
  });

  it('in a project with a limit to judge, is refused alone and made in a transaction, its usage admitted there', async () => {
    await db.sql`INSERT INTO quota_limits (project_id, resource, hard_limit) VALUES ('p-limited', 'gigabytes', 3)`;
    const { service, sent, end } = await logged();
    try {
      await service.create(caller('p-limited'), input(2));
      expect(sent[0]).toBe(VOLUME_CREATE.text);
      expect(sent[1]).toMatch(/^begin/);
      expect(sent.filter((s) => s === VOLUME_CREATE.text)).toHaveLength(2);
      expect(sent.at(-1)).toMatch(/^commit/);
      expect(await rowsOf('p-limited')).toMatchObject({ volumes: 1, usage: { gigabytes: 2, volumes: 1 } });
      // Over the limit: refused by `admit`, the transaction's rows rolled back.
      expect(await error(service.create(caller('p-limited'), input(2)))).toBe('VolumeSizeExceedsAvailableQuota');
      expect(await rowsOf('p-limited')).toMatchObject({ volumes: 1, usage: { gigabytes: 2, volumes: 1 } });
    } finally {
      await end();
    }
  });
});
