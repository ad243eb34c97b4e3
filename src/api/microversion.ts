/**
 * Microversions, as real Cinder negotiates them: `OpenStack-API-Version:
 * volume 3.NN` (or `volume latest`); absent means 3.0; outside [min, max]
 * is 406; the chosen version is echoed back with `Vary`.
 */
import { ApiError } from '../errors.ts';

export const MIN_VERSION = 0; // 3.0
export const MAX_VERSION = 70; // 3.70, what cinderclient 9.1 and Cinder 21 (Zed) speak
export const VERSION_HEADER = 'openstack-api-version';

/** A v3 microversion by its minor number: 3.27 → 27. */
export type Microversion = number;

export const format = (mv: Microversion) => `3.${mv}`;

export function negotiate(header: string | string[] | undefined): Microversion {
  const value = (Array.isArray(header) ? header.join(',') : (header ?? '')).trim();
  if (value === '') return MIN_VERSION;
  // Several services may be named: "volume 3.50, compute 2.1".
  const ours = value
    .split(',')
    .map((p) => p.trim().split(/\s+/))
    .find(([service]) => service?.toLowerCase() === 'volume');
  if (!ours) throw new ApiError('InvalidVersionHeader', { value: JSON.stringify(value) });
  const version = ours[1] ?? '';
  if (version.toLowerCase() === 'latest') return MAX_VERSION;
  const m = /^(\d+)\.(\d+)$/.exec(version);
  if (!m) throw new ApiError('InvalidVersionHeader', { value: JSON.stringify(value) });
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major !== 3 || minor < MIN_VERSION || minor > MAX_VERSION) {
    throw new ApiError('VersionNotSupported', { version, min: format(MIN_VERSION), max: format(MAX_VERSION) });
  }
  return minor;
}

/** The version document of GET /, /v3 and /v3/. */
export function versionDocument(base: string) {
  return {
    versions: [
      {
        id: 'v3.0',
        status: 'CURRENT',
        version: format(MAX_VERSION),
        min_version: format(MIN_VERSION),
        updated: '2022-08-31T00:00:00Z',
        links: [
          { rel: 'describedby', type: 'text/html', href: 'https://docs.openstack.org/' },
          { rel: 'self', href: `${base}/v3/` },
        ],
        'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.volume+json;version=3' }],
      },
    ],
  };
}
