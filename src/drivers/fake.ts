/**
 * The fake driver: keeps volumes and snapshots in this process's memory,
 * and answers at once. For tests and benchmarks of one process; slowed
 * down and failed by FaultyDriver (faults.ts). Its backend is not shared,
 * so nodes of one deployment use the file driver on shared storage.
 */
import {
  connectorText,
  DriverError,
  type BackupSourceRef,
  type BlockSource,
  type BlockTarget,
  type Capacity,
  type ConnectionInfo,
  type Connector,
  type Driver,
} from './driver.ts';

const GiB = 1024 ** 3;

export interface FakeDriverOptions {
  capacityGb?: number;
}

/** Volume id → size, with the sizes' sum kept current: capacity() costs the same at any number of volumes. */
class Sizes extends Map<string, number> {
  total = 0;
  override set(id: string, sizeGb: number): this {
    this.total += sizeGb - (this.get(id) ?? 0);
    return super.set(id, sizeGb);
  }
  override delete(id: string): boolean {
    this.total -= this.get(id) ?? 0;
    return super.delete(id);
  }
  override clear(): void {
    this.total = 0;
    super.clear();
  }
}

export class FakeDriver implements Driver {
  readonly name = 'fake';
  readonly volumes: Map<string, number> & { readonly total: number } = new Sizes();
  readonly snapshots = new Map<string, { volumeId: string; sizeGb: number }>();
  /** where each volume's data came from: `volume:<id>`, `snapshot:<id>`, or `revert:<snapshot id>` */
  readonly origins = new Map<string, string>();
  /** open connections: volume id → connector hosts */
  readonly connections = new Map<string, Set<string>>();
  private readonly capacityGb: number;

  constructor(opts: FakeDriverOptions = {}) {
    this.capacityGb = opts.capacityGb ?? 100_000;
  }

  async createVolume(id: string, sizeGb: number): Promise<void> {
    const existing = this.volumes.get(id);
    if (existing !== undefined && existing !== sizeGb) throw new DriverError('create', `volume ${id} exists with size ${existing}`);
    this.volumes.set(id, sizeGb);
  }

  async cloneVolume(id: string, sourceId: string, sizeGb: number): Promise<void> {
    const source = this.volumes.get(sourceId);
    if (source === undefined) throw new DriverError('clone', `no source volume ${sourceId}`);
    if (sizeGb < source) throw new DriverError('clone', `clone of ${sourceId} cannot be smaller than ${source} GiB`);
    this.volumes.set(id, sizeGb);
    this.origins.set(id, `volume:${sourceId}`);
  }

  async createVolumeFromSnapshot(id: string, snapshotId: string, sizeGb: number): Promise<void> {
    const snap = this.snapshots.get(snapshotId);
    if (snap === undefined) throw new DriverError('create_from_snapshot', `no snapshot ${snapshotId}`);
    if (sizeGb < snap.sizeGb)
      throw new DriverError('create_from_snapshot', `volume cannot be smaller than the snapshot's ${snap.sizeGb} GiB`);
    this.volumes.set(id, sizeGb);
    this.origins.set(id, `snapshot:${snapshotId}`);
  }

  async revertToSnapshot(volumeId: string, snapshotId: string): Promise<void> {
    if (!this.volumes.has(volumeId)) throw new DriverError('revert', `no volume ${volumeId}`);
    if (!this.snapshots.has(snapshotId)) throw new DriverError('revert', `no snapshot ${snapshotId}`);
    this.origins.set(volumeId, `revert:${snapshotId}`);
  }

  async initializeConnection(volumeId: string, connector: Connector): Promise<ConnectionInfo> {
    if (!this.volumes.has(volumeId)) throw new DriverError('initialize_connection', `no volume ${volumeId}`);
    const host = connectorText(connector.host) ?? connectorText(connector.initiator) ?? 'unknown';
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
    else hosts.delete(connectorText(connector.host) ?? connectorText(connector.initiator) ?? 'unknown');
  }

  async deleteVolume(id: string): Promise<void> {
    this.volumes.delete(id);
  }

  async extendVolume(id: string, newSizeGb: number): Promise<void> {
    const size = this.volumes.get(id);
    if (size === undefined) throw new DriverError('extend', `no volume ${id}`);
    if (newSizeGb < size) throw new DriverError('extend', `cannot shrink ${id} from ${size} to ${newSizeGb}`);
    this.volumes.set(id, newSizeGb);
  }

  async createSnapshot(snapshotId: string, volumeId: string): Promise<void> {
    const size = this.volumes.get(volumeId);
    if (size === undefined) throw new DriverError('snapshot', `no volume ${volumeId}`);
    this.snapshots.set(snapshotId, { volumeId, sizeGb: size });
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    this.snapshots.delete(snapshotId);
  }

  async capacity(): Promise<Capacity> {
    return { totalGb: this.capacityGb, freeGb: this.capacityGb - this.volumes.total };
  }

  /** The fake holds no data: every volume reads as zeros (a hole), as a new thin volume does. */
  async openBackupSource(source: BackupSourceRef): Promise<BlockSource> {
    const sizeGb = 'volumeId' in source ? this.volumes.get(source.volumeId) : this.snapshots.get(source.snapshotId)?.sizeGb;
    const name = 'volumeId' in source ? `volume ${source.volumeId}` : `snapshot ${source.snapshotId}`;
    if (sizeGb === undefined) throw new DriverError('backup', `no ${name}`);
    const size = sizeGb * GiB;
    return {
      size,
      read: async (offset, length) => {
        if (offset + length > size) throw new DriverError('backup', `read past the end of ${name}`);
        return null;
      },
      close: async () => {},
    };
  }

  async releaseBackupSource(): Promise<void> {
    // No image was made: the fake holds no data to keep still.
  }

  async openRestoreTarget(volumeId: string): Promise<BlockTarget> {
    const sizeGb = this.volumes.get(volumeId);
    if (sizeGb === undefined) throw new DriverError('restore', `no volume ${volumeId}`);
    const size = sizeGb * GiB;
    return {
      size,
      zero: async () => {},
      write: async (offset, data) => {
        if (offset + data.length > size) throw new DriverError('restore', `write past the end of volume ${volumeId}`);
      },
      flush: async () => {},
      close: async () => {},
    };
  }
}
