/**
 * A volume's create and extend as one statement each (db/volume-create.ts,
 * the EXTEND's variant run alone): what they send, read off the client's
 * own log of the statements it sends. Alone when there is nothing to lock
 * and no limit to judge; refused by that statement, changing nothing, when
 * the volume is too large or its type unknown; and run again in a
 * transaction when a limit of the project must be judged.
 */
import { describe, expect, it } from 'vitest';
import { sqlClient } from '../../db/connect.ts';
import { VOLUME_CREATE } from '../../db/volume-create.ts';
import { Enforcer } from '../../src/enforcer.ts';
import type { EventMap } from '../../machines/index.ts';
import { ApiError } from '../../src/errors.ts';
import type { Caller } from '../../src/services/caller.ts';
import { VolumeService, type NewVolumeInput } from '../../src/services/volumes.ts';
import { useTestDatabase } from '../helpers/db.ts';

const db = useTestDatabase();

const caller = (projectId: string, isAdmin = false): Caller => ({ userId: 'u', projectId, isAdmin, requestId: undefined });
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

/** Run `fn` with a logged client (`logged`), ending it whatever happens. */
async function withLogged(fn: (l: Awaited<ReturnType<typeof logged>>) => Promise<void>) {
  const l = await logged();
  try {
    await fn(l);
  } finally {
    await l.end();
  }
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
    await withLogged(async ({ service, sent }) => {
      const made = await service.create(caller('p-plain'), input(2, { volumeType: '__DEFAULT__', multiattach: true }));
      expect(sent).toEqual([VOLUME_CREATE.text]);
      expect(made).toMatchObject({ project_id: 'p-plain', volume_type: '__DEFAULT__', multiattach: true, size: 2, state: 'creating.db' });
      const type = made.volume_type_id!;
      expect(await rowsOf('p-plain')).toEqual({
        volumes: 1,
        usage: { gigabytes: 2, [`gigabytes@${type}`]: 2, volumes: 1, [`volumes@${type}`]: 1 },
      });
    });
  });

  it('too large for per_volume_gigabytes, or of an unknown type, is refused by that one statement, changing nothing', async () => {
    await db.sql`INSERT INTO quota_limits (project_id, resource, hard_limit) VALUES ('p-small', 'per_volume_gigabytes', 4)`;
    await withLogged(async ({ service, sent }) => {
      expect(await error(service.create(caller('p-small'), input(5)))).toBe('VolumeSizeExceedsLimit');
      expect(sent).toEqual([VOLUME_CREATE.text]);
      expect(await error(service.create(caller('p-small'), input(4, { volumeType: 'no-such-type' })))).toBe('VolumeTypeNotFound');
      expect(sent).toEqual([VOLUME_CREATE.text, VOLUME_CREATE.text]);
      expect(await rowsOf('p-small')).toEqual({ volumes: 0, usage: {} });
      // Within it: made, alone (per_volume_gigabytes is judged by the statement, not counted).
      await service.create(caller('p-small'), input(4));
      expect(sent).toHaveLength(3);
      expect(await rowsOf('p-small')).toMatchObject({ volumes: 1, usage: { gigabytes: 4, volumes: 1 } });
    });
  });

  it('in a project with a limit to judge, is refused alone and made in a transaction, its usage admitted there', async () => {
    await db.sql`INSERT INTO quota_limits (project_id, resource, hard_limit) VALUES ('p-limited', 'gigabytes', 3)`;
    await withLogged(async ({ service, sent }) => {
      await service.create(caller('p-limited'), input(2));
      expect(sent[0]).toBe(VOLUME_CREATE.text);
      expect(sent[1]).toMatch(/^begin/);
      expect(sent.filter((s) => s === VOLUME_CREATE.text)).toHaveLength(2);
      expect(sent.at(-1)).toMatch(/^commit/);
      expect(await rowsOf('p-limited')).toMatchObject({ volumes: 1, usage: { gigabytes: 2, volumes: 1 } });
      // Over the limit: refused by `admit`, the transaction's rows rolled back.
      expect(await error(service.create(caller('p-limited'), input(2)))).toBe('VolumeSizeExceedsAvailableQuota');
      expect(await rowsOf('p-limited')).toMatchObject({ volumes: 1, usage: { gigabytes: 2, volumes: 1 } });
    });
  });
});

describe('a volume extend', () => {
  const enforcer = new Enforcer();
  /** A volume of `size` GiB in `project`, available (its create's steps sent by hand: no worker here). */
  async function available(project: string, size: number) {
    const { service, end } = await logged();
    const made = await service.create(caller(project), input(size)).finally(end);
    const ref = { type: 'volume' as const, id: made.id };
    const events: EventMap['volume'][] = [{ type: 'SCHEDULE' }, { type: 'SCHEDULED', backend: 'fake' }, { type: 'BACKEND_CREATED' }];
    for (const event of events) expect((await enforcer.apply(db.sql, ref, event, { actor: 'test' })).ok).toBe(true);
    return made.id;
  }
  const sizeOf = async (id: string) =>
    (await db.sql<{ state: string; size: number }[]>`SELECT state, size FROM resource_states WHERE resource_id = ${id}`)[0];

  it("is one statement for an admin, the scoped read and that statement for the volume's project", async () => {
    const id = await available('p-extend', 1);
    await withLogged(async ({ service, sent }) => {
      await service.extend(caller('p-extend', true), id, { newSize: 2, inUse: false });
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatch(/^WITH moved AS \(\s*UPDATE resource_states SET\s+state = CASE WHEN \(state = 'available'/);
      expect(await sizeOf(id)).toEqual({ state: 'extending.backend', size: 1 });
      const other = await available('p-extend', 1);
      sent.length = 0;
      await service.extend(caller('p-extend'), other, { newSize: 3, inUse: false });
      expect(sent).toHaveLength(2);
      expect(await rowsOf('p-extend')).toMatchObject({ usage: { gigabytes: 5, volumes: 2 } });
    });
  });

  it('past per_volume_gigabytes, is refused alone and then by its transaction with the 413, changing nothing', async () => {
    await db.sql`INSERT INTO quota_limits (project_id, resource, hard_limit) VALUES ('p-largest', 'per_volume_gigabytes', 4)`;
    const id = await available('p-largest', 2);
    await withLogged(async ({ service, sent }) => {
      expect(await error(service.extend(caller('p-largest', true), id, { newSize: 5, inUse: false }))).toBe('VolumeSizeExceedsLimit');
      expect(sent.some((s) => /^begin/.test(s))).toBe(true);
      expect(await sizeOf(id)).toEqual({ state: 'available', size: 2 });
      expect(await rowsOf('p-largest')).toMatchObject({ usage: { gigabytes: 2, volumes: 1 } });
      // Up to it: alone, one statement.
      sent.length = 0;
      await service.extend(caller('p-largest', true), id, { newSize: 4, inUse: false });
      expect(sent).toHaveLength(1);
      expect(await sizeOf(id)).toEqual({ state: 'extending.backend', size: 2 });
      expect(await rowsOf('p-largest')).toMatchObject({ usage: { gigabytes: 4, volumes: 1 } });
    });
  });
});
