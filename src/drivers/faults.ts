/**
 * Fault injection around any driver: a configurable time per operation, a
 * configurable share of failures, and a journal of every operation's start
 * and end (VOLSTATE_DRIVER_LATENCY_MS, VOLSTATE_DRIVER_FAILURES=create:0.1,…,
 * VOLSTATE_DRIVER_JOURNAL). For tests, benchmarks and the concurrency
 * harness: it keeps steps in flight long enough to race, kill and recover,
 * on the fake driver in one process or on the file driver shared by many.
 */
import { appendFileSync } from 'node:fs';
import {
  DriverError,
  type BackupSourceRef,
  type BlockSource,
  type BlockTarget,
  type Capacity,
  type ConnectionInfo,
  type Connector,
  type Driver,
} from './driver.ts';

export interface FaultOptions {
  latencyMs?: number;
  /**
   * operation → probability of a DriverError: create, clone, create_from_snapshot,
   * delete, extend, snapshot, delete_snapshot, revert, initialize_connection
   */
  failures?: Record<string, number>;
  random?: () => number;
  /**
   * A file to which every operation appends a start and an end line
   * (`<ms> start|end <operation> <resource> <pid>`), so a test can check
   * across processes that no two operations on one resource overlapped.
   */
  journal?: string;
}

export class FaultyDriver<D extends Driver = Driver> implements Driver {
  latencyMs: number;
  failures: Record<string, number>;
  private readonly random: () => number;
  private readonly journal: string | undefined;

  constructor(
    readonly inner: D,
    opts: FaultOptions = {},
  ) {
    this.latencyMs = opts.latencyMs ?? 0;
    this.failures = opts.failures ?? {};
    this.random = opts.random ?? Math.random;
    this.journal = opts.journal;
  }

  get name(): string {
    return this.inner.name;
  }

  private note(what: 'start' | 'end', operation: string, resource: string) {
    if (this.journal) appendFileSync(this.journal, `${Date.now()} ${what} ${operation} ${resource} ${process.pid}\n`);
  }

  private readonly holds = new Map<string, { arrived: () => void; released: Promise<void> }>();

  /**
   * For tests: the next call of `operation` (as `failures` names it: extend,
   * snapshot, …) waits, once it began, until `release()`; `reached` resolves
   * when it began. A test holds a step in flight on an event, not a latency.
   */
  hold(operation: string): { reached: Promise<void>; release: () => void } {
    let arrived!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((r) => (arrived = r));
    const released = new Promise<void>((r) => (release = r));
    this.holds.set(operation, { arrived, released });
    return { reached, release };
  }

  /** The operation, slowed down, perhaps failed, journaled from start to end. */
  private async run<T>(operation: string, resource: string, body: () => Promise<T>): Promise<T> {
    this.note('start', operation, resource);
    try {
      const held = this.holds.get(operation);
      if (held) {
        this.holds.delete(operation);
        held.arrived();
        await held.released;
      }
      if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
      const rate = this.failures[operation] ?? 0;
      if (rate > 0 && this.random() < rate) throw new DriverError(operation, 'injected failure');
      return await body();
    } finally {
      this.note('end', operation, resource);
    }
  }

  createVolume(id: string, sizeGb: number): Promise<void> {
    return this.run('create', id, () => this.inner.createVolume(id, sizeGb));
  }
  cloneVolume(id: string, sourceId: string, sizeGb: number): Promise<void> {
    return this.run('clone', id, () => this.inner.cloneVolume(id, sourceId, sizeGb));
  }
  createVolumeFromSnapshot(id: string, snapshotId: string, sizeGb: number): Promise<void> {
    return this.run('create_from_snapshot', id, () => this.inner.createVolumeFromSnapshot(id, snapshotId, sizeGb));
  }
  deleteVolume(id: string): Promise<void> {
    return this.run('delete', id, () => this.inner.deleteVolume(id));
  }
  extendVolume(id: string, newSizeGb: number): Promise<void> {
    return this.run('extend', id, () => this.inner.extendVolume(id, newSizeGb));
  }
  createSnapshot(snapshotId: string, volumeId: string): Promise<void> {
    return this.run('snapshot', snapshotId, () => this.inner.createSnapshot(snapshotId, volumeId));
  }
  deleteSnapshot(snapshotId: string): Promise<void> {
    return this.run('delete_snapshot', snapshotId, () => this.inner.deleteSnapshot(snapshotId));
  }
  revertToSnapshot(volumeId: string, snapshotId: string): Promise<void> {
    return this.run('revert', volumeId, () => this.inner.revertToSnapshot(volumeId, snapshotId));
  }
  initializeConnection(volumeId: string, connector: Connector): Promise<ConnectionInfo> {
    return this.run('initialize_connection', volumeId, () => this.inner.initializeConnection(volumeId, connector));
  }
  /** not slowed down nor failed: terminating is what cleanup does, and it must be able to */
  terminateConnection(volumeId: string, connector: Connector | null): Promise<void> {
    return this.inner.terminateConnection(volumeId, connector);
  }
  capacity(): Promise<Capacity> {
    return this.inner.capacity();
  }
  openBackupSource(source: BackupSourceRef, key: string): Promise<BlockSource> {
    return this.run('backup', key, () => this.inner.openBackupSource(source, key));
  }

  releaseBackupSource(key: string): Promise<void> {
    return this.inner.releaseBackupSource(key);
  }

  openRestoreTarget(volumeId: string): Promise<BlockTarget> {
    return this.run('restore', volumeId, () => this.inner.openRestoreTarget(volumeId));
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
