/**
 * The posix backup store (Cinder's PosixBackupDriver model, on its chunked
 * driver): a backup is a directory of objects under a root given by
 * configuration (an NFS mount in production, any directory here).
 *
 * Objects of a backup, under `<root>/<container>/`, named from its prefix:
 *
 * - `<prefix>-00001`, …: the data, one object per run of stored blocks,
 *   compressed (zlib) when that makes it smaller, each with the SHA-256 of
 *   its stored bytes in the metadata, checked on restore: a corrupted
 *   object fails the restore with a clear error, never a silently wrong
 *   volume.
 * - `<prefix>_sha256file`: the SHA-256 of every block (`blockBytes`) of the
 *   source, what the next incremental backup compares against.
 * - `<prefix>_metadata`: the objects and where each goes; written last, so
 *   a backup without it is not finished.
 * - `<prefix>_journal`: while the backup is being made, one line per chunk
 *   whose objects are durable (with that chunk's block hashes). A backup
 *   resumed after a crash keeps those chunks and reads on from the next
 *   (the source is the same still image: Driver.openBackupSource).
 *
 * Blocks of zeros are not stored: in a full backup what no object covers
 * is zeros, so a sparse volume stays cheap. An incremental backup stores
 * only the blocks whose hash differs from its parent's at the same place
 * (a block that became zeros is recorded as a zero range, no object);
 * what it does not cover is its parent's. A restore zeroes the target,
 * then applies the full backup and each increment after it, oldest first.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deflate, inflate } from 'node:zlib';
import { DriverError, type BlockSource, type BlockTarget } from '../drivers/driver.ts';

const deflateAsync = promisify(deflate);
const inflateAsync = promisify(inflate);

export type Compression = 'none' | 'zlib';

export interface PosixStoreOptions {
  root: string;
  /** bytes read and written per step of the loop; a multiple of blockBytes */
  chunkBytes?: number;
  /** bytes per hashed block (Cinder's backup_sha_block_size_bytes) */
  blockBytes?: number;
  compression?: Compression;
}

/** Where a backup's objects are. */
export interface BackupLocation {
  container: string;
  prefix: string;
}

export interface BackupIdentity extends BackupLocation {
  id: string;
  volumeId: string;
  name: string | null;
  description: string | null;
  createdAt: Date;
  parentId: string | null;
}

/** One stored range: an object, or (incremental) zeros that replace the parent's data. */
export interface ObjectEntry {
  name: string | null;
  offset: number;
  length: number;
  compression: Compression;
  /** SHA-256 of the stored bytes (hex); null for a zero range */
  sha256: string | null;
}

interface Metadata {
  version: '1.0.0';
  backup_id: string;
  volume_id: string;
  backup_name: string | null;
  backup_description: string | null;
  created_at: string;
  parent_id: string | null;
  size: number;
  block_bytes: number;
  objects: ObjectEntry[];
}

interface JournalLine {
  chunk: number;
  objects: ObjectEntry[];
  sha256s: string[];
}

export interface BackupProgress {
  /** 0–100 */
  percent: number;
}

export interface BackupRun {
  /** before each chunk: throws to stop (the step lost its row or its fence) */
  check?: () => Promise<void>;
  onProgress?: (p: BackupProgress) => void | Promise<void>;
}

export interface BackupResult {
  objectCount: number;
  /** bytes the objects take */
  storedBytes: number;
  /** chunks found written before a crash, kept */
  resumedChunks: number;
}

/** The container Cinder's posix driver makes for a backup: `<id[0:2]>/<id[2:4]>/<id>`. */
export function defaultContainer(id: string): string {
  return `${id.slice(0, 2)}/${id.slice(2, 4)}/${id}`;
}

/** Cinder's object prefix: `volume_<volume id>_<YYYYmmddHHMMSS>_backup_<backup id>`. */
export function objectPrefix(volumeId: string, backupId: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `volume_${volumeId}_${stamp}_backup_${backupId}`;
}

/** A container given by a client must stay under the root. */
export function validContainer(container: string): boolean {
  return /^[A-Za-z0-9_.\-/]{1,255}$/.test(container) && !container.split('/').some((p) => p === '..' || p === '.' || p === '');
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export class PosixBackupStore {
  readonly root: string;
  readonly chunkBytes: number;
  readonly blockBytes: number;
  readonly compression: Compression;
  private readonly zeroBlock: Buffer;
  private readonly zeroHash: string;

  constructor(opts: PosixStoreOptions) {
    this.root = opts.root;
    this.blockBytes = opts.blockBytes ?? 32 * 1024;
    this.chunkBytes = opts.chunkBytes ?? 32 * 1024 * 1024;
    this.compression = opts.compression ?? 'zlib';
    if (this.chunkBytes % this.blockBytes !== 0)
      throw new Error(`chunkBytes ${this.chunkBytes} is not a multiple of blockBytes ${this.blockBytes}`);
    this.zeroBlock = Buffer.alloc(this.blockBytes);
    this.zeroHash = sha256(this.zeroBlock);
  }

  private dir(loc: BackupLocation): string {
    if (!validContainer(loc.container)) throw new DriverError('backup', `invalid container ${JSON.stringify(loc.container)}`);
    return join(this.root, loc.container);
  }

  private path(loc: BackupLocation, suffix: string): string {
    return join(this.dir(loc), `${loc.prefix}${suffix}`);
  }

  /** Write a file whole or not at all: a temporary, synced, renamed into place. */
  private async publish(path: string, data: Buffer | string): Promise<void> {
    const tmp = `${path}.tmp`;
    const f = await open(tmp, 'w', 0o600);
    try {
      await f.writeFile(data);
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, path);
  }

  /** The block hashes of a finished backup (what an incremental compares against). */
  async hashesOf(loc: BackupLocation): Promise<{ blockBytes: number; sha256s: string[] }> {
    const raw = await readFile(this.path(loc, '_sha256file'), 'utf8').catch(() => {
      throw new DriverError('backup', `the parent backup's ${loc.prefix}_sha256file is missing`);
    });
    const parsed = JSON.parse(raw) as { chunk_size: number; sha256s: string[] };
    return { blockBytes: parsed.chunk_size, sha256s: parsed.sha256s };
  }

  private async journal(loc: BackupLocation): Promise<JournalLine[]> {
    const raw = await readFile(this.path(loc, '_journal'), 'utf8').catch(() => '');
    const lines: JournalLine[] = [];
    for (const line of raw.split('\n')) {
      if (!line) continue;
      try {
        lines.push(JSON.parse(line) as JournalLine);
      } catch {
        break; // a line cut by the crash: what follows it was not recorded
      }
    }
    return lines;
  }

  /** Whether an object holds what its entry says (read back and hashed). */
  /** The bytes an object takes if it holds what its entry says (read back and hashed), else undefined; 0 for a zero range. */
  private async intact(loc: BackupLocation, entry: ObjectEntry): Promise<number | undefined> {
    if (entry.name === null) return 0;
    const data = await readFile(this.path(loc, `-${entry.name}`)).catch(() => undefined);
    return data !== undefined && sha256(data) === entry.sha256 ? data.length : undefined;
  }

  /**
   * Back up `source` into `backup`'s objects (a parent: an incremental
   * over it). Idempotent: run again after a crash, it keeps the chunks its
   * journal names whose objects are intact and goes on from there.
   */
  async backup(
    backup: BackupIdentity,
    source: BlockSource,
    parent: BackupLocation | undefined,
    run: BackupRun = {},
  ): Promise<BackupResult> {
    await mkdir(this.dir(backup), { recursive: true });
    let parentHashes: string[] | undefined;
    if (parent) {
      const p = await this.hashesOf(parent);
      if (p.blockBytes !== this.blockBytes)
        throw new DriverError('backup', 'Hash block size has changed since the last backup. Do a full backup.');
      if (source.size > p.sha256s.length * this.blockBytes)
        throw new DriverError('backup', 'Volume size increased since the last backup. Do a full backup.');
      parentHashes = p.sha256s;
    }
    const chunks = Math.ceil(source.size / this.chunkBytes);
    const done: JournalLine[] = [];
    let storedBytes = 0;
    for (const line of await this.journal(backup)) {
      if (line.chunk !== done.length) break;
      const sizes = await Promise.all(line.objects.map((o) => this.intact(backup, o)));
      if (sizes.some((n) => n === undefined)) break;
      for (const n of sizes) storedBytes += n!;
      done.push(line);
    }
    const resumedChunks = done.length;
    // Rewrite the journal as what was kept: a torn tail is dropped.
    await this.publish(this.path(backup, '_journal'), done.map((l) => `${JSON.stringify(l)}\n`).join(''));
    const journal = await open(this.path(backup, '_journal'), 'a');
    let objectNo = done.reduce((n, l) => n + l.objects.filter((o) => o.name !== null).length, 0);
    try {
      for (let chunk = done.length; chunk < chunks; chunk++) {
        await run.check?.();
        const offset = chunk * this.chunkBytes;
        const length = Math.min(this.chunkBytes, source.size - offset);
        const data = await source.read(offset, length);
        const blocks = Math.ceil(length / this.blockBytes);
        const hashes: string[] = [];
        const store: boolean[] = [];
        const zero: boolean[] = [];
        for (let b = 0; b < blocks; b++) {
          const block = data?.subarray(b * this.blockBytes, Math.min((b + 1) * this.blockBytes, length));
          const isZero = !block || (block.length === this.blockBytes ? block.equals(this.zeroBlock) : block.every((x) => x === 0));
          const hash = isZero && (!block || block.length === this.blockBytes) ? this.zeroHash : sha256(block);
          hashes.push(hash);
          const index = offset / this.blockBytes + b;
          const changed = parentHashes ? parentHashes[index] !== hash : true;
          zero.push(isZero);
          store.push(changed);
        }
        const objects: ObjectEntry[] = [];
        // Runs of stored blocks of one kind (data, or zeros an incremental records): one entry each.
        for (let b = 0; b < blocks;) {
          if (!store[b] || (zero[b] && !parentHashes)) {
            b++;
            continue;
          }
          const kind = zero[b];
          let e = b;
          while (e < blocks && store[e] && zero[e] === kind) e++;
          const start = b * this.blockBytes;
          const end = Math.min(e * this.blockBytes, length);
          if (kind) {
            objects.push({ name: null, offset: offset + start, length: end - start, compression: 'none', sha256: null });
          } else {
            const raw = data!.subarray(start, end);
            let stored: Buffer = raw;
            let compression: Compression = 'none';
            if (this.compression === 'zlib') {
              const packed = await deflateAsync(raw, { level: 1 });
              if (packed.length < raw.length) [stored, compression] = [packed, 'zlib'];
            }
            const name = String(++objectNo).padStart(5, '0');
            await this.publish(this.path(backup, `-${name}`), stored);
            storedBytes += stored.length;
            objects.push({ name, offset: offset + start, length: end - start, compression, sha256: sha256(stored) });
          }
          b = e;
        }
        const line: JournalLine = { chunk, objects, sha256s: hashes };
        await journal.write(`${JSON.stringify(line)}\n`);
        await journal.sync();
        done.push(line);
        await run.onProgress?.({ percent: Math.floor(((chunk + 1) * 100) / chunks) });
      }
    } finally {
      await journal.close();
    }
    const objects = done.flatMap((l) => l.objects);
    await this.publish(
      this.path(backup, '_sha256file'),
      JSON.stringify({
        version: '1.0.0',
        backup_id: backup.id,
        volume_id: backup.volumeId,
        chunk_size: this.blockBytes,
        sha256s: done.flatMap((l) => l.sha256s),
      }),
    );
    const metadata: Metadata = {
      version: '1.0.0',
      backup_id: backup.id,
      volume_id: backup.volumeId,
      backup_name: backup.name,
      backup_description: backup.description,
      created_at: backup.createdAt.toISOString(),
      parent_id: backup.parentId,
      size: source.size,
      block_bytes: this.blockBytes,
      objects,
    };
    await this.publish(this.path(backup, '_metadata'), JSON.stringify(metadata, null, 2));
    await rm(this.path(backup, '_journal'), { force: true });
    return { objectCount: objects.filter((o) => o.name !== null).length, storedBytes, resumedChunks };
  }

  private async metadataOf(loc: BackupLocation): Promise<Metadata> {
    const raw = await readFile(this.path(loc, '_metadata'), 'utf8').catch(() => {
      throw new DriverError('restore', `backup ${loc.prefix} has no metadata: it was never finished, or its files are gone`);
    });
    const m = JSON.parse(raw) as Metadata;
    if (m.version !== '1.0.0') throw new DriverError('restore', `No support to restore backup version ${String(m.version)}`);
    return m;
  }

  /**
   * Restore a chain (the full backup first, then each increment, oldest
   * first) onto `target`: zeroed, then every object written where it goes,
   * each checked against its SHA-256 before a byte of it is written.
   */
  async restore(chain: readonly BackupLocation[], target: BlockTarget, run: BackupRun = {}): Promise<void> {
    const metas = await Promise.all(chain.map((loc) => this.metadataOf(loc)));
    const size = metas[metas.length - 1]!.size;
    if (size > target.size)
      throw new DriverError('restore', `the volume (${target.size} bytes) is smaller than the backup (${size} bytes)`);
    await target.zero();
    const total = metas.reduce((n, m) => n + m.objects.length, 0);
    let applied = 0;
    for (const [i, meta] of metas.entries()) {
      const loc = chain[i]!;
      for (const o of meta.objects) {
        await run.check?.();
        if (o.name === null) {
          await target.write(o.offset, Buffer.alloc(o.length));
        } else {
          const stored = await readFile(this.path(loc, `-${o.name}`)).catch(() => {
            throw new DriverError('restore', `object ${o.name} of backup ${meta.backup_id} is missing`);
          });
          if (sha256(stored) !== o.sha256)
            throw new DriverError(
              'restore',
              `object ${o.name} of backup ${meta.backup_id} is corrupt: its SHA-256 does not match the metadata`,
            );
          const data = o.compression === 'zlib' ? await inflateAsync(stored) : stored;
          if (data.length !== o.length)
            throw new DriverError('restore', `object ${o.name} of backup ${meta.backup_id} holds ${data.length} bytes, not ${o.length}`);
          await target.write(o.offset, data);
        }
        applied++;
        await run.onProgress?.({ percent: Math.floor((applied * 100) / Math.max(1, total)) });
      }
    }
    await target.flush();
  }

  /**
   * Import: check that a backup's files are in the store and whole (its
   * metadata readable, every object it names present with its SHA-256);
   * the size and object count its metadata records. A DriverError names
   * what is missing or corrupt.
   */
  async verify(loc: BackupLocation): Promise<{ size: number; objectCount: number }> {
    const meta = await this.metadataOf(loc);
    for (const o of meta.objects) {
      if ((await this.intact(loc, o)) === undefined)
        throw new DriverError('import', `object ${o.name} of backup ${meta.backup_id} is missing or corrupt`);
    }
    return { size: meta.size, objectCount: meta.objects.filter((o) => o.name !== null).length };
  }

  /** Delete every object of a backup (idempotent: what is gone already is fine). */
  async delete(loc: BackupLocation): Promise<void> {
    const dir = this.dir(loc);
    const names = await readdir(dir).catch(() => [] as string[]);
    await Promise.all(names.filter((n) => n.startsWith(loc.prefix)).map((n) => rm(join(dir, n), { force: true })));
  }

  /** Export: the metadata file's text (with the sha256 file's), so a backup survives the loss of the database. */
  async record(loc: BackupLocation): Promise<{ metadata: string; sha256file: string }> {
    return {
      metadata: await readFile(this.path(loc, '_metadata'), 'utf8'),
      sha256file: await readFile(this.path(loc, '_sha256file'), 'utf8'),
    };
  }
}
