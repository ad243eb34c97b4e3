/**
 * The backup lane: a worker runs at most `backupConcurrency` steps that
 * stream a volume's data (backups, restores, volumes from backups) at
 * once, so a queue of backups never takes every slot from volume
 * operations.
 *
 * The worker has 2 slots and a lane of 1. Three backups are queued; the
 * driver holds each backup's read open until the test lets it go. While
 * one is held: it is the only backup step in flight, the two others wait
 * unclaimed, and volume creates and an extend still run to the end in the
 * other slot (without the lane, two held backups would take both slots and
 * they would wait for the backups). Then each backup is let go in turn, and
 * never two run at once.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupLanePredicate, inBackupLane, type ClaimedRow } from '../../db/queue.ts';
import { PosixBackupStore } from '../../src/backup/posix.ts';
import { Backends } from '../../src/drivers/backends.ts';
import type { BackupSourceRef, BlockSource } from '../../src/drivers/driver.ts';
import { FakeDriver } from '../../src/drivers/fake.ts';
import { availableVolume, useApp, waitStatus } from '../helpers/app.ts';
import { until } from '../helpers/wait.ts';

/** A fake whose backup reads wait for the test: each one entered is a gate the test opens. */
class GatedDriver extends FakeDriver {
  running = 0;
  maxRunning = 0;
  readonly gates: (() => void)[] = [];
  private entered: (() => void)[] = [];

  /** Resolves once `n` backup reads have been entered in all. */
  async enteredCount(n: number): Promise<void> {
    while (this.gates.length + this.released < n) await new Promise<void>((r) => this.entered.push(r));
  }

  private released = 0;

  release(): void {
    const open = this.gates.shift();
    if (!open) throw new Error('no backup is waiting');
    this.released++;
    open();
  }

  override async openBackupSource(source: BackupSourceRef): Promise<BlockSource> {
    const inner = await super.openBackupSource(source);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    await new Promise<void>((r) => {
      this.gates.push(r);
      const waiters = this.entered;
      this.entered = [];
      waiters.forEach((w) => w());
    });
    return {
      ...inner,
      close: async () => {
        this.running--;
        await inner.close();
      },
    };
  }
}

const driver = new GatedDriver();
const t = useApp({
  backends: Backends.single(driver),
  backupStore: new PosixBackupStore({ root: mkdtempSync(join(tmpdir(), 'volstate-lane-')) }),
  concurrency: 2,
  backupConcurrency: 1,
});

describe('the backup lane', () => {
  it('runs one backup at a time while volume operations go on in the other slot', async () => {
    const sources = [await availableVolume(t), await availableVolume(t), await availableVolume(t)];
    const backups: string[] = [];
    for (const volume_id of sources) {
      const res = await t.request('POST', '/v3/backups', { backup: { volume_id } });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      backups.push(res.body.backup.id as string);
    }
    await driver.enteredCount(1);
    expect(t.worker!.backupStepsInFlight).toBe(1);
    // The two others are pending and unowned: the lane is full. (A claim that took them with the
    // first hands them back in the same round, which may end just after the first step began.)
    await until(
      async () => {
        const [row] = await t.db.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM resource_states
        WHERE resource_type = 'backup' AND state = 'creating.backend' AND owner IS NULL AND resource_id = ANY(${backups})`;
        return row!.n === 2;
      },
      10_000,
      'the two other backups to wait unowned',
    );

    // Volume operations are not starved meanwhile.
    const created = await Promise.all([availableVolume(t), availableVolume(t), availableVolume(t)]);
    const extend = await t.request('POST', `/v3/volumes/${created[0]}/action`, { 'os-extend': { new_size: 2 } });
    expect(extend.status).toBe(202);
    await waitStatus(t, 'volumes', created[0], 'available');
    expect(driver.running).toBe(1);

    for (let i = 1; i <= 3; i++) {
      await driver.enteredCount(i);
      driver.release();
    }
    for (const id of backups) await waitStatus(t, 'backups', id, 'available', 30_000);
    expect(driver.maxRunning).toBe(1);
  });

  it('a disabled cinder-backup service takes no backup work; volume work goes on; enabled, the backup runs', async () => {
    const services = (await t.request('GET', '/v3/os-services')).body.services as { host: string; binary: string; status: string }[];
    expect(services.map((s) => s.binary).sort()).toEqual(['cinder-backup', 'cinder-scheduler', 'cinder-volume']);
    const host = services.find((s) => s.binary === 'cinder-backup')!.host;
    expect((await t.request('PUT', '/v3/os-services/disable', { host, binary: 'cinder-backup' })).status).toBe(200);
    await until(() => t.worker!.backupsDisabled, 10_000, 'the worker to see its backup service disabled');
    const volume_id = await availableVolume(t);
    const res = await t.request('POST', '/v3/backups', { backup: { volume_id } });
    expect(res.status).toBe(202);
    // A volume create claimed and finished after the backup was queued: the claim passed the backup over.
    await availableVolume(t);
    const [row] = await t.db.sql<{ state: string; owner: string | null }[]>`
      SELECT state, owner FROM resource_states WHERE resource_type = 'backup' AND resource_id = ${res.body.backup.id}`;
    expect(row).toEqual({ state: 'creating.backend', owner: null });
    expect((await t.request('PUT', '/v3/os-services/enable', { host, binary: 'cinder-backup' })).status).toBe(200);
    await driver.enteredCount(4);
    driver.release();
    await waitStatus(t, 'backups', res.body.backup.id, 'available', 30_000);
  });

  it('a volume being created from a backup is the lane’s; one from nothing or a snapshot is not', () => {
    const row = (state: string, operation: Record<string, unknown> | null, type = 'volume') =>
      ({ resource_type: type, state, operation }) as ClaimedRow;
    expect(inBackupLane(row('creating.backend', { backup_id: 'b' }))).toBe(true);
    expect(inBackupLane(row('creating.backend', null))).toBe(false);
    expect(inBackupLane(row('restoring-backup.backend', { backup_id: 'b' }))).toBe(true);
    expect(inBackupLane(row('extending.backend', { new_size: 2 }))).toBe(false);
    expect(inBackupLane(row('creating.backend', null, 'backup'))).toBe(true);
    expect(inBackupLane(row('creating.import', null, 'backup'))).toBe(true);
    expect(inBackupLane(row('deleting.backend', null, 'backup'))).toBe(false);
    expect(backupLanePredicate()).toContain("(operation ->> 'backup_id') IS NOT NULL");
  });
});
