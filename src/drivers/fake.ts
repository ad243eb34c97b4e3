/**
 * The fake driver: keeps volumes and snapshots in memory, takes a
 * configurable time per operation and fails a configurable share of them
 * (VOLSTATE_FAKE_LATENCY_MS, VOLSTATE_FAKE_FAILURES=create:0.1,...). For
 * tests, benchmarks and fault injection: it makes steps be in flight long
 * enough to race, kill and recover.
 */
import { DriverError, type Capacity, type Driver } from './driver.ts';

export interface FakeDriverOptions {
  latencyMs?: number;
  /** operation → probability of a DriverError: create, delete, extend, snapshot, delete_snapshot */
  failures?: Record<string, number>;
  capacityGb?: number;
  random?: () => number;
}

export class FakeDriver implements Driver {
  readonly name = 'fake';
  readonly volumes = new Map<string, number>();
  readonly snapshots = new Map<string, { volumeId: string; sizeGb: number }>();
  latencyMs: number;
  failures: Record<string, number>;
  private readonly capacityGb: number;
  private readonly random: () => number;

  constructor(opts: FakeDriverOptions = {}) {
    this.latencyMs = opts.latencyMs ?? 0;
    this.failures = opts.failures ?? {};
    this.capacityGb = opts.capacityGb ?? 100_000;
    this.random = opts.random ?? Math.random;
  }

  private async step(operation: string): Promise<void> {
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    const rate = this.failures[operation] ?? 0;
    if (rate > 0 && this.random() < rate) throw new DriverError(operation, 'injected failure (fake driver)');
  }

  async createVolume(id: string, sizeGb: number): Promise<void> {
    await this.step('create');
    const existing = this.volumes.get(id);
    if (existing !== undefined && existing !== sizeGb) throw new DriverError('create', `volume ${id} exists with size ${existing}`);
    this.volumes.set(id, sizeGb);
  }

  async deleteVolume(id: string): Promise<void> {
    await this.step('delete');
    this.volumes.delete(id);
  }

  async extendVolume(id: string, newSizeGb: number): Promise<void> {
    await this.step('extend');
    const size = this.volumes.get(id);
    if (size === undefined) throw new DriverError('extend', `no volume ${id}`);
    if (newSizeGb < size) throw new DriverError('extend', `cannot shrink ${id} from ${size} to ${newSizeGb}`);
    this.volumes.set(id, newSizeGb);
  }

  async createSnapshot(snapshotId: string, volumeId: string): Promise<void> {
    await this.step('snapshot');
    const size = this.volumes.get(volumeId);
    if (size === undefined) throw new DriverError('snapshot', `no volume ${volumeId}`);
    this.snapshots.set(snapshotId, { volumeId, sizeGb: size });
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    await this.step('delete_snapshot');
    this.snapshots.delete(snapshotId);
  }

  async capacity(): Promise<Capacity> {
    let used = 0;
    for (const size of this.volumes.values()) used += size;
    return { totalGb: this.capacityGb, freeGb: this.capacityGb - used };
  }
}
