/**
 * Races on backups, each run many times through the API, the two requests
 * sent together (separate connections, separate transactions):
 *
 * - an incremental backup against the delete of the parent it would take:
 *   exactly one wins. Either the incremental holds the parent (its
 *   `dependent` lease, taken in its create's transaction) and the delete is
 *   refused, or the delete went first and the incremental finds no parent.
 *   Never an incremental whose parent is deleted (Cinder checks the parent
 *   in the API and deletes it in another process: both can pass).
 * - a restore onto a volume against that volume's delete: a delete is never
 *   accepted while the restore runs. One is refused, or (a restore of a
 *   small backup can end before the delete's transaction starts) both are
 *   accepted, and then the history shows the restore ended before the delete.
 *
 * Then the history checker, at rest: 0 violations.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkHistory, formatReport } from '../../src/check/history.ts';
import { PosixBackupStore } from '../../src/backup/posix.ts';
import { availableVolume, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp({ backupStore: new PosixBackupStore({ root: mkdtempSync(join(tmpdir(), 'volstate-backup-races-')) }) });
const ROUNDS = 20;

async function availableBackup(volumeId: string): Promise<string> {
  const res = await t.request('POST', '/v3/backups', { backup: { volume_id: volumeId } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  await waitStatus(t, 'backups', res.body.backup.id, 'available');
  return res.body.backup.id as string;
}

describe('backup races', () => {
  it(`an incremental against its parent's delete: exactly one wins, ${ROUNDS} rounds`, async () => {
    const wins = { incremental: 0, delete: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const volume = await availableVolume(t);
      const parent = await availableBackup(volume);
      const [incr, del] = await Promise.all([
        t.request('POST', '/v3/backups', { backup: { volume_id: volume, incremental: true } }),
        t.request('DELETE', `/v3/backups/${parent}`),
      ]);
      if (incr.status === 202) {
        wins.incremental++;
        expect(del.status, JSON.stringify(del.body)).toBe(400);
        expect(del.body.badRequest.message).toMatch(/incremental backups exist for this backup/);
        const child = await waitStatus(t, 'backups', incr.body.backup.id, 'available');
        expect(child.is_incremental).toBe(true);
        const shown = await t.request('GET', `/v3/backups/${parent}`);
        expect(shown.body.backup.has_dependent_backups).toBe(true);
      } else {
        wins.delete++;
        expect(del.status, JSON.stringify(del.body)).toBe(202);
        expect(incr.status, JSON.stringify(incr.body)).toBe(400);
        expect(incr.body.badRequest.message).toMatch(/No backups available to do an incremental backup/);
        await waitStatus(t, 'backups', parent, 'gone');
      }
    }
    // Both outcomes are legal; the invariant is that never both happen (asserted each round).
    expect(wins.incremental + wins.delete).toBe(ROUNDS);
  }, 120_000);

  it(`a restore onto a volume against the volume's delete: never a delete while the restore runs, ${ROUNDS} rounds`, async () => {
    const source = await availableVolume(t);
    const backup = await availableBackup(source);
    for (let round = 0; round < ROUNDS; round++) {
      const target = await availableVolume(t);
      const [restore, del] = await Promise.all([
        t.request('POST', `/v3/backups/${backup}/restore`, { restore: { volume_id: target } }),
        t.request('DELETE', `/v3/volumes/${target}`),
      ]);
      const accepted = [restore.status, del.status].filter((s) => s === 202).length;
      expect(accepted, `${JSON.stringify(restore.body)} ${JSON.stringify(del.body)}`).toBeGreaterThanOrEqual(1);
      if (accepted === 2) {
        // Both: the restore ended (RESTORED, back to available) before the delete began.
        await waitStatus(t, 'volumes', target, 'gone');
        const events = (
          await t.db.sql<{ event: string }[]>`
            SELECT event FROM state_transitions WHERE resource_type = 'volume' AND resource_id = ${target} ORDER BY version`
        ).map((r) => r.event);
        expect(events.indexOf('RESTORED'), events.join(' ')).toBeGreaterThan(events.indexOf('RESTORE_BACKUP'));
        expect(events.indexOf('DELETE'), events.join(' ')).toBeGreaterThan(events.indexOf('RESTORED'));
        continue;
      }
      if (restore.status === 202) {
        await waitStatus(t, 'volumes', target, 'available');
        expect((await t.request('DELETE', `/v3/volumes/${target}`)).status).toBe(202);
      }
      await waitStatus(t, 'volumes', target, 'gone');
    }
    await waitStatus(t, 'backups', backup, 'available');
    await t.worker!.idle();
    const report = await checkHistory(t.db.sql, { atRest: true });
    expect(formatReport(report)).toMatch(/: 0 violations$/);
  }, 120_000);
});
