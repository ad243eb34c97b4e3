/**
 * The posix backup store (Cinder's PosixBackupDriver model, on its chunked
 * driver): a backup is a directory of objects under a root given by
 * configuration (an NFS mount in production, any directory here).
 *
 * Objects of a backup, under `<root>/<container>/`, named from its prefix:
 *
 * - `<prefix>-00001`, …: the data, one object per chunk (`chunkBytes` of
 *   the volume) that has blocks to store. The runs of stored blocks are cut
 *   into pieces of at most `pieceBytes`, each compressed on its own (zstd
 *   level 1 by default, or zlib) when that makes it smaller, laid end to
 *   end; each piece's SHA-256 is in the metadata, checked on restore: a
 *   corrupted object fails the restore with a clear error, never a silently
 *   wrong volume.
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
import { mkdir, open, readFile, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inflate } from 'node:zlib';
import { decompress as zstdDecompress } from 'zstd-napi';
import { DriverError, type BlockSource, type BlockTarget } from '../drivers/driver.ts';
import { pack, sha256, type Compression, type ObjectEntry, type Packed } from './pack.ts';
import { PackPool } from './pool.ts';

const inflateAsync = promisify(inflate);

/** Raw bytes per compressed piece: zstd compresses a MiB at a time at about 1.5 GB/s here, a 32 MiB buffer at a fifth of that. */
const PIECE_BYTES = 1024 * 1024;

export type { Compression, ObjectEntry };

export interface PosixStoreOptions {
  root: string;
  /** bytes read and written per step of the loop; a multiple of blockBytes */
  chunkBytes?: number;
  /** bytes per hashed block (Cinder's backup_sha_block_size_bytes) */
  blockBytes?: number;
  compression?: Compression;
  /** raw bytes per compressed piece (a multiple of blockBytes); PIECE_BYTES */
  pieceBytes?: number;
  /** the threads that pack chunks; one pool of the process's by default */
  pool?: PackPool;
}

let sharedPool: PackPool | undefined;

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

/** An object's name: the chunk it holds, from 1. */
const objectName = (chunk: number) => String(chunk + 1).padStart(5, '0');

/** The bytes of an entry's piece in its object's file (undefined: the file is short or missing). */
function storedBytesOf(file: Buffer | undefined, e: ObjectEntry): Buffer | undefined {
  if (file === undefined) return undefined;
  if (e.at === undefined || e.stored === undefined) return file;
  return e.at + e.stored <= file.length ? file.subarray(e.at, e.at + e.stored) : undefined;
}

/** Every byte of every buffer, in order, with as few calls as the kernel allows. */
async function writeAll(f: FileHandle, buffers: Uint8Array[]): Promise<void> {
  let rest = buffers;
  while (rest.length) {
    const { bytesWritten } = await f.writev(rest.slice(0, 1024));
    let n = bytesWritten;
    const left: Uint8Array[] = [];
    for (const b of rest) {
      if (n >= b.length) n -= b.length;
      else {
        left.push(n > 0 ? b.subarray(n) : b);
        n = 0;
      }
    }
    rest = left;
  }
}

async function decompress(stored: Buffer, compression: Compression): Promise<Buffer> {
  if (compression === 'zstd') return zstdDecompress(stored);
  if (compression === 'zlib') return inflateAsync(stored);
  return stored;
}

export class PosixBackupStore {
  readonly root: string;
  readonly chunkBytes: number;
  readonly blockBytes: number;
  readonly compression: Compression;
  readonly pieceBytes: number;
  private readonly pool: PackPool;

  constructor(opts: PosixStoreOptions) {
    this.root = opts.root;
    this.blockBytes = opts.blockBytes ?? 32 * 1024;
    this.chunkBytes = opts.chunkBytes ?? 32 * 1024 * 1024;
    this.compression = opts.compression ?? 'zstd';
    this.pieceBytes = opts.pieceBytes ?? PIECE_BYTES;
    this.pool = opts.pool ?? (sharedPool ??= new PackPool());
    if (this.chunkBytes % this.blockBytes !== 0)
      throw new Error(`chunkBytes ${this.chunkBytes} is not a multiple of blockBytes ${this.blockBytes}`);
    if (this.pieceBytes % this.blockBytes !== 0)
      throw new Error(`pieceBytes ${this.pieceBytes} is not a multiple of blockBytes ${this.blockBytes}`);
  }

  private dir(loc: BackupLocation): string {
    if (!validContainer(loc.container)) throw new DriverError('backup', `invalid container ${JSON.stringify(loc.container)}`);
    return join(this.root, loc.container);
  }

  private path(loc: BackupLocation, suffix: string): string {
    return join(this.dir(loc), `${loc.prefix}${suffix}`);
  }

  /**
   * Chunk buffers of shared memory, kept between backups: a fresh 32 MiB
   * buffer costs its page faults on first touch, about as much as reading
   * it from the page cache 20 times (measured: a backup's first chunks
   * took 300 ms more before buffers were kept).
   */
  private readonly spare: Buffer[] = [];

  private takeBuffers(n: number): Buffer[] {
    const out = this.spare.splice(0, n);
    while (out.length < n) out.push(Buffer.from(new SharedArrayBuffer(this.chunkBytes)));
    return out;
  }

  /** Write a file whole or not at all: a temporary, synced, renamed into place. */
  private async publish(path: string, data: Buffer | string | Uint8Array[]): Promise<void> {
    const tmp = `${path}.tmp`;
    const f = await open(tmp, 'w', 0o600);
    try {
      if (Array.isArray(data)) await writeAll(f, data);
      else await f.writeFile(data);
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

  /**
   * The bytes a chunk's objects take if each holds what its entries say
   * (read back and hashed), else undefined.
   */
  private async intact(loc: BackupLocation, entries: readonly ObjectEntry[]): Promise<number | undefined> {
    const files = new Map<string, Buffer | undefined>();
    for (const e of entries) {
      if (e.name === null) continue;
      if (!files.has(e.name)) files.set(e.name, await readFile(this.path(loc, `-${e.name}`)).catch(() => undefined));
      const stored = storedBytesOf(files.get(e.name), e);
      if (stored === undefined || sha256(stored) !== e.sha256) return undefined;
    }
    let n = 0;
    for (const f of files.values()) n += f!.length;
    return n;
  }

  /**
   * Back up `source` into `backup`'s objects (a parent: an incremental
   * over it). Idempotent: run again after a crash, it keeps the chunks its
   * journal names whose objects are intact and goes on from there.
   *
   * A pipeline: the next chunk is read while as many as the pack pool has
   * threads are hashed and compressed there (src/backup/pool.ts), and the
   * one before is written and synced meanwhile; the event loop only moves
   * buffers, so the node's requests are not kept waiting behind a backup.
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
      const sizes = await this.intact(backup, line.objects);
      if (sizes === undefined) break;
      storedBytes += sizes;
      done.push(line);
    }
    const resumedChunks = done.length;
    // Rewrite the journal as what was kept: a torn tail is dropped.
    await this.publish(this.path(backup, '_journal'), done.map((l) => `${JSON.stringify(l)}\n`).join(''));
    const journal = await open(this.path(backup, '_journal'), 'a');
    const lengthOf = (chunk: number) => Math.min(this.chunkBytes, source.size - chunk * this.chunkBytes);
    // As many chunks packed at once as the pool has threads, each read into
    // a buffer of shared memory, reused: one more buffer than chunks in
    // flight, so the next is read while the others are packed.
    const inFlight = this.pool.size;
    const buffers = this.takeBuffers(inFlight + 1);
    const packs = new Map<number, Promise<Packed>>();
    const schedule = (chunk: number) => {
      const p = (async () => {
        const into = buffers[chunk % buffers.length]!;
        const data = await source.read(chunk * this.chunkBytes, lengthOf(chunk), into);
        // A source that gave a buffer of its own: copied into shared memory for the pool.
        if (data && data.buffer !== into.buffer) data.copy(into);
        const job = {
          name: objectName(chunk),
          offset: chunk * this.chunkBytes,
          length: lengthOf(chunk),
          data: data ? into.subarray(0, lengthOf(chunk)) : null,
          parentHashes: parentHashes
            ? parentHashes.slice((chunk * this.chunkBytes) / this.blockBytes, ((chunk + 1) * this.chunkBytes) / this.blockBytes)
            : null,
          blockBytes: this.blockBytes,
          pieceBytes: this.pieceBytes,
          compression: this.compression,
        };
        // A hole has nothing to hash or compress: packed here, without waking (or starting) a thread.
        return data ? this.pool.pack(job) : pack(job);
      })();
      p.catch(() => {}); // awaited in its turn; not unhandled if an earlier turn throws first
      packs.set(chunk, p);
    };
    let scheduled = done.length;
    let writing: Promise<void> = Promise.resolve();
    try {
      for (; scheduled < Math.min(chunks, done.length + inFlight); scheduled++) schedule(scheduled);
      for (let chunk = done.length; chunk < chunks; chunk++) {
        await run.check?.();
        const packed = await packs.get(chunk)!;
        packs.delete(chunk);
        // Chunk `scheduled` takes the buffer of the chunk before this one, packed already.
        if (scheduled < chunks) schedule(scheduled++);
        await writing; // the chunk before is durable: lines go into the journal in order
        storedBytes += packed.objectBytes;
        writing = (async () => {
          if (packed.pieces.length) await this.publish(this.path(backup, `-${objectName(chunk)}`), packed.pieces);
          const line: JournalLine = { chunk, objects: packed.entries, sha256s: packed.hashes };
          await journal.write(`${JSON.stringify(line)}\n`);
          // Synced when it records an object: a line lost with a crash only costs the resume that
          // chunk's work again, and a chunk with no object (all zeros, or unchanged) is cheap to redo.
          if (packed.pieces.length) await journal.sync();
          done.push(line);
          await run.onProgress?.({ percent: Math.floor(((chunk + 1) * 100) / chunks) });
        })();
      }
      await writing;
    } finally {
      await writing.catch(() => {});
      await journal.close();
      // Packs still running after a failure read their buffers: those are dropped, not kept.
      if (packs.size === 0) this.spare.push(...buffers);
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
    return { objectCount: new Set(objects.flatMap((o) => (o.name === null ? [] : [o.name]))).size, storedBytes, resumedChunks };
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
   * first) onto `target`: zeroed, then every piece written where it goes,
   * each checked against its SHA-256 before a byte of it is written. The
   * next object is read while this one is checked and written.
   */
  async restore(chain: readonly BackupLocation[], target: BlockTarget, run: BackupRun = {}): Promise<void> {
    const metas = await Promise.all(chain.map((loc) => this.metadataOf(loc)));
    const size = metas[metas.length - 1]!.size;
    if (size > target.size)
      throw new DriverError('restore', `the volume (${target.size} bytes) is smaller than the backup (${size} bytes)`);
    await target.zero();
    // Every object of the chain in order, with the entries it holds.
    const steps: { loc: BackupLocation; meta: Metadata; name: string | null; entries: ObjectEntry[] }[] = [];
    for (const [i, meta] of metas.entries()) {
      for (const o of meta.objects) {
        const last = steps[steps.length - 1];
        if (last && last.meta === meta && last.name === o.name && o.name !== null) last.entries.push(o);
        else steps.push({ loc: chain[i]!, meta, name: o.name, entries: [o] });
      }
    }
    const readObject = (k: number): Promise<Buffer | null> => {
      const step = steps[k]!;
      if (step.name === null) return Promise.resolve(null);
      return readFile(this.path(step.loc, `-${step.name}`)).catch(() => {
        throw new DriverError('restore', `object ${step.name} of backup ${step.meta.backup_id} is missing`);
      });
    };
    let next = steps.length ? readObject(0) : undefined;
    for (const [k, step] of steps.entries()) {
      await run.check?.();
      const file = await next!;
      next = k + 1 < steps.length ? readObject(k + 1) : undefined;
      next?.catch(() => {}); // awaited in its turn
      for (const o of step.entries) {
        if (o.name === null) {
          await target.write(o.offset, Buffer.alloc(o.length));
          continue;
        }
        const stored = storedBytesOf(file!, o);
        if (stored === undefined || sha256(stored) !== o.sha256)
          throw new DriverError(
            'restore',
            `object ${o.name} of backup ${step.meta.backup_id} is corrupt: its SHA-256 does not match the metadata`,
          );
        let data: Buffer;
        try {
          data = await decompress(stored, o.compression);
        } catch (e) {
          throw new DriverError(
            'restore',
            `object ${o.name} of backup ${step.meta.backup_id} does not decompress: ${(e as Error).message}`,
          );
        }
        if (data.length !== o.length)
          throw new DriverError('restore', `object ${o.name} of backup ${step.meta.backup_id} holds ${data.length} bytes, not ${o.length}`);
        await target.write(o.offset, data);
      }
      await run.onProgress?.({ percent: Math.floor(((k + 1) * 100) / steps.length) });
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
    const names = [...new Set(meta.objects.flatMap((o) => (o.name === null ? [] : [o.name])))];
    for (const name of names) {
      if (
        (await this.intact(
          loc,
          meta.objects.filter((o) => o.name === name),
        )) === undefined
      )
        throw new DriverError('import', `object ${name} of backup ${meta.backup_id} is missing or corrupt`);
    }
    return { size: meta.size, objectCount: names.length };
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
