/**
 * The file driver on a real filesystem: volumes are sparse files of their
 * size; data written to a volume survives snapshot → volume from the
 * snapshot → read; copies are independent and stay sparse; every
 * operation can be repeated (what crash recovery does).
 */
import { mkdtempSync } from 'node:fs';
import { open, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Coordination } from '../../src/coordination/locks.ts';
import { DriverError } from '../../src/drivers/driver.ts';
import { FileDriver } from '../../src/drivers/file.ts';

const GiB = 1024 ** 3;
const dir = mkdtempSync(join(tmpdir(), 'volstate-file-driver-'));
const driver = new FileDriver({ dir, coordination: new Coordination({ dir: join(dir, 'locks') }), capacityGb: 100 });

async function write(path: string, offset: number, text: string) {
  const f = await open(path, 'r+');
  await f.write(Buffer.from(text), 0, text.length, offset);
  await f.close();
}

async function read(path: string, offset: number, length: number): Promise<string> {
  const f = await open(path, 'r');
  const buf = Buffer.alloc(length);
  await f.read(buf, 0, length, offset);
  await f.close();
  return buf.toString();
}

describe('file driver', () => {
  it('creates a sparse file of the size, idempotently, and refuses another size for the same id', async () => {
    await driver.createVolume('v1', 2);
    await driver.createVolume('v1', 2);
    const s = await stat(driver.volumePath('v1'));
    expect(s.size).toBe(2 * GiB);
    expect(s.blocks * 512).toBeLessThan(1024 * 1024); // sparse: nothing written yet
    await expect(driver.createVolume('v1', 3)).rejects.toBeInstanceOf(DriverError);
  });

  it('keeps data through snapshot → volume from snapshot, and copies are independent', async () => {
    await driver.createVolume('src', 1);
    await write(driver.volumePath('src'), 0, 'first block');
    await write(driver.volumePath('src'), 700 * 1024 * 1024, 'far away');
    await driver.createSnapshot('snap', 'src');
    await write(driver.volumePath('src'), 0, 'CHANGED!!!!');

    await driver.createVolumeFromSnapshot('copy', 'snap', 2);
    const copy = driver.volumePath('copy');
    expect(await read(copy, 0, 11)).toBe('first block');
    expect(await read(copy, 700 * 1024 * 1024, 8)).toBe('far away');
    expect((await stat(copy)).size).toBe(2 * GiB);
    expect((await stat(copy)).blocks * 512).toBeLessThan(16 * 1024 * 1024); // still sparse

    await driver.cloneVolume('clone', 'src', 1);
    expect(await read(driver.volumePath('clone'), 0, 11)).toBe('CHANGED!!!!');

    await driver.revertToSnapshot('src', 'snap');
    expect(await read(driver.volumePath('src'), 0, 11)).toBe('first block');
    expect((await stat(driver.volumePath('src'))).size).toBe(1 * GiB);
    await expect(driver.cloneVolume('too-small', 'copy', 1)).rejects.toThrow(/smaller than its source/);
  });

  it('extends (never shrinks), deletes idempotently, and reports thin capacity', async () => {
    await driver.createVolume('grow', 1);
    await driver.extendVolume('grow', 3);
    await driver.extendVolume('grow', 3);
    expect((await stat(driver.volumePath('grow'))).size).toBe(3 * GiB);
    await expect(driver.extendVolume('grow', 2)).rejects.toThrow(/cannot shrink/);
    await expect(driver.extendVolume('missing', 2)).rejects.toBeInstanceOf(DriverError);
    const before = await driver.capacity();
    await driver.deleteVolume('grow');
    await driver.deleteVolume('grow');
    const after = await driver.capacity();
    expect(after.totalGb).toBe(100);
    expect(after.freeGb - before.freeGb).toBe(3);
  });

  it('gives connection info pointing at the file', async () => {
    await driver.createVolume('attach', 1);
    const info = await driver.initializeConnection('attach', { host: 'h1' });
    expect(info).toMatchObject({ driver_volume_type: 'file', data: { device_path: driver.volumePath('attach') } });
    await expect(driver.initializeConnection('nope', {})).rejects.toBeInstanceOf(DriverError);
  });

  it("counts the volumes already there once, keeps its count by its own operations, and sees another node's at a recount", async () => {
    const shared = mkdtempSync(join(tmpdir(), 'volstate-file-capacity-'));
    const coordination = new Coordination({ dir: join(shared, 'locks') });
    const a = new FileDriver({ dir: shared, coordination, capacityGb: 100, recountMs: 0 });
    await a.createVolume('x', 4);
    await a.createVolume('x', 4); // repeated by recovery: counted once
    await a.cloneVolume('y', 'x', 6);
    await a.extendVolume('y', 7);
    expect(await a.capacity()).toEqual({ totalGb: 100, freeGb: 89 });
    // A second node on the same directory counts what is there when it starts.
    const b = new FileDriver({ dir: shared, coordination, capacityGb: 100, recountMs: 0 });
    expect(await b.capacity()).toEqual({ totalGb: 100, freeGb: 89 });
    // Its changes reach the first node at the first node's next recount, not before.
    await b.deleteVolume('x');
    await b.deleteVolume('x');
    await b.createVolume('z', 20);
    expect((await b.capacity()).freeGb).toBe(73);
    expect((await a.capacity()).freeGb).toBe(89);
    await a.recount();
    expect((await a.capacity()).freeGb).toBe(73);
    // A file appearing under another name than a volume's does not count.
    await writeFile(join(shared, 'volumes', 'z.img.tmp-0000'), 'partial');
    await a.recount();
    expect((await a.capacity()).freeGb).toBe(73);
    await Promise.all([a.close(), b.close()]);
  });
});
