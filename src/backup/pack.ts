/**
 * Packing one chunk of a backup: the CPU's part of it, run on the pack
 * pool's threads (src/backup/pool.ts) so that a backup uses every core and
 * never holds up the node's event loop.
 *
 * Every block is hashed (a block of zeros is known without hashing); the
 * blocks to store (all but zeros in a full backup; in an incremental,
 * those whose hash differs from the parent's at the same place) are cut
 * into pieces of at most `pieceBytes`, each compressed on its own where
 * that makes it smaller, laid end to end in the chunk's object. A block
 * that became zeros in an incremental is a zero range, no piece.
 */
import { hash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';

export type Compression = 'none' | 'zlib' | 'zstd';

/**
 * One stored range: a piece of an object, or (incremental) zeros that
 * replace the parent's data. The pieces of one chunk lie end to end in
 * one object.
 */
export interface ObjectEntry {
  /** the object (null: a zero range) */
  name: string | null;
  /** where the range goes in the volume, and its raw bytes */
  offset: number;
  length: number;
  compression: Compression;
  /** SHA-256 of the stored bytes (hex); null for a zero range */
  sha256: string | null;
  /** where the piece starts in its object, and the bytes it takes there (absent: the whole object) */
  at?: number;
  stored?: number;
}

export interface PackJob {
  /** the object's name, and where the chunk starts in the volume */
  name: string;
  offset: number;
  length: number;
  /** the chunk's bytes (null: a hole, all zeros) */
  data: Uint8Array | null;
  /** the parent's hashes of this chunk's blocks (an incremental) */
  parentHashes: string[] | null;
  blockBytes: number;
  pieceBytes: number;
  compression: Compression;
}

export interface Packed {
  hashes: string[];
  entries: ObjectEntry[];
  /** the object's bytes, in order (none: no object for this chunk) */
  pieces: Uint8Array[];
  objectBytes: number;
}

/** zstd's level 1: the speed of the disk, not the ratio of an archive. */
const ZSTD_PARAMS = { compressionLevel: 1 };

/**
 * crypto.hash to a buffer: one call into OpenSSL per block. createHash
 * costs about three times the hashing of a 32 KiB block in Node 20.
 */
export const sha256 = (b: Uint8Array) => hash('sha256', b, 'buffer').toString('hex');

const zeros = new Map<number, { block: Buffer; hash: string }>();
function zeroBlockOf(bytes: number) {
  let z = zeros.get(bytes);
  if (!z) {
    const block = Buffer.alloc(bytes);
    z = { block, hash: sha256(block) };
    zeros.set(bytes, z);
  }
  return z;
}

/** A piece compressed if that makes it smaller; else as it is (copied: the chunk's buffer is reused). */
function compress(raw: Buffer, compression: Compression): [Uint8Array, Compression] {
  let packed: Buffer | undefined;
  if (compression === 'zstd') packed = zstdCompress(raw, ZSTD_PARAMS);
  else if (compression === 'zlib') packed = deflateSync(raw, { level: 1 });
  return packed && packed.length < raw.length ? [packed, compression] : [Buffer.from(raw), 'none'];
}

export function pack(job: PackJob): Packed {
  const { offset, length, blockBytes } = job;
  const data = job.data ? Buffer.from(job.data.buffer, job.data.byteOffset, length) : null;
  const zero = zeroBlockOf(blockBytes);
  const blocks = Math.ceil(length / blockBytes);
  const hashes: string[] = [];
  const store: boolean[] = [];
  const isZero: boolean[] = [];
  for (let b = 0; b < blocks; b++) {
    const end = Math.min((b + 1) * blockBytes, length);
    const block = data ? data.subarray(b * blockBytes, end) : zero.block.subarray(0, end - b * blockBytes);
    const full = block.length === blockBytes;
    const z = data === null || (full ? block.equals(zero.block) : block.every((x) => x === 0));
    const h = z && full ? zero.hash : sha256(block);
    hashes.push(h);
    isZero.push(z);
    store.push(job.parentHashes ? job.parentHashes[b] !== h : !z);
  }
  const entries: ObjectEntry[] = [];
  const pieces: Uint8Array[] = [];
  let at = 0;
  const blocksPerPiece = job.pieceBytes / blockBytes;
  for (let b = 0; b < blocks;) {
    if (!store[b]) {
      b++;
      continue;
    }
    const kind = isZero[b];
    let e = b;
    while (e < blocks && store[e] && isZero[e] === kind && (kind || e - b < blocksPerPiece)) e++;
    const start = b * blockBytes;
    const end = Math.min(e * blockBytes, length);
    if (kind) {
      entries.push({ name: null, offset: offset + start, length: end - start, compression: 'none', sha256: null });
    } else {
      const [stored, compression] = compress(data!.subarray(start, end), job.compression);
      entries.push({
        name: job.name,
        offset: offset + start,
        length: end - start,
        compression,
        sha256: sha256(stored),
        at,
        stored: stored.length,
      });
      pieces.push(stored);
      at += stored.length;
    }
    b = e;
  }
  return { hashes, entries, pieces, objectBytes: at };
}
