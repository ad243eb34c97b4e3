/**
 * VOLSTATE_BACKENDS: backends by name, each with the vendor and protocol it
 * reports (options after `;`), as get_pools and capabilities show them, so
 * that a volume type's extra specs (and Tempest's vendor_name and
 * storage_protocol) can match an operator's backends.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { Backends } from '../../src/drivers/backends.ts';
import { FakeDriver } from '../../src/drivers/fake.ts';
import { useApp, waitStatus } from '../helpers/app.ts';

const t = useApp({ backends: new Backends([{ name: 'gold', driver: new FakeDriver(), vendor: 'Acme', protocol: 'iSCSI' }]) });

describe('VOLSTATE_BACKENDS', () => {
  it('takes vendor= and protocol= options after the location, and refuses any other', () => {
    const config = loadConfig({ VOLSTATE_BACKENDS: 'gold:file:/srv/gold;vendor=Acme;protocol=iSCSI,iron:fake' });
    expect(config.backends).toEqual([
      { name: 'gold', driver: 'file', dir: '/srv/gold', vendor: 'Acme', protocol: 'iSCSI' },
      { name: 'iron', driver: 'fake', dir: expect.stringMatching(/iron$/) },
    ]);
    expect(() => loadConfig({ VOLSTATE_BACKENDS: 'gold:file;color=red' })).toThrow(ConfigError);
    expect(() => loadConfig({ VOLSTATE_BACKENDS: 'gold:file;color=red' })).toThrow(/vendor=<name> or protocol=<name>/);
  });

  it('reports them in get_pools and capabilities, and a type asking for them finds the backend', async () => {
    const pools = (await t.request('GET', '/v3/scheduler-stats/get_pools?detail=True')).body.pools as {
      name: string;
      capabilities: Record<string, unknown>;
    }[];
    expect(pools[0]!.capabilities).toMatchObject({ vendor_name: 'Acme', storage_protocol: 'iSCSI' });
    const host = pools[0]!.name.split('#')[0]!;
    expect((await t.request('GET', `/v3/capabilities/${encodeURIComponent(host)}`)).body).toMatchObject({
      vendor_name: 'Acme',
      storage_protocol: 'iSCSI',
    });
    const type = (
      await t.request('POST', '/v3/types', {
        volume_type: { name: 'acme', extra_specs: { vendor_name: 'Acme', storage_protocol: 'iSCSI' } },
      })
    ).body.volume_type;
    const made = await t.request('POST', '/v3/volumes', { volume: { size: 1, volume_type: type.id } });
    await waitStatus(t, 'volumes', made.body.volume.id, 'available');
  });
});
