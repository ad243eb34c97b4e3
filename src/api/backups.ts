/**
 * /v3[/{project_id}]/backups: Cinder's backup routes and actions
 * (../shared/reference/cinder-backups-groups.md §1.6).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { BACKUP_RESETTABLE, BACKUP_STATUSES } from '../../machines/backup.ts';
import { ApiError } from '../errors.ts';
import { BACKUP_SERVICE, type BackupRecord, type BackupService, type ImportedRecord } from '../services/backups.ts';
import { validContainer } from '../backup/posix.ts';
import { requireAdmin, viewContext } from './context.ts';
import { listHandler, type ListRoute } from './lists.ts';
import { changeState, createdBy } from './changes.ts';
import { invalid, isUuid, show, parseBool, parseIfMatch, parseMetadata, parseText, rejectUnknown, unwrap } from './parse.ts';
import { ActionBody, BackupCreateBody, BackupRestoreBody, BackupUpdateBody, IdParams, ProjectParams, Query } from './schemas.ts';
import { backupDetail, backupSummary, stateHeaders, transitionView } from './views.ts';

const CREATE_KEYS = [
  'volume_id',
  'container',
  'name',
  'description',
  'incremental',
  'force',
  'snapshot_id',
  'metadata',
  'availability_zone',
];

export function backupId(id: string): string {
  if (!isUuid(id)) throw new ApiError('BackupNotFound', { id });
  return id.toLowerCase();
}

/** An optional boolean of a backup body (Cinder's boolean or boolean string); absent or null: false. */
const flag = (value: unknown, field: string) => (value === undefined || value === null ? false : parseBool(value, field));

export const backupRoutes: FastifyPluginAsync<{ backups: BackupService }> = async (app, { backups }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  /** One backup's answer: its state headers, and how far a backup being made has read its source. */
  const shown = (reply: Parameters<typeof stateHeaders>[0], b: BackupRecord) => {
    stateHeaders(reply, b);
    void reply.header('Volstate-Progress', `${b.progress}%`);
  };

  const list: ListRoute<BackupRecord> = {
    collection: 'backups',
    statuses: BACKUP_STATUSES,
    sortKeys: backups.sortKeys,
    // A volume_id that is no UUID names no volume: the list is empty.
    filters: (q): Record<string, string> | null => {
      if (q.volume_id === undefined) return {};
      return isUuid(q.volume_id) ? { volume_id: q.volume_id.toLowerCase() } : null;
    },
    list: (q) => backups.list(q),
    detail: (b, ctx) => backupDetail(b, ctx),
    summary: backupSummary,
  };
  r.get('/backups', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, false));
  r.get('/backups/detail', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, true));

  r.post('/backups', { schema: { params: ProjectParams, body: BackupCreateBody } }, async (req, reply) => {
    const body = unwrap(req.body, 'backup');
    rejectUnknown(body, 'backup', CREATE_KEYS);
    if (body.volume_id === undefined || body.volume_id === null) throw invalid('volume_id', 'None', 'volume_id is required.');
    if (typeof body.volume_id !== 'string' || !isUuid(body.volume_id))
      throw invalid('volume_id', body.volume_id, 'it must be a volume id.');
    let snapshotId: string | null = null;
    if (body.snapshot_id !== undefined && body.snapshot_id !== null) {
      if (typeof body.snapshot_id !== 'string' || !isUuid(body.snapshot_id))
        throw invalid('snapshot_id', body.snapshot_id, 'it must be a snapshot id.');
      snapshotId = body.snapshot_id.toLowerCase();
    }
    if (body.metadata !== undefined && body.metadata !== null && req.mv < 43) {
      throw new ApiError('InvalidInput', { reason: 'backup metadata needs microversion 3.43 or later.' });
    }
    if (body.availability_zone != null && body.availability_zone !== 'nova') {
      throw new ApiError('InvalidInput', {
        reason: `Availability zone '${show(body.availability_zone)}' is invalid: volstate has the one zone nova.`,
      });
    }
    const input = {
      volumeId: body.volume_id.toLowerCase(),
      snapshotId,
      incremental: flag(body.incremental, 'incremental'),
      force: flag(body.force, 'force'),
      name: parseText(body.name, 'name'),
      description: parseText(body.description, 'description'),
      metadata: parseMetadata(body.metadata),
      container: parseText(body.container, 'container'),
      availabilityZone: null,
    };
    // The container is a directory under the store's root: never out of it.
    if (input.container !== null && !validContainer(input.container)) {
      throw invalid('container', input.container, 'a container is a relative path of letters, digits, _, . and - (no . or .. parts).');
    }
    const backup = await changeState(
      req,
      reply,
      () => backups.create(req.caller, input),
      (changes) => backups.get(req.caller, createdBy(changes, 'backup')),
    );
    shown(reply.code(202), backup);
    return { backup: backupSummary(backup, viewContext(req)) };
  });

  r.get('/backups/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const backup = await backups.get(req.caller, backupId(req.params.id));
    shown(reply, backup);
    return { backup: backupDetail(backup, viewContext(req)) };
  });

  // 3.9: name and description; 3.43: metadata too, which replaces the backup's whole set.
  r.put('/backups/:id', { schema: { params: IdParams, body: BackupUpdateBody } }, async (req, reply) => {
    if (req.mv < 9) throw new ApiError('NotFound');
    const id = backupId(req.params.id);
    const body = unwrap(req.body, 'backup');
    rejectUnknown(body, 'backup', req.mv >= 43 ? ['name', 'description', 'metadata'] : ['name', 'description']);
    const patch = {
      name: body.name === undefined ? undefined : parseText(body.name, 'name'),
      description: body.description === undefined ? undefined : parseText(body.description, 'description'),
      metadata: body.metadata === undefined ? undefined : parseMetadata(body.metadata),
    };
    const backup = await backups.update(req.caller, id, patch);
    shown(reply, backup);
    return { backup: backupSummary(backup, viewContext(req)) };
  });

  r.delete('/backups/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const id = backupId(req.params.id);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    await changeState(req, reply, () => backups.send(req.caller, id, { type: 'DELETE' }, ifMatch));
    return reply.code(202).send();
  });

  r.post('/backups/:id/restore', { schema: { params: IdParams, body: BackupRestoreBody } }, async (req, reply) => {
    const id = backupId(req.params.id);
    const body = req.body.restore === null ? {} : unwrap(req.body, 'restore');
    rejectUnknown(body, 'restore', ['volume_id', 'name']);
    let volumeId: string | null = null;
    if (body.volume_id !== undefined && body.volume_id !== null) {
      if (typeof body.volume_id !== 'string') throw invalid('volume_id', body.volume_id, 'it must be a volume id.');
      if (!isUuid(body.volume_id)) throw new ApiError('VolumeNotFound', { id: body.volume_id });
      volumeId = body.volume_id.toLowerCase();
    }
    const input = { volumeId, name: parseText(body.name, 'name') };
    const { volume } = await changeState(
      req,
      reply,
      () => backups.restore(req.caller, id, input),
      (changes) => backups.restored(req.caller, id, volumeId ?? createdBy(changes, 'volume')),
    );
    return reply.code(202).send({ restore: { backup_id: id, volume_id: volume.id, volume_name: volume.name } });
  });

  r.post('/backups/:id/action', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
    const keys = Object.keys(req.body);
    if (keys.length !== 1) {
      throw new ApiError('MalformedBody', {
        reason: `an action body has exactly one key, the action; got ${keys.length ? keys.join(', ') : 'none'}`,
      });
    }
    const name = keys[0]!;
    if (name !== 'os-reset_status' && name !== 'os-force_delete') throw new ApiError('NoSuchAction', { action: name });
    const id = backupId(req.params.id);
    requireAdmin(req, `volume_extension:backup_admin_actions:${name === 'os-reset_status' ? 'reset_status' : 'force_delete'}`);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    if (name === 'os-force_delete') {
      await changeState(req, reply, () => backups.send(req.caller, id, { type: 'FORCE_DELETE' }, ifMatch));
      return reply.code(202).send();
    }
    const value = req.body[name];
    const raw = value && typeof value === 'object' ? (value as Record<string, unknown>).status : undefined;
    const status = typeof raw === 'string' ? raw.toLowerCase() : raw;
    if (typeof status !== 'string' || !(BACKUP_RESETTABLE as readonly string[]).includes(status)) {
      throw new ApiError('InvalidInput', {
        reason: `Backup status: ${String(raw)} is invalid, valid statuses are: [${BACKUP_RESETTABLE.map((s) => `'${s}'`).join(', ')}].`,
      });
    }
    await changeState(req, reply, () => backups.send(req.caller, id, { type: 'RESET_STATUS', status }, ifMatch));
    return reply.code(202).send();
  });

  r.get('/backups/:id/export_record', { schema: { params: IdParams } }, async (req) => {
    requireAdmin(req, 'backup:export-import');
    return { 'backup-record': await backups.exportRecord(req.caller, backupId(req.params.id)) };
  });

  r.post('/backups/import_record', { schema: { params: ProjectParams, body: ActionBody } }, async (req, reply) => {
    requireAdmin(req, 'backup:backup-import');
    const body = unwrap(req.body, 'backup-record');
    const { backup_service: service, backup_url: url } = body;
    if (typeof service !== 'string' || service !== BACKUP_SERVICE)
      throw invalid('backup_service', service ?? 'None', `volstate imports records of ${BACKUP_SERVICE} only.`);
    const record = decodeRecord(url);
    const backup = await changeState(
      req,
      reply,
      () => backups.importRecord(req.caller, record),
      () => backups.get(req.caller, record.id),
    );
    shown(reply.code(201), backup);
    return { backup: backupSummary(backup, viewContext(req)) };
  });

  r.get('/backups/:id/transitions', { schema: { params: IdParams } }, async (req) => {
    const rows = await backups.history(req.caller, backupId(req.params.id));
    return { transitions: rows.map(transitionView) };
  });
};

/** A record as export_record encodes it (Cinder's base64 JSON); what is wrong with it is a 400 naming the field. */
function decodeRecord(url: unknown): ImportedRecord {
  if (typeof url !== 'string' || url === '') throw invalid('backup_url', url ?? 'None', 'give the backup_url export_record answered.');
  let fields: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(url, 'base64').toString('utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    fields = parsed as Record<string, unknown>;
  } catch {
    throw new ApiError('InvalidBackup', { reason: "Can't parse backup record: backup_url is not base64 of a JSON object." });
  }
  const text = (key: string, required: boolean): string | null => {
    const v = fields[key];
    if (v === undefined || v === null) {
      if (required) throw new ApiError('InvalidBackup', { reason: `the backup record has no ${key}.` });
      return null;
    }
    if (typeof v !== 'string' || v.length > 255)
      throw new ApiError('InvalidBackup', { reason: `the backup record's ${key} is not a text of at most 255 characters.` });
    return v;
  };
  const id = text('id', true)!;
  if (!isUuid(id)) throw new ApiError('InvalidBackup', { reason: `the backup record's id ${JSON.stringify(id)} is not a UUID.` });
  const size = fields.size;
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > 2 ** 31 - 1)
    throw new ApiError('InvalidBackup', { reason: 'the backup record has no size (GiB, a positive integer).' });
  const objectCount = fields.object_count ?? 0;
  if (typeof objectCount !== 'number' || !Number.isInteger(objectCount) || objectCount < 0 || objectCount > 2 ** 31 - 1)
    throw new ApiError('InvalidBackup', { reason: "the backup record's object_count is not a count." });
  const container = text('container', true)!;
  if (!validContainer(container))
    throw new ApiError('InvalidBackup', {
      reason: `the backup record's container ${JSON.stringify(container)} is not a path in the store.`,
    });
  const serviceMetadata = text('service_metadata', true)!;
  if (!/^[A-Za-z0-9_.-]+$/.test(serviceMetadata))
    throw new ApiError('InvalidBackup', { reason: "the backup record's service_metadata is not an object prefix." });
  const parentId = text('parent_id', false);
  if (parentId !== null && !isUuid(parentId))
    throw new ApiError('InvalidBackup', { reason: "the backup record's parent_id is not a UUID." });
  const stamp = text('data_timestamp', false);
  const dataTimestamp = stamp === null ? null : new Date(stamp);
  if (dataTimestamp !== null && Number.isNaN(dataTimestamp.getTime()))
    throw new ApiError('InvalidBackup', { reason: "the backup record's data_timestamp is not a time." });
  return {
    id: id.toLowerCase(),
    size,
    name: text('display_name', false),
    description: text('display_description', false),
    container,
    serviceMetadata,
    objectCount,
    parentId: parentId?.toLowerCase() ?? null,
    dataTimestamp,
  };
}
