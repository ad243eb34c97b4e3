/**
 * The posix backup store on a real directory: a full backup, an
 * incremental one over it, restores of both compared byte for byte, a
 * corrupted object caught, a crashed backup resumed without rewriting what
 * it had written, and a sparse volume costing nothing.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultContainer, objectPrefix, PosixBackupStore, type BackupIdentity } from '../../src/backup/posix.ts';
import type { BlockSource, BlockTarget } from '../../src/drivers/driver.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const root = mkdtempSync(join(tmpdir(), 'volstate-backup-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function sourceOf(data: Buffer): BlockSource {
  return {
    size: data.length,
    read: async (offset, length) => Buffer.from(data.subarray(offset, offset + length)),
    close: async () => {},
  };
}

/** A target that starts full of junk: a restore must leave nothing of it. */
function targetOf(size: number): BlockTarget & { data: Buffer } {
  const data = Buffer.alloc(size, 0xee);
  return {
    data,
    size,
    zero: async () => void data.fill(0),
    write: async (offset, chunk) => void chunk.copy(data, offset),
    flush: async () => {},
    close: async () => {},
  };
}

let n = 0;
function identity(parent?: BackupIdentity): BackupIdentity {
  const id = `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
  const volumeId = 'aaaaaaaa-0000-4000-8000-000000000001';
  const createdAt = new Date();
  return {
    id,
    volumeId,
    name: `b${n}`,
    description: null,
    createdAt,
    parentId: parent?.id ?? null,
    container: defaultContainer(id),
    prefix: objectPrefix(volumeId, id, createdAt),
  };
}

/** 8 MiB: random data in a few places (incompressible) and text (compressible), zeros elsewhere. */
function volumeData(): Buffer {
  const data = Buffer.alloc(8 * MiB);
  randomBytes(300 * KiB).copy(data, 100 * KiB);
  randomBytes(64 * KiB).copy(data, 5 * MiB);
  Buffer.from('volstate '.repeat(40_000)).copy(data, 2 * MiB + 7);
  return data;
}

const objectFiles = (b: BackupIdentity) => readdirSync(join(root, b.container)).filter((f) => f.startsWith(b.prefix) && /-\d{5}$/.test(f));

// Pieces of 256 KiB: a chunk's object holds several.
describe.for(['zstd', 'zlib'] as const)('the posix backup store (%s)', (compression) => {
  const store = new PosixBackupStore({ root, chunkBytes: 1 * MiB, blockBytes: 32 * KiB, pieceBytes: 256 * KiB, compression });
  const v1 = volumeData();
  const full = identity();
  const v2 = Buffer.from(v1);
  const incr = identity(full);

  it('restores a full backup byte for byte, storing no zero block', async () => {
    const result = await store.backup(full, sourceOf(v1), undefined);
    expect(result.resumedChunks).toBe(0);
    // Data lies in under 800 KiB of the 8 MiB, compressible text included: the store holds less.
    expect(result.storedBytes).toBeLessThan(800 * KiB);
    expect(result.objectCount).toBe(objectFiles(full).length);
    // One object per chunk with data: chunks 0, 2 and 5 of 1 MiB.
    expect(objectFiles(full).map((f) => f.slice(-5))).toEqual(['00001', '00003', '00006']);
    const target = targetOf(v1.length);
    await store.restore([full], target);
    expect(target.data.equals(v1)).toBe(true);
  });

  it('an incremental backup stores only the changed blocks, and its chain restores the new data', async () => {
    // About 10% of the blocks change: new data, and data that becomes zeros.
    for (let b = 0; b < 26; b++) randomBytes(32 * KiB).copy(v2, (b * 9 + 10) * 32 * KiB);
    v2.fill(0, 100 * KiB, 200 * KiB);
    const result = await store.backup(incr, sourceOf(v2), full);
    expect(result.storedBytes).toBeLessThan(27 * 32 * KiB + 4 * KiB);
    expect(result.storedBytes).toBeGreaterThanOrEqual(26 * 32 * KiB);
    const target = targetOf(v2.length);
    await store.restore([full, incr], target);
    expect(target.data.equals(v2)).toBe(true);
    // The full backup alone still gives the old data.
    const old = targetOf(v1.length);
    await store.restore([full], old);
    expect(old.data.equals(v1)).toBe(true);
  });

  it('a corrupted object fails the restore, naming it, before a wrong byte is taken for data', async () => {
    const victim = identity();
    await store.backup(victim, sourceOf(v1), undefined);
    const file = join(root, victim.container, objectFiles(victim)[0]!);
    const bytes = readFileSync(file);
    const middle = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0x01, middle);
    writeFileSync(file, bytes);
    await expect(store.restore([victim], targetOf(v1.length))).rejects.toThrow(/corrupt: its SHA-256 does not match/);
  });

  it('a backup stopped part way resumes after the chunks it wrote, without writing them again', async () => {
    const b = identity();
    let chunks = 0;
    const stop = new Error('the worker died');
    await expect(
      store.backup(b, sourceOf(v1), undefined, {
        check: async () => {
          if (++chunks === 4) throw stop;
        },
      }),
    ).rejects.toBe(stop);
    const before = new Map(objectFiles(b).map((f) => [f, statSync(join(root, b.container, f)).mtimeMs]));
    expect(before.size).toBeGreaterThan(0);
    const result = await store.backup(b, sourceOf(v1), undefined);
    expect(result.resumedChunks).toBe(3);
    for (const [f, mtime] of before) expect(statSync(join(root, b.container, f)).mtimeMs).toBe(mtime);
    const target = targetOf(v1.length);
    await store.restore([b], target);
    expect(target.data.equals(v1)).toBe(true);
  });

  it('a volume of zeros is backed up with no object at all', async () => {
    const b = identity();
    const hole: BlockSource = { size: 64 * MiB, read: async () => null, close: async () => {} };
    const result = await store.backup(b, hole, undefined);
    expect(result.objectCount).toBe(0);
    const target = targetOf(64 * MiB);
    await store.restore([b], target);
    expect(target.data.equals(Buffer.alloc(64 * MiB))).toBe(true);
  });

  it('refuses an incremental over a smaller parent, as Cinder does', async () => {
    const bigger = sourceOf(Buffer.concat([v1, Buffer.alloc(1 * MiB)]));
    await expect(store.backup(identity(full), bigger, full)).rejects.toThrow(/Volume size increased since the last backup/);
  });
});
