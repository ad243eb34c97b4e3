/**
 * Resource representations, as real Cinder sends them (key order too),
 * by microversion. See ../shared/reference/cinder-api.md §5: the `cinder`
 * CLI cannot do without volume `id`, `name`, `metadata` and `attachments`.
 *
 * Bodies carry exactly Cinder's fields: Tempest validates every answer
 * against Cinder's response schemas, which forbid unknown properties.
 * volstate's own facts travel where no schema looks: the `ETag` (the row's
 * version) and `Volstate-State` (the full machine state) headers of a
 * single resource's answer, and the `/transitions` resources.
 */
import type { AttachmentRecord } from '../services/attachments.ts';
import type { BackupRecord } from '../services/backups.ts';
import type { TransitionRecord } from '../services/resources.ts';
import type { SnapshotRecord } from '../services/snapshots.ts';
import type { VolumeRecord } from '../services/volumes.ts';
import { MODELS } from '../../machines/index.ts';
import type { FastifyReply } from 'fastify';
import type { ViewContext } from './context.ts';

/** volstate's own facts of one resource: its version (the ETag, for If-Match) and its full machine state. */
export function stateHeaders(reply: FastifyReply, row: { version: number; state: string }): void {
  void reply.header('ETag', `"${row.version}"`);
  void reply.header('Volstate-State', row.state);
}

/** Cinder's timestamp format: `2026-11-21T07:55:11.000000`, UTC, no zone suffix. */
export function timestamp(d: Date | null | undefined): string | null {
  if (!d) return null;
  return `${d.toISOString().slice(0, 23)}000`;
}

function links(ctx: ViewContext, collection: string, id: string) {
  const p = ctx.urlProject ? `/${ctx.urlProject}` : '';
  return [
    { rel: 'self', href: `${ctx.base}/v3${p}/${collection}/${id}` },
    { rel: 'bookmark', href: `${ctx.base}${p}/${collection}/${id}` },
  ];
}

/**
 * The status a client is shown: Cinder's `backing-up` while a backup of an
 * available or in-use volume (or of a snapshot) is being made. The machine
 * state stays what it is — the backup holds a lease, not the status — so
 * the volume can still be attached, detached or extended meanwhile
 * (docs/backups.md); `Volstate-State` tells the machine state.
 */
function shownStatus(status: string, backups: number): string {
  return backups > 0 && (status === 'available' || status === 'in-use') ? 'backing-up' : status;
}

/** null until the resource changed after its creation, then the latest change. */
function updatedAt(row: { updated_at: Date | null; state_updated_at: Date; version: number }): string | null {
  const changes = [row.updated_at, row.version > 1 ? row.state_updated_at : null].filter((d): d is Date => d !== null);
  if (changes.length === 0) return null;
  return timestamp(new Date(Math.max(...changes.map((d) => d.getTime()))));
}

/**
 * A volume's metadata as Cinder shows it: the client's keys, plus the
 * read-only flag (`"readonly": "True"`) once os-update_readonly_flag set it
 * (Cinder's visible admin metadata).
 */
function visibleMetadata(v: VolumeRecord): Record<string, string> {
  if (v.readonly === null) return v.metadata;
  return { ...v.metadata, readonly: v.readonly ? 'True' : 'False' };
}

export function volumeSummary(v: VolumeRecord, ctx: ViewContext) {
  return { id: v.id, name: v.name, links: links(ctx, 'volumes', v.id) };
}

/** An attached attachment as a volume lists it (cinder show needs attachment_id and server_id). */
function volumeAttachment(a: AttachmentRecord) {
  return {
    id: a.volume_id,
    attachment_id: a.id,
    volume_id: a.volume_id,
    server_id: a.instance_uuid,
    host_name: a.host_name,
    device: a.mountpoint,
    attached_at: timestamp(a.attached_at),
  };
}

/**
 * `attached`: the volume's attached attachments. `get`: the GET form, with
 * the `os-vol-*` attributes a POST response lacks.
 */
export function volumeDetail(v: VolumeRecord, ctx: ViewContext, attached: AttachmentRecord[] = [], get = true) {
  const status = shownStatus(MODELS.volume.index.statusOf(v.state), v.backups);
  const view: Record<string, unknown> = {
    id: v.id,
    status,
    size: v.size,
    availability_zone: v.availability_zone,
    created_at: timestamp(v.created_at),
    updated_at: updatedAt(v),
    name: v.name,
    description: v.description,
    volume_type: v.volume_type,
    snapshot_id: v.snapshot_id,
    source_volid: v.source_volid,
    metadata: visibleMetadata(v),
    links: links(ctx, 'volumes', v.id),
    user_id: v.user_id,
    bootable: String(v.bootable),
    encrypted: v.encrypted,
    replication_status: null,
    consistencygroup_id: v.consistencygroup_id,
    multiattach: v.multiattach,
    attachments: attached.map(volumeAttachment),
    migration_status: null,
  };
  if (ctx.mv >= 13) view.group_id = v.group_id;
  if (ctx.mv >= 21 && ctx.isAdmin) view.provider_id = null;
  if (ctx.mv >= 48) {
    view.shared_targets = ctx.mv >= 69 ? null : true;
    view.service_uuid = null;
  }
  if (ctx.mv >= 61 && ctx.isAdmin) view.cluster_name = null;
  if (ctx.mv >= 63) view.volume_type_id = v.volume_type_id;
  if (ctx.mv >= 65) view.consumes_quota = true;
  if (get) {
    view['os-vol-tenant-attr:tenant_id'] = v.project_id;
    view['os-vol-mig-status-attr:migstat'] = null;
    view['os-vol-mig-status-attr:name_id'] = null;
    // Any node serves any volume (every node serves the same backends): the host is the answering node's, the backend the volume's.
    view['os-vol-host-attr:host'] = ctx.isAdmin ? ctx.volumeHost(v.backend) : null;
  }
  return view;
}

export function snapshotDetail(n: SnapshotRecord, ctx: ViewContext, get = true) {
  const status = shownStatus(MODELS.snapshot.index.statusOf(n.state), n.backups);
  const view: Record<string, unknown> = {
    id: n.id,
    created_at: timestamp(n.created_at),
    updated_at: updatedAt(n),
    name: n.name,
    description: n.description,
    volume_id: n.volume_id,
    status,
    size: n.size,
    metadata: n.metadata,
  };
  if (ctx.mv >= 14) view.group_snapshot_id = n.group_snapshot_id;
  if (ctx.mv >= 41) view.user_id = n.user_id;
  if (ctx.mv >= 65) view.consumes_quota = true;
  if (get) {
    view['os-extended-snapshot-attributes:project_id'] = n.project_id;
    // What os-update_snapshot_status reported, else what the status says.
    const reported = n.operation?.['progress'];
    view['os-extended-snapshot-attributes:progress'] = typeof reported === 'string' ? reported : status === 'available' ? '100%' : '0%';
  }
  return view;
}

export function snapshotSummary(n: SnapshotRecord, ctx: ViewContext) {
  const { id, created_at, updated_at, name, description, volume_id, status, size, metadata } = snapshotDetail(n, ctx, false);
  return { id, created_at, updated_at, name, description, volume_id, status, size, metadata };
}

/** Attachment detail (cinder-api.md §4.5): unset times are "", attach_mode is "null" until a connector. */
export function attachmentDetail(a: AttachmentRecord) {
  return {
    id: a.id,
    status: MODELS.attachment.index.statusOf(a.state),
    instance: a.instance_uuid,
    volume_id: a.volume_id,
    attached_at: timestamp(a.attached_at) ?? '',
    detached_at: timestamp(a.detached_at) ?? '',
    attach_mode: a.attach_mode ?? 'null',
    connection_info: a.connection_info ?? {},
  };
}

export function attachmentSummary(a: AttachmentRecord) {
  return { id: a.id, status: MODELS.attachment.index.statusOf(a.state), instance: a.instance_uuid, volume_id: a.volume_id };
}

export function transitionView(t: TransitionRecord) {
  return {
    version: t.version,
    from: t.from_state,
    event: t.event,
    to: t.to_state,
    actor: t.actor,
    request_id: t.request_id,
    at: timestamp(t.at),
  };
}

/** `<collection>_links` with the next page, when there may be one. */
export function nextLink(ctx: ViewContext, collection: string, path: string, query: Record<string, unknown>, lastId: string) {
  const p = ctx.urlProject ? `/${ctx.urlProject}` : '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (typeof v === 'string' && k !== 'marker') params.set(k, v);
  params.set('marker', lastId);
  return { [`${collection}_links`]: [{ rel: 'next', href: `${ctx.base}/v3${p}/${path}?${params.toString()}` }] };
}

/**
 * Backup detail (Tempest's common_show_backup, which allows nothing else):
 * the step's progress travels in the `Volstate-Progress` header instead.
 */
export function backupDetail(b: BackupRecord, ctx: ViewContext) {
  const view: Record<string, unknown> = {
    id: b.id,
    status: MODELS.backup.index.statusOf(b.state),
    size: b.size,
    object_count: b.object_count,
    availability_zone: b.availability_zone,
    container: b.container,
    created_at: timestamp(b.created_at),
    updated_at: updatedAt(b),
    name: b.name,
    description: b.description,
    fail_reason: b.fail_reason,
    volume_id: b.volume_id,
    links: links(ctx, 'backups', b.id),
    is_incremental: b.parent_id !== null,
    has_dependent_backups: b.dependents > 0,
    snapshot_id: b.snapshot_id,
    data_timestamp: timestamp(b.data_timestamp),
  };
  if (ctx.mv >= 18 && ctx.isAdmin) view['os-backup-project-attr:project_id'] = b.project_id;
  if (ctx.mv >= 43) view.metadata = b.metadata;
  if (ctx.mv >= 56 && ctx.isAdmin) view.user_id = b.user_id;
  return view;
}

export function backupSummary(b: BackupRecord, ctx: ViewContext) {
  return { id: b.id, name: b.name, links: links(ctx, 'backups', b.id) };
}
