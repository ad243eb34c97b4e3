/**
 * The fake driver: keeps volumes and snapshots in memory, takes a
 * configurable time per operation and fails a configurable share of them
 * (VOLSTATE_FAKE_LATENCY_MS, VOLSTATE_FAKE_FAILURES=create:0.1,...). For
 * tests, benchmarks and fault injection: it makes steps be in flight long
 * enough to race, kill and recover.
 */
import { appendFileSync } from 'node:fs';
import { DriverError, type Capacity, type ConnectionInfo, type Connector, type Driver } from './driver.ts';

export interface FakeDriverOptions {
  latencyMs?: number;
  /**
   * operation → probability of a DriverError: create, clone, create_from_snapshot,
   * delete, extend, snapshot, delete_snapshot, revert, initialize_connection
   */
  failures?: Record<string, number>;
  capacityGb?: number;
  random?: () => number;
  /**
   * A file to which every operation appends a start and an end line
   * (`<ms> start|end <operation> <resource> <pid>`), so a test can check
   * across processes that no two operations on one resource overlapped.
   */
  journal?: string;
}

export class FakeDriver implements Driver {
  readonly name = 'fake';
  readonly volumes = new Map<string, number>();
  readonly snapshots = new Map<string, { volumeId: string; sizeGb: number }>();
  /** where each volume's data came from: `volume:<id>`, `snapshot:<id>`, or `revert:<snapshot id>` */
  readonly origins = new Map<string, string>();
  /** open connections: volume id → connector hosts */
  readonly connections = new Map<string, Set<string>>();
  latencyMs: number;
  failures: Record<string, number>;
  private readonly capacityGb: number;
  private readonly random: () => number;
  private readonly journal: string | undefined;

  constructor(opts: FakeDriverOptions = {}) {
    this.latencyMs = opts.latencyMs ?? 0;
    this.failures = opts.failures ?? {};
    this.capacityGb = opts.capacityGb ?? 100_000;
    this.random = opts.random ?? Math.random;
    this.journal = opts.journal;
  }

  private note(what: 'start' | 'end', operation: string, resource: string) {
    if (this.journal) appendFileSync(this.journal, `${Date.now()} ${what} ${operation} ${resource} ${process.pid}\n`);
  }

  private async step(operation: string, resource = '-'): Promise<void> {
    this.note('start', operation, resource);
    try {
      if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
      const rate = this.failures[operation] ?? 0;
      if (rate > 0 && this.random() < rate) throw new DriverError(operation, 'injected failure (fake driver)');
    } finally {
      this.note('end', operation, resource);
    }
  }

  async createVolume(id: string, sizeGb: number): Promise<void> {
    await this.step('create', id);
    const existing = this.volumes.get(id);
    if (existing !== undefined && existing !== sizeGb) throw new DriverError('create', `volume ${id} exists with size ${existing}`);
    this.volumes.set(id, sizeGb);
  }

  async cloneVolume(id: string, sourceId: string, sizeGb: number): Promise<void> {
    await this.step('clone', id);
    const source = this.volumes.get(sourceId);
    if (source === undefined) throw new DriverError('clone', `no source volume ${sourceId}`);
    if (sizeGb < source) throw new DriverError('clone', `clone of ${sourceId} cannot be smaller than ${source} GiB`);
    this.volumes.set(id, sizeGb);
    this.origins.set(id, `volume:${sourceId}`);
  }

  async createVolumeFromSnapshot(id: string, snapshotId: string, sizeGb: number): Promise<void> {
    await this.step('create_from_snapshot', id);
    const snap = this.snapshots.get(snapshotId);
    if (snap === undefined) throw new DriverError('create_from_snapshot', `no snapshot ${snapshotId}`);
    if (sizeGb < snap.sizeGb) throw new DriverError('create_from_snapshot', `volume cannot be smaller than the snapshot's ${snap.sizeGb} GiB`);
    this.volumes.set(id, sizeGb);
    this.origins.set(id, `snapshot:${snapshotId}`);
  }

  async revertToSnapshot(volumeId: string, snapshotId: string): Promise<void> {
    await this.step('revert', volumeId);
    if (!this.volumes.has(volumeId)) throw new DriverError('revert', `no volume ${volumeId}`);
    if (!this.snapshots.has(snapshotId)) throw new DriverError('revert', `no snapshot ${snapshotId}`);
    this.origins.set(volumeId, `revert:${snapshotId}`);
  }

  async initializeConnection(volumeId: string, connector: Connector): Promise<ConnectionInfo> {
    await this.step('initialize_connection', volumeId);
    if (!this.volumes.has(volumeId)) throw new DriverError('initialize_connection', `no volume ${volumeId}`);
    const host = String(connector.host ?? connector.initiator ?? 'unknown');
    this.connections.set(volumeId, (this.connections.get(volumeId) ?? new Set()).add(host));
    return {
      driver_volume_type: 'fake',
      data: { volume_id: volumeId, target_discovered: false, access_mode: 'rw', host },
    };
  }

  async terminateConnection(volumeId: string, connector: Connector | null): Promise<void> {
    const hosts = this.connections.get(volumeId);
    if (!hosts) return;
    if (connector === null) this.connections.delete(volumeId);
    else hosts.delete(String(connector.host ?? connector.initiator ?? 'unknown'));
  }

  async deleteVolume(id: string): Promise<void> {
    await this.step('delete', id);
    this.volumes.delete(id);
  }

  async extendVolume(id: string, newSizeGb: number): Promise<void> {
    await this.step('extend', id);
    const size = this.volumes.get(id);
    if (size === undefined) throw new DriverError('extend', `no volume ${id}`);
    if (newSizeGb < size) throw new DriverError('extend', `cannot shrink ${id} from ${size} to ${newSizeGb}`);
    this.volumes.set(id, newSizeGb);
  }

  async createSnapshot(snapshotId: string, volumeId: string): Promise<void> {
    await this.step('snapshot', snapshotId);
    const size = this.volumes.get(volumeId);
    if (size === undefined) throw new DriverError('snapshot', `no volume ${volumeId}`);
    this.snapshots.set(snapshotId, { volumeId, sizeGb: size });
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    await this.step('delete_snapshot', snapshotId);
    this.snapshots.delete(snapshotId);
  }

  async capacity(): Promise<Capacity> {
    let used = 0;
    for (const size of this.volumes.values()) used += size;
    return { totalGb: this.capacityGb, freeGb: this.capacityGb - used };
  }
}
