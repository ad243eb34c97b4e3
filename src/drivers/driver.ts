/**
 * What a backend must do. Every operation is idempotent: a worker that
 * resumes a step after a crash may call it again (create of an existing
 * volume of that size succeeds, delete of a missing one succeeds).
 *
 * A `DriverError` is a backend refusal or failure: the step sends the
 * machine its failure event (BACKEND_FAILED), and the resource goes to the
 * matching error state. Any other exception is a bug or an outage: the
 * step hands the row back to the queue to be tried again.
 */
export interface Capacity {
  totalGb: number;
  freeGb: number;
}

/** What a host sends to be connected to a volume (os-brick's connector properties). */
export type Connector = Record<string, unknown>;

/** A connector property that is text (os-brick sends strings; anything else is not a name). */
export const connectorText = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** What the host needs to connect: `{driver_volume_type, data}`, as Cinder drivers return it. */
export interface ConnectionInfo {
  driver_volume_type: string;
  data: Record<string, unknown>;
}

/**
 * A consistent image of a volume or snapshot, read by a backup
 * (src/backup/). Reads past the end are an error; `null` says the range
 * holds only zeros (a hole), which the reader need not look at.
 */
export interface BlockSource {
  /** bytes */
  readonly size: number;
  /**
   * `length` bytes at `offset`, into `into` when given (a buffer of at
   * least `length` the caller reuses: a fresh 32 MiB buffer per read costs
   * more than the read); null: a hole, all zeros.
   */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer | null>;
  close(): Promise<void>;
}

/** A volume being written by a restore. */
export interface BlockTarget {
  /** bytes */
  readonly size: number;
  /** make every byte zero (cheaply: a restore then writes only what is not) */
  zero(): Promise<void>;
  write(offset: number, data: Buffer): Promise<void>;
  /** durable on return */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** What a backup reads: a volume (through an image the driver keeps still), or a snapshot. */
export type BackupSourceRef = { volumeId: string } | { snapshotId: string };

export interface Driver {
  readonly name: string;
  createVolume(id: string, sizeGb: number): Promise<void>;
  /** a new volume with the source volume's data (then grown to sizeGb) */
  cloneVolume(id: string, sourceId: string, sizeGb: number): Promise<void>;
  /** a new volume with the snapshot's data (then grown to sizeGb) */
  createVolumeFromSnapshot(id: string, snapshotId: string, sizeGb: number): Promise<void>;
  deleteVolume(id: string): Promise<void>;
  extendVolume(id: string, newSizeGb: number): Promise<void>;
  createSnapshot(snapshotId: string, volumeId: string): Promise<void>;
  deleteSnapshot(snapshotId: string): Promise<void>;
  /** put the volume's data back as it was in the snapshot */
  revertToSnapshot(volumeId: string, snapshotId: string): Promise<void>;
  initializeConnection(volumeId: string, connector: Connector): Promise<ConnectionInfo>;
  terminateConnection(volumeId: string, connector: Connector | null): Promise<void>;
  capacity(): Promise<Capacity>;
  /**
   * The data a backup reads. A volume is read through a still image the
   * driver makes (a temporary snapshot, as Cinder's backup_use_temp_snapshot),
   * named by `key`: opened again with the same key (a backup resumed after
   * a crash), the same image is read, so chunks already written stay true.
   * The volume itself may be attached, written or extended meanwhile.
   */
  openBackupSource(source: BackupSourceRef, key: string): Promise<BlockSource>;
  /** Drop the image `key` made (idempotent). */
  releaseBackupSource(key: string): Promise<void>;
  openRestoreTarget(volumeId: string): Promise<BlockTarget>;
  close?(): Promise<void>;
}

export class DriverError extends Error {
  constructor(
    readonly operation: string,
    message: string,
  ) {
    super(`${operation}: ${message}`);
    this.name = 'DriverError';
  }
}
