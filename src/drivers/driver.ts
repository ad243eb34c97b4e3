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
