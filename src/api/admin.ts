/**
 * Cinder's discovery and admin read APIs, from what volstate really has:
 *
 *   GET /os-services[?host=&binary=]     the workers, as Cinder services (src/services/hosts.ts)
 *   PUT /os-services/{enable,disable,disable-log-reason}   drain a host's workers, or let them work
 *   PUT /os-services/{freeze,thaw}       400: volstate has no replication to freeze
 *   GET /os-hosts, /os-hosts/{host}      the services by host; a backend host's usage per project
 *   GET /scheduler-stats/get_pools       the one backend's one pool, as each live host serves it
 *   GET /capabilities/{host}             what the backend can do
 *   GET /os-availability-zone            the one zone, nova
 *   GET /extensions                      the API extensions volstate answers
 *
 * All but the zones and extensions are admin-only, as Cinder's policies
 * have them. Every live host serves the same backend (the nodes of a
 * deployment share their storage), so a pool is named after each host:
 * `host@backend#backend`, the same string a volume's
 * `os-vol-host-attr:host` shows.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { capabilitiesOf, DRIVER_VERSION, protocolOf, vendorOf, type Backend, type Backends } from '../drivers/backends.ts';
import { ApiError } from '../errors.ts';
import { BINARIES, type Binary, type HostService, type ServiceRow } from '../services/hosts.ts';
import { requireAdmin } from './context.ts';
import { invalid, show } from './parse.ts';
import { ActionBody, ProjectParams, Query } from './schemas.ts';
import { timestamp } from './views.ts';

export interface AdminRoutesOptions {
  hosts: HostService;
  backends: Backends;
}

/** Cinder's host string of a service: the volume service names its backend. */
function serviceHost(row: ServiceRow, backend: string): string {
  return row.binary === 'cinder-volume' ? `${row.host}@${backend}` : row.host;
}

/** `host@backend#pool` or `host@backend` or `host` → the bare host. */
const bareHost = (host: string) => host.split('@')[0]!.split('#')[0]!;

/** The services as Cinder lists them: a scheduler per host, a volume service per host and backend. */
function expand(rows: ServiceRow[], backends: Backends): { row: ServiceRow; host: string; backend?: Backend }[] {
  return rows.flatMap((row) =>
    row.binary === 'cinder-volume'
      ? backends.list.map((b) => ({ row, host: serviceHost(row, b.name), backend: b }))
      : [{ row, host: serviceHost(row, '') }],
  );
}

export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (app, { hosts, backends }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const services = async () => expand(await hosts.services(), backends);

  r.get('/os-services', { schema: { params: ProjectParams, querystring: Query } }, async (req) => {
    requireAdmin(req, 'volume_extension:services:index');
    const { host, binary } = req.query;
    const rows = (await services()).filter(
      ({ row: s }) => (binary === undefined || s.binary === binary) && (host === undefined || bareHost(host) === s.host),
    );
    return {
      services: rows.map(({ row: s, host: name }) => ({
        binary: s.binary,
        host: name,
        zone: 'nova',
        status: s.disabled ? 'disabled' : 'enabled',
        state: s.up ? 'up' : 'down',
        updated_at: timestamp(s.heartbeat_at),
        disabled_reason: s.disabled_reason,
        ...(req.mv >= 7 ? { cluster: null } : {}),
        ...(s.binary === 'cinder-volume' ? { replication_status: 'disabled', active_backend_id: null, frozen: false } : {}),
        ...(req.mv >= 49 && s.binary === 'cinder-volume' ? { backend_state: s.up ? 'up' : 'down' } : {}),
      })),
    };
  });

  r.put(
    '/os-services/:action',
    { schema: { params: Type.Object({ action: Type.String(), project_id: Type.Optional(Type.String()) }), body: ActionBody } },
    async (req) => {
      requireAdmin(req, 'volume_extension:services:update');
      const { action } = req.params;
      const body = req.body;
      const host = body.host;
      if (action === 'freeze' || action === 'thaw') {
        throw new ApiError('InvalidInput', { reason: `volstate has no replicated backend to ${action}: ${action} is not supported.` });
      }
      if (!['enable', 'disable', 'disable-log-reason'].includes(action)) throw new ApiError('NotFound');
      if (typeof host !== 'string' || host === '') throw invalid('host', host ?? 'None', 'host is required.');
      const binary = body.binary ?? body.service;
      if (typeof binary !== 'string' || !(BINARIES as readonly string[]).includes(binary)) {
        throw new ApiError('ServiceNotFound', { host, binary: binary === undefined || binary === null ? 'None' : show(binary) });
      }
      let reason: string | null = null;
      if (action === 'disable-log-reason') {
        if (typeof body.disabled_reason !== 'string' || body.disabled_reason.trim() === '' || body.disabled_reason.length > 255) {
          throw invalid('disabled_reason', body.disabled_reason ?? 'None', 'a reason of 1 to 255 characters is required.');
        }
        reason = body.disabled_reason;
      }
      const disabled = action !== 'enable';
      if (!(await hosts.setDisabled(bareHost(host), binary as Binary, disabled, reason)))
        throw new ApiError('ServiceNotFound', { host, binary });
      return {
        disabled,
        status: disabled ? 'disabled' : 'enabled',
        host,
        service: binary,
        binary,
        ...(action === 'disable' ? {} : { disabled_reason: reason }),
      };
    },
  );

  r.get('/os-hosts', { schema: { params: ProjectParams, querystring: Query } }, async (req) => {
    requireAdmin(req, 'volume_extension:hosts');
    return {
      hosts: (await services()).map(({ row: s, host }) => ({
        host_name: host,
        service: s.binary,
        zone: 'nova',
        'service-status': s.up ? 'available' : 'unavailable',
        'service-state': s.disabled ? 'disabled' : 'enabled',
        'last-update': timestamp(s.heartbeat_at),
      })),
    };
  });

  r.get(
    '/os-hosts/:host',
    { schema: { params: Type.Object({ host: Type.String(), project_id: Type.Optional(Type.String()) }) } },
    async (req) => {
      requireAdmin(req, 'volume_extension:hosts');
      const name = req.params.host;
      const service = (await services()).find(({ row: s, host }) => s.binary === 'cinder-volume' && host === name && !s.disabled);
      if (!service) throw new ApiError('HostNotFound', { host: name });
      // Every host serves the one shared backend: its usage is the backend's.
      const { volumes: vols, snapshots: snaps } = await hosts.usageByProject();
      const projects = [...new Set([...vols, ...snaps].map((u) => u.project_id))].sort();
      const row = (project: string, v?: { count: number; gb: number }, n?: { count: number; gb: number }) => ({
        resource: {
          host: name,
          project,
          volume_count: String(v?.count ?? 0),
          total_volume_gb: String(v?.gb ?? 0),
          snapshot_count: String(n?.count ?? 0),
          total_snapshot_gb: String(n?.gb ?? 0),
        },
      });
      const sum = (us: { count: number; gb: number }[]) =>
        us.reduce((a, u) => ({ count: a.count + u.count, gb: a.gb + u.gb }), { count: 0, gb: 0 });
      return {
        host: [
          row('(total)', sum(vols), sum(snaps)),
          ...projects.map((p) =>
            row(
              p,
              vols.find((u) => u.project_id === p),
              snaps.find((u) => u.project_id === p),
            ),
          ),
        ],
      };
    },
  );

  r.get('/scheduler-stats/get_pools', { schema: { params: ProjectParams, querystring: Query } }, async (req) => {
    requireAdmin(req, 'scheduler_extension:scheduler_stats:get_pools');
    const detail = req.query.detail !== undefined && /^(1|t|true|on|y|yes)$/i.test(req.query.detail);
    const volumeServices = (await services()).filter(({ row: s }) => s.binary === 'cinder-volume' && s.up);
    const pool = (host: string, b: Backend) => `${host}#${b.name}`;
    if (!detail) return { pools: volumeServices.map(({ host, backend }) => ({ name: pool(host, backend!) })) };
    const byBackend = await hosts.allocatedGb(backends.default.name);
    const capacities = new Map(await Promise.all(backends.list.map(async (b) => [b.name, await b.driver.capacity()] as const)));
    const now = timestamp(new Date());
    return {
      pools: volumeServices.map(({ host, backend }) => ({
        name: pool(host, backend!),
        capabilities: {
          ...capabilitiesOf(backend!, capacities.get(backend!.name)!, byBackend.get(backend!.name) ?? 0),
          timestamp: now,
          updated: now,
        },
      })),
    };
  });

  r.get(
    '/capabilities/:host',
    { schema: { params: Type.Object({ host: Type.String(), project_id: Type.Optional(Type.String()) }) } },
    async (req) => {
      requireAdmin(req, 'volume_extension:capabilities');
      const host = bareHost(req.params.host);
      const named = /@([^#]+)/.exec(req.params.host)?.[1];
      const found = (await services()).find(
        ({ row: s, backend }) => s.binary === 'cinder-volume' && s.host === host && (named === undefined || backend!.name === named),
      );
      if (!found) throw new ApiError('HostNotFound', { host: req.params.host });
      const b = found.backend!;
      return {
        namespace: `OS::Storage::Capabilities::${req.params.host}`,
        vendor_name: vendorOf(b),
        volume_backend_name: b.name,
        pool_name: null,
        driver_version: DRIVER_VERSION,
        storage_protocol: protocolOf(b),
        display_name: null,
        description: null,
        visibility: null,
        replication_targets: [],
        properties: {
          thin_provisioning: {
            title: 'Thin Provisioning',
            description: 'Volumes are thin: space is used as data is written.',
            type: 'boolean',
          },
          multiattach: { title: 'Multiattach', description: 'A volume may be attached to several servers.', type: 'boolean' },
        },
      };
    },
  );

  r.get('/os-availability-zone', { schema: { params: ProjectParams } }, async () => ({
    availabilityZoneInfo: [{ zoneName: 'nova', zoneState: { available: true } }],
  }));

  r.get('/extensions', { schema: { params: ProjectParams } }, async () => ({ extensions: EXTENSIONS }));
};

/** The legacy API extensions volstate answers (the `os-*` fields and routes it has). */
const EXTENSIONS = [
  ['AdminActions', 'os-admin-actions', 'Enable admin actions.'],
  ['VolumeActions', 'os-volume-actions', 'Enable volume actions.'],
  ['VolumeHostAttribute', 'os-vol-host-attr', 'Expose host as an attribute of a volume.'],
  ['VolumeTenantAttribute', 'os-vol-tenant-attr', 'Expose the internal project_id as an attribute of a volume.'],
  ['VolumeMigStatusAttribute', 'os-vol-mig-status-attr', 'Expose migration_status as an attribute of a volume.'],
  ['ExtendedSnapshotAttributes', 'os-extended-snapshot-attributes', 'Extended attributes for snapshots.'],
  ['SnapshotActions', 'os-snapshot-actions', 'Enable snapshot manager actions.'],
  ['Services', 'os-services', 'Services support.'],
  ['Hosts', 'os-hosts', 'Admin-only host administration.'],
  ['Scheduler_stats', 'scheduler-stats', 'Scheduler stats support.'],
  ['Capabilities', 'capabilities', 'Capabilities support.'],
  ['Availability_zones', 'os-availability-zone', 'Describe Availability Zones.'],
].map(([name, alias, description]) => ({
  name,
  alias,
  description,
  namespace: `https://docs.openstack.org/volume/ext/${alias}/api/v1`,
  updated: '2026-12-01T00:00:00+00:00',
  links: [],
}));
