/**
 * kill -9 during a backup and during a restore, with real `volstate serve`
 * processes sharing one database, one file-driver storage and one backup
 * store: another node takes the step back (WORKER_LOST, then the step
 * again: the backup resumes from its journal) and the bytes restored are
 * the bytes written. No operator action.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/db.ts';
import { call, startNode, type VolstateNode } from '../helpers/nodes.ts';
import { eventually } from '../helpers/wait.ts';

const db = useTestDatabase();
const dir = mkdtempSync(join(tmpdir(), 'volstate-backup-recovery-'));
const storage = join(dir, 'storage');
const running: VolstateNode[] = [];
const MiB = 1024 * 1024;
const TIMEOUT_MS = 1000;

afterAll(async () => {
  for (const n of running) n.proc.kill('SIGKILL');
  await Promise.all(running.map((n) => n.exited));
});

async function node(latencyMs = 0): Promise<VolstateNode> {
  const n = await startNode({
    databaseUrl: db.url,
    dataDir: join(dir, `node${running.length}`),
    storage,
    latencyMs,
    timeoutMs: TIMEOUT_MS,
    env: { VOLSTATE_BACKUP_DIR: join(dir, 'backups'), VOLSTATE_BACKUP_CHUNK_MB: '1' },
  });
  running.push(n);
  return n;
}

async function kill(n: VolstateNode): Promise<void> {
  n.proc.kill('SIGKILL');
  await n.exited;
}

const volumePath = (id: string) => join(storage, 'volumes', `${id}.img`);

async function writeAt(id: string, offset: number, data: Buffer) {
  const f = await open(volumePath(id), 'r+');
  await f.write(data, 0, data.length, offset);
  await f.close();
}

async function readAt(id: string, offset: number, length: number): Promise<Buffer> {
  const f = await open(volumePath(id), 'r');
  const buf = Buffer.alloc(length);
  await f.read(buf, 0, length, offset);
  await f.close();
  return buf;
}

async function status(n: VolstateNode, collection: string, id: string, want: string, ms = 60_000): Promise<void> {
  await eventually(
    async () => {
      const r = await call(n, 'GET', `/v3/${collection}/${id}`);
      return r.body?.[collection.slice(0, -1)]?.status === want ? true : undefined;
    },
    ms,
    `${collection} ${id} to be ${want}`,
  );
}

/** The events a resource went through, in order. */
async function events(id: string): Promise<string[]> {
  const rows = await db.sql<{ event: string }[]>`SELECT event FROM state_transitions WHERE resource_id = ${id} ORDER BY version`;
  return rows.map((r) => r.event);
}

describe('kill -9 of the node running a backup step', () => {
  it('is recovered by another node: a backup killed mid-chunks resumes and completes, a restore killed mid-step completes, the bytes are the bytes written', async () => {
    const first = await node();
    const second = await node();
    const created = await call(first, 'POST', '/v3/volumes', { volume: { size: 1 } });
    const volumeId = created.body.volume.id as string;
    await status(first, 'volumes', volumeId, 'available');
    // Data spread over the volume: random (incompressible), so the backup has chunks to write.
    const pieces = [0, 200, 500, 900].map((mib) => ({ offset: mib * MiB, data: randomBytes(8 * MiB) }));
    for (const p of pieces) await writeAt(volumeId, p.offset, p.data);

    // The backup, on whichever node claims it: kill that node once it has read part of the source.
    const backup = await call(first, 'POST', '/v3/backups', { backup: { volume_id: volumeId, name: 'killed' } });
    expect(backup.status, JSON.stringify(backup.body)).toBe(202);
    const backupId = backup.body.backup.id as string;
    const owner = await eventually(
      async () => {
        const [row] = await db.sql<{ owner: string | null; state: string }[]>`
          SELECT s.owner, s.state FROM resource_states s JOIN backups b ON b.id = s.resource_id
          WHERE s.resource_id = ${backupId} AND b.progress > 0 AND b.progress < 100`;
        return row?.owner ?? undefined;
      },
      60_000,
      'the backup to be part-way through its source',
    );
    const victim = running.find((n) => n.workerId === owner)!;
    expect(victim, `the owner ${owner} is one of the nodes`).toBeDefined();
    await kill(victim);
    const survivor = victim === first ? second : first;
    await status(survivor, 'backups', backupId, 'available');
    expect(await events(backupId)).toEqual(['CREATE', 'WORKER_LOST', 'BACKED_UP']);

    // A restore into a new volume, on nodes whose driver calls are slowed (2 s each), so the step
    // is surely in flight when its node dies.
    const slow = [await node(2000), await node(2000)];
    await kill(survivor);
    const restore = await call(slow[0]!, 'POST', `/v3/backups/${backupId}/restore`, { restore: { name: 'restored' } });
    expect(restore.status, JSON.stringify(restore.body)).toBe(202);
    const target = restore.body.restore.volume_id as string;
    const restorer = await eventually(
      async () => {
        const [row] = await db.sql<{ owner: string | null }[]>`
          SELECT owner FROM resource_states WHERE resource_id = ${target} AND state LIKE 'creating.%' AND owner IS NOT NULL`;
        return row?.owner ?? undefined;
      },
      60_000,
      'the restore to be claimed',
    );
    const dying = running.find((n) => n.workerId === restorer)!;
    await kill(dying);
    const last = dying === slow[0] ? slow[1]! : slow[0]!;
    await status(last, 'volumes', target, 'available', 90_000);
    expect(await events(target)).toContain('WORKER_LOST');
    for (const p of pieces) expect((await readAt(target, p.offset, p.data.length)).equals(p.data), `bytes at ${p.offset}`).toBe(true);
    await status(last, 'backups', backupId, 'available');
  });
});
