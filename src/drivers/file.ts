/**
 * The file driver, the default of `npm start`: a volume is a sparse file
 * of its size under `<dir>/volumes`, a snapshot a copy under
 * `<dir>/snapshots`; clones, volumes from snapshots and reverts are copies
 * too. Copies are made by coreutils `cp --reflink=auto --sparse=always`: a
 * reflink (copy-on-write, instant) where the filesystem can, otherwise a
 * kernel-side copy (copy_file_range) that keeps the holes, so a 100 GiB
 * empty volume copies in no time and takes no space. (Node's copyFile
 * would fall back to writing every zero.)
 *
 * Every operation is idempotent, as recovery needs: files appear by
 * rename of a finished temporary, so a crash never leaves a half volume
 * under the final name. Copies take a node-scope lock on the file they
 * read or write (`file-{id}`), as drivers in Cinder's catalogue lock on
 * their source.
 *
 * Capacity is thin: the logical sizes of the volume files count. They are
 * counted once (asynchronously, when the driver starts) and kept current by
 * the driver's own creates, extends and deletes, so asking costs the same at
 * 10 volumes and at 10 million — the scheduler asks on every create. Nodes
 * of one deployment share the directory, and one node does not see the
 * others' changes: each recounts in the background every minute, as Cinder's
 * volume service reports its driver's stats periodically and its scheduler
 * consumes its own placements in between. A recount is a report, not a
 * lock: operations finishing while it runs may be counted twice or not at
 * all until the next one.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, opendir, rename, rm, stat, statfs, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { Coordination } from '../coordination/locks.ts';
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

export interface FileDriverOptions {
  dir: string;
  coordination: Coordination;
  /** what the scheduler may place here (volumes are thin: their logical sizes count); default the filesystem's size */
  capacityGb?: number;
  /** how often the allocated bytes are recounted from the directory (other nodes' changes); default 60 s, 0 never */
  recountMs?: number;
}

function cp(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('cp', ['--reflink=auto', '--sparse=always', from, to], (err, _out, stderr) =>
      err ? reject(new DriverError('copy', stderr.trim() || err.message)) : resolve(),
    ),
  );
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export class FileDriver implements Driver {
  readonly name = 'file';
  private readonly volumes: string;
  private readonly snapshots: string;
  /** still images of volumes being backed up (openBackupSource) */
  private readonly images: string;
  /** logical bytes of the volume files: counted once, then kept current (see the top of the file) */
  private allocated = 0;
  private readonly counted: Promise<void>;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: FileDriverOptions) {
    this.volumes = join(opts.dir, 'volumes');
    this.snapshots = join(opts.dir, 'snapshots');
    this.images = join(opts.dir, 'backup-images');
    mkdirSync(this.images, { recursive: true });
    mkdirSync(this.volumes, { recursive: true });
    mkdirSync(this.snapshots, { recursive: true });
    this.counted = this.recount();
    this.counted.catch(() => {}); // surfaces at capacity()
    const every = opts.recountMs ?? 60_000;
    if (every > 0) {
      this.timer = setInterval(() => void this.recount().catch(() => {}), every);
      this.timer.unref();
    }
  }

  private recounting: Promise<void> | undefined;

  /** Count the volume files' logical sizes from the directory, without blocking the event loop; one count at a time. */
  recount(): Promise<void> {
    this.recounting ??= this.count().finally(() => (this.recounting = undefined));
    return this.recounting;
  }

  private async count(): Promise<void> {
    let bytes = 0;
    const before = this.allocated;
    // Deleted between the listing and the stat: it no longer counts.
    const size = (name: string) =>
      stat(join(this.volumes, name)).then(
        (s) => s.size,
        () => 0,
      );
    let batch: string[] = [];
    const flush = async () => {
      for (const n of await Promise.all(batch.map(size))) bytes += n;
      batch = [];
    };
    for await (const entry of await opendir(this.volumes, { bufferSize: 256 })) {
      if (!entry.name.endsWith('.img')) continue;
      batch.push(entry.name);
      if (batch.length === 64) await flush(); // 64 in flight: the thread pool always has the next
    }
    await flush();
    // What this node changed while the count ran is kept, in case the listing missed it.
    this.allocated = bytes + (this.allocated - before);
  }

  volumePath(id: string): string {
    return join(this.volumes, `${id}.img`);
  }

  snapshotPath(id: string): string {
    return join(this.snapshots, `${id}.img`);
  }

  private temp(path: string): string {
    return `${path}.tmp-${randomBytes(4).toString('hex')}`;
  }

  /** Make `path` appear complete: fill a temporary, then rename it into place. */
  private async publish(path: string, fill: (tmp: string) => Promise<void>): Promise<void> {
    const tmp = this.temp(path);
    try {
      await fill(tmp);
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err instanceof DriverError ? err : new DriverError('file', (err as Error).message);
    }
  }

  private lock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.opts.coordination.with(`file-${id}`, { scope: 'node', timeoutMs: 60_000 }, fn);
  }

  private async sizeOf(path: string, operation: string): Promise<number> {
    try {
      return (await stat(path)).size;
    } catch {
      throw new DriverError(operation, `no file ${path}`);
    }
  }

  async createVolume(id: string, sizeGb: number): Promise<void> {
    const path = this.volumePath(id);
    if (await exists(path)) {
      const size = await this.sizeOf(path, 'create');
      if (size === sizeGb * GiB) return; // done before a crash: idempotent
      throw new DriverError('create', `${path} exists with another size (${size / GiB} GiB)`);
    }
    await this.publish(path, async (tmp) => {
      const f = await open(tmp, 'wx', 0o600);
      await f.truncate(sizeGb * GiB);
      await f.close();
    });
    this.allocated += sizeGb * GiB;
  }

  private async copyInto(id: string, from: string, sizeGb: number, operation: string): Promise<void> {
    const path = this.volumePath(id);
    if (await exists(path)) return; // published before a crash
    const size = await this.sizeOf(from, operation);
    if (size > sizeGb * GiB) throw new DriverError(operation, `the new volume (${sizeGb} GiB) is smaller than its source`);
    await this.publish(path, async (tmp) => {
      await cp(from, tmp);
      await truncate(tmp, sizeGb * GiB);
    });
    this.allocated += sizeGb * GiB;
  }

  cloneVolume(id: string, sourceId: string, sizeGb: number): Promise<void> {
    return this.lock(sourceId, () => this.copyInto(id, this.volumePath(sourceId), sizeGb, 'clone'));
  }

  createVolumeFromSnapshot(id: string, snapshotId: string, sizeGb: number): Promise<void> {
    return this.lock(snapshotId, () => this.copyInto(id, this.snapshotPath(snapshotId), sizeGb, 'create_from_snapshot'));
  }

  async deleteVolume(id: string): Promise<void> {
    await this.lock(id, async () => {
      const path = this.volumePath(id);
      const size = await stat(path).then(
        (s) => s.size,
        () => undefined,
      );
      if (size === undefined) return; // deleted before a crash
      await rm(path, { force: true });
      this.allocated -= size;
    });
  }

  async extendVolume(id: string, newSizeGb: number): Promise<void> {
    await this.lock(id, async () => {
      const path = this.volumePath(id);
      const size = await this.sizeOf(path, 'extend');
      if (size > newSizeGb * GiB) throw new DriverError('extend', `cannot shrink ${id} to ${newSizeGb} GiB`);
      await truncate(path, newSizeGb * GiB);
      this.allocated += newSizeGb * GiB - size;
    });
  }

  async createSnapshot(snapshotId: string, volumeId: string): Promise<void> {
    await this.lock(volumeId, async () => {
      const from = this.volumePath(volumeId);
      await this.sizeOf(from, 'snapshot');
      // Taken again after a crash: the copy is redone and replaces any earlier one.
      await this.publish(this.snapshotPath(snapshotId), (tmp) => cp(from, tmp));
    });
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    await this.lock(snapshotId, () => rm(this.snapshotPath(snapshotId), { force: true }));
  }

  async revertToSnapshot(volumeId: string, snapshotId: string): Promise<void> {
    await this.lock(volumeId, async () => {
      const path = this.volumePath(volumeId);
      const size = await this.sizeOf(path, 'revert');
      const from = this.snapshotPath(snapshotId);
      await this.sizeOf(from, 'revert');
      await this.publish(path, async (tmp) => {
        await cp(from, tmp);
        await truncate(tmp, size);
      });
    });
  }

  async initializeConnection(volumeId: string, connector: Connector): Promise<ConnectionInfo> {
    const path = this.volumePath(volumeId);
    await this.sizeOf(path, 'initialize_connection');
    return {
      driver_volume_type: 'file',
      data: { device_path: path, volume_id: volumeId, host: connectorText(connector.host) ?? '', access_mode: 'rw' },
    };
  }

  async terminateConnection(): Promise<void> {
    // A file needs no export to tear down.
  }

  async capacity(): Promise<Capacity> {
    await this.counted;
    let totalGb = this.opts.capacityGb;
    if (totalGb === undefined) {
      const fs = await statfs(this.opts.dir);
      totalGb = Math.floor((fs.blocks * fs.bsize) / GiB);
    }
    return { totalGb, freeGb: totalGb - Math.ceil(this.allocated / GiB) };
  }

  imagePath(key: string): string {
    return join(this.images, `${key}.img`);
  }

  /**
   * A snapshot is read as it is (it never changes). A volume is read
   * through an image: a reflink copy where the filesystem can (instant),
   * else a sparse kernel-side copy, made under the volume's lock, published
   * by rename, and kept until released: a resumed backup reads the same one.
   */
  async openBackupSource(source: BackupSourceRef, key: string): Promise<BlockSource> {
    let path: string;
    if ('snapshotId' in source) {
      path = this.snapshotPath(source.snapshotId);
    } else {
      path = this.imagePath(key);
      if (!(await exists(path))) {
        const from = this.volumePath(source.volumeId);
        await this.lock(source.volumeId, async () => {
          await this.sizeOf(from, 'backup');
          await this.publish(path, (tmp) => cp(from, tmp));
        });
      }
    }
    const size = await this.sizeOf(path, 'backup');
    const f = await open(path, 'r');
    // A file with no block allocated is all holes: nothing to read (a volume never written, as
    // thin volumes start). Node cannot seek to data (SEEK_DATA) to skip the holes of the others.
    const empty = (await f.stat()).blocks === 0;
    return {
      size,
      read: async (offset, length, into) => {
        if (empty) return null;
        const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await f.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) throw new DriverError('backup', `${path} ends before ${offset + length}`);
          got += bytesRead;
        }
        return buf;
      },
      close: () => f.close(),
    };
  }

  async releaseBackupSource(key: string): Promise<void> {
    await rm(this.imagePath(key), { force: true });
  }

  /** Written in place, under the volume's lock only while it opens: the volume is `restoring-backup`, nothing else touches it. */
  async openRestoreTarget(volumeId: string): Promise<BlockTarget> {
    const path = this.volumePath(volumeId);
    const size = await this.sizeOf(path, 'restore');
    const f = await open(path, 'r+');
    return {
      size,
      // Dropping every block and growing back: all holes, no byte written.
      zero: async () => {
        await f.truncate(0);
        await f.truncate(size);
      },
      write: async (offset, data) => {
        if (offset + data.length > size) throw new DriverError('restore', `write past the end of ${path}`);
        let put = 0;
        while (put < data.length) put += (await f.write(data, put, data.length - put, offset + put)).bytesWritten;
      },
      flush: () => f.sync(),
      close: () => f.close(),
    };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }
}
