/**
 * A worker's idle() means everything queued before it is done, including a
 * row whose step failed and was handed back to wait out its backoff. The
 * storm test once checked its rows at rest while such a row (a delete)
 * was still waiting: idle() had resolved on a claim round that found
 * nothing only because the row's not_before was still ahead.
 */
import { describe, expect, it } from 'vitest';
import { Backends } from '../../src/drivers/backends.ts';
import { FakeDriver } from '../../src/drivers/fake.ts';
import { useApp } from '../helpers/app.ts';

/** A backend whose first create fails as a bug or an outage does (not a DriverError): the row is handed back with a backoff. */
class FailsOnce extends FakeDriver {
  failed = 0;
  override async createVolume(id: string, sizeGb: number): Promise<void> {
    if (this.failed++ === 0) throw new Error('not a backend failure: the step is handed back');
    return super.createVolume(id, sizeGb);
  }
}

const driver = new FailsOnce();
const t = useApp({ backends: Backends.single(driver) });

describe("a worker's idle()", () => {
  it('waits for a row handed back to wait out its backoff: after it, the volume is available', async () => {
    const res = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
    expect(res.status).toBe(202);
    const id = (res.body as { volume: { id: string } }).volume.id;
    await t.worker!.idle();
    expect(driver.failed).toBe(2);
    const [row] = await t.db.sql<{ state: string; owner: string | null }[]>`
      SELECT state, owner FROM resource_states WHERE resource_type = 'volume' AND resource_id = ${id}`;
    expect(row).toEqual({ state: 'available', owner: null });
  });
});
