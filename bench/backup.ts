/**
 * `npm run bench:backup`: MiB/s of the posix backup store on a 1 GiB
 * volume: a full backup, an incremental one after 10% of its blocks
 * changed, and a restore of the chain, beside what this machine's disk and
 * CPU allow for the same bytes: `cp` of the file, and `zstd -1` of it.
 *
 * The volume (BENCH_BACKUP_MIB, default 1024), per 32 KiB block by a hash
 * of its index: 20% never written (holes, as a thin volume has), 30%
 * random bytes (what compressed or encrypted data looks like), 50% text
 * (compresses about 4:1). Every contender reads the file from the page
 * cache (each is run once to warm it, then timed BENCH_BACKUP_RUNS times,
 * default 3, the median printed); the backup fsyncs what it writes, so
 * `cp` and `zstd` are shown with and without a `sync` of their output.
 * MiB/s is of the volume's size, for every row.
 *
 * The goals (issue 21): a full backup ≥ 0.7 × `zstd -1` of the same file
 * (without sync), and an incremental ≥ 5 × faster than the full one.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultContainer, objectPrefix, PosixBackupStore, type BackupIdentity, type Compression } from '../src/backup/posix.ts';
import type { BlockSource, BlockTarget } from '../src/drivers/driver.ts';
import { median } from './stats.ts';

const MIB = 1024 * 1024;
const BLOCK = 32 * 1024;
const SIZE_MIB = Number(process.env.BENCH_BACKUP_MIB ?? 1024);
const RUNS = Number(process.env.BENCH_BACKUP_RUNS ?? 3);
const SIZE = SIZE_MIB * MIB;
const dir = mkdtempSync(join(tmpdir(), 'volstate-bench-backup-'));
const volume = join(dir, 'volume.img');

/** The block kinds, by a hash of the index: 0–1 hole, 2–4 random, 5–9 text. */
const kindOf = (i: number) => (Math.imul(i, 2654435761) >>> 0) % 10;

/** 1,024 distinct blocks of text; each use gets a random stamp, so no two blocks are equal. */
function textPool(): Buffer[] {
  const words =
    'volume snapshot backup attach detach extend available in-use error creating deleting the of and a to in is that for on with as'.split(
      ' ',
    );
  const pool: Buffer[] = [];
  for (let p = 0; p < 1024; p++) {
    let s = '';
    while (s.length < BLOCK) s += `${words[(p * 7 + s.length * 13) % words.length]}${s.length % 97 === 0 ? ` ${p}-${s.length}\n` : ' '}`;
    pool.push(Buffer.from(s.slice(0, BLOCK)));
  }
  return pool;
}

async function makeVolume(): Promise<void> {
  const pool = textPool();
  const f = await open(volume, 'w');
  await f.truncate(SIZE);
  for (let i = 0; i < SIZE / BLOCK; i++) {
    const k = kindOf(i);
    if (k < 2) continue;
    let block: Buffer;
    if (k < 5) block = randomBytes(BLOCK);
    else {
      block = Buffer.from(pool[i % pool.length]!);
      randomBytes(16).copy(block, (i * 64) % (BLOCK - 16));
    }
    await f.write(block, 0, BLOCK, i * BLOCK);
  }
  await f.close();
}

/** 10% of the blocks, spread over the volume, given new random bytes. */
async function changeTenPercent(): Promise<number> {
  const f = await open(volume, 'r+');
  const blocks = SIZE / BLOCK;
  let changed = 0;
  for (let i = 0; i < blocks; i++) {
    if ((Math.imul(i + 1, 40503) >>> 0) % 10 !== 0) continue;
    await f.write(randomBytes(BLOCK), 0, BLOCK, i * BLOCK);
    changed++;
  }
  await f.close();
  return changed;
}

/** The file driver's reading, on the bench's file. */
async function fileSource(path: string): Promise<BlockSource & { f: FileHandle }> {
  const f = await open(path, 'r');
  const size = (await f.stat()).size;
  return {
    f,
    size,
    read: async (offset, length, into) => {
      const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) got += (await f.read(buf, got, length - got, offset + got)).bytesRead;
      return buf;
    },
    close: () => f.close(),
  };
}

async function fileTarget(path: string): Promise<BlockTarget> {
  const f = await open(path, 'w+');
  return {
    size: SIZE,
    zero: async () => {
      await f.truncate(0);
      await f.truncate(SIZE);
    },
    write: async (offset, data) => {
      let put = 0;
      while (put < data.length) put += (await f.write(data, put, data.length - put, offset + put)).bytesWritten;
    },
    flush: () => f.sync(),
    close: () => f.close(),
  };
}

let n = 0;
function identity(parent?: BackupIdentity): BackupIdentity {
  const id = `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
  const volumeId = 'bbbbbbbb-0000-4000-8000-000000000001';
  const createdAt = new Date();
  return {
    id,
    volumeId,
    name: null,
    description: null,
    createdAt,
    parentId: parent?.id ?? null,
    container: defaultContainer(id),
    prefix: objectPrefix(volumeId, id, createdAt),
  };
}

/** Median seconds of `RUNS` timed runs after one to warm up. */
async function timed(run: () => Promise<void> | void): Promise<number> {
  await run();
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    await run();
    times.push((performance.now() - t) / 1000);
  }
  return median(times);
}

const sh = (cmd: string, args: string[]): void => void execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });

async function main(): Promise<void> {
  console.log(`bench:backup: a ${SIZE_MIB} MiB volume (20% holes, 30% random, 50% text), median of ${RUNS} warm runs, in ${dir}`);
  await makeVolume();
  const rows: [string, number, string?][] = [];
  const mibs = (s: number) => SIZE_MIB / s;

  const copy = join(dir, 'copy.img');
  const cp = await timed(() => sh('cp', ['--sparse=never', volume, copy]));
  const cpSync = await timed(() => {
    sh('cp', ['--sparse=never', volume, copy]);
    sh('sync', [copy]);
  });
  const zst = join(dir, 'volume.zst');
  const zstd = await timed(() => sh('zstd', ['-1', '-q', '-f', volume, '-o', zst]));
  const zstdSync = await timed(() => {
    sh('zstd', ['-1', '-q', '-f', volume, '-o', zst]);
    sh('sync', [zst]);
  });
  rmSync(copy);
  rows.push(['cp', mibs(cp)], ['cp + sync', mibs(cpSync)], ['zstd -1', mibs(zstd)], ['zstd -1 + sync', mibs(zstdSync)]);

  const full: Record<string, { seconds: number; stored: number; id: BackupIdentity }> = {};
  for (const compression of ['zstd', 'zlib', 'none'] as Compression[]) {
    const store = new PosixBackupStore({ root: join(dir, `store-${compression}`), compression });
    let id = identity();
    let stored = 0;
    const seconds = await timed(async () => {
      id = identity();
      const source = await fileSource(volume);
      stored = (await store.backup(id, source, undefined)).storedBytes;
      await source.close();
    });
    full[compression] = { seconds, stored, id };
    rows.push([`full backup (${compression})`, mibs(seconds), `stores ${(stored / MIB).toFixed(0)} MiB`]);
  }

  const changed = await changeTenPercent();
  const store = new PosixBackupStore({ root: join(dir, 'store-zstd'), compression: 'zstd' });
  const parent = full.zstd!.id;
  let incr = identity(parent);
  let incrStored = 0;
  const incrSeconds = await timed(async () => {
    incr = identity(parent);
    const source = await fileSource(volume);
    incrStored = (await store.backup(incr, source, parent)).storedBytes;
    await source.close();
  });
  rows.push([`incremental (zstd, ${changed} blocks changed)`, mibs(incrSeconds), `stores ${(incrStored / MIB).toFixed(0)} MiB`]);

  const restored = join(dir, 'restored.img');
  const restoreSeconds = await timed(async () => {
    const target = await fileTarget(restored);
    await store.restore([parent, incr], target);
    await target.close();
  });
  rows.push(['restore of full + incremental (zstd)', mibs(restoreSeconds)]);
  sh('cmp', ['-s', volume, restored]); // throws if the restore is not the volume, byte for byte

  const width = Math.max(...rows.map((r) => r[0].length));
  console.log(`\n${'contender'.padEnd(width)}  ${'MiB/s'.padStart(7)}`);
  for (const [name, v, note] of rows) console.log(`${name.padEnd(width)}  ${v.toFixed(0).padStart(7)}  ${note ?? ''}`);
  const fullZstd = mibs(full.zstd!.seconds);
  console.log(`\nfull backup (zstd) ÷ zstd -1:         ${(fullZstd / mibs(zstd)).toFixed(2)} × (goal ≥ 0.7)`);
  console.log(`full backup (zstd) ÷ zstd -1 + sync:  ${(fullZstd / mibs(zstdSync)).toFixed(2)} ×`);
  console.log(`full backup (zstd) ÷ cp + sync:       ${(fullZstd / mibs(cpSync)).toFixed(2)} ×`);
  console.log(`incremental ÷ full (zstd):            ${(full.zstd!.seconds / incrSeconds).toFixed(2)} × faster (goal ≥ 5)`);
  console.log(`the restore matched the volume byte for byte`);
}

main()
  .catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(dir, { recursive: true, force: true }));
