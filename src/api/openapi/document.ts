/**
 * The OpenAPI 3.1 document of volstate's API, served at `GET /openapi.json`,
 * for client authors, gateways and anyone reading the API without the code.
 *
 * Where it comes from:
 * - **The paths** are the routes the app registered (collected by an
 *   `onRoute` hook in src/app.ts), so the document cannot list a route that
 *   does not exist; `ROUTES` below says what each one does and answers, and
 *   test/api/openapi.test.ts fails when a route has no entry or an entry no
 *   route.
 * - **The answers** of Cinder's API are Cinder's own contract as Tempest,
 *   OpenStack's conformance suite, checks it: Tempest's response schemas,
 *   converted to JSON by scripts/tempest-schemas.py (tempest-schemas.json,
 *   drift-checked against the installed Tempest), at the newest microversion
 *   Tempest has a schema for (volumes 3.69, transfers 3.57, services 3.7;
 *   the rest 3.0). volstate's own answers (attachments, which Tempest does not
 *   check, transitions, health, the operator's pages) have schemas here.
 * - **The request bodies** are the routes' own schemas where a route declares
 *   one; the values are checked by src/api/parse.ts with Cinder's leniency.
 *
 * The same test drives every documented route and validates each answer
 * against this document, so the document and the server cannot drift apart
 * unnoticed. Responses are still serialized by JSON.stringify, not by
 * Fastify's compiled serializers: those drop unknown keys and throw on a
 * missing required one, which would turn a view's mistake into a 500 instead
 * of a failed test.
 */
import { createRequire } from 'node:module';
import { MAX_VERSION, MIN_VERSION } from '../microversion.ts';
import { ROUTES_NOT_IMPLEMENTED } from '../not-implemented.ts';

export interface RouteEntry {
  method: string;
  url: string;
  schema: unknown;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** every route the app registered, as the onRoute hook saw it */
    routeTable: readonly RouteEntry[];
  }
}

type JsonSchema = Record<string, unknown>;

interface TempestSchema {
  microversion: string;
  status_code: number[];
  response_body?: JsonSchema;
}

const require = createRequire(import.meta.url);
const TEMPEST = require('./tempest-schemas.json') as { tempest: string; schemas: Record<string, TempestSchema> };

/** One answer of a route: a Tempest schema by name, or volstate's own. */
type Answer = { tempest: string; when?: string } | { status: number; description: string; schema?: JsonSchema; type?: string };

interface RouteDoc {
  summary: string;
  tag: string;
  answers: Answer[];
  /** what the route does beyond its summary */
  description?: string;
}

const t = (name: string, when?: string): Answer => (when ? { tempest: name, when } : { tempest: name });
const own = (status: number, description: string, schema?: JsonSchema, type = 'application/json'): Answer => ({
  status,
  description,
  type,
  ...(schema ? { schema } : {}),
});

const str = { type: 'string' };
const nullableStr = { type: ['string', 'null'] };
const uuid = { type: 'string', format: 'uuid' };
const obj = (properties: Record<string, unknown>, required = Object.keys(properties)): JsonSchema => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});

const ATTACHMENT_SUMMARY = obj({ id: uuid, status: str, instance: { type: ['string', 'null'] }, volume_id: uuid });
const ATTACHMENT_DETAIL = obj({
  id: uuid,
  status: str,
  instance: { type: ['string', 'null'] },
  volume_id: uuid,
  attached_at: { type: 'string', description: 'ISO 8601, or "" until attached' },
  detached_at: { type: 'string', description: 'ISO 8601, or "" until detached' },
  attach_mode: { type: 'string', description: 'rw, ro, or "null" until a connector is given' },
  connection_info: { type: 'object' },
});
const TRANSITIONS = obj({
  transitions: {
    type: 'array',
    items: obj({
      version: { type: 'integer' },
      from: nullableStr,
      event: str,
      to: str,
      actor: str,
      request_id: nullableStr,
      at: str,
    }),
  },
});
const AVAILABILITY_ZONES = obj({
  availabilityZoneInfo: { type: 'array', items: obj({ zoneName: str, zoneState: obj({ available: { type: 'boolean' } }) }) },
});
const ANY_OBJECT = { type: 'object' };
const DEFAULT_TYPE = obj({ project_id: str, volume_type_id: uuid });
const CG_DETAIL = obj({
  id: uuid,
  status: str,
  availability_zone: str,
  created_at: str,
  name: nullableStr,
  description: nullableStr,
  volume_types: { type: 'array', items: uuid },
});
const CGSNAPSHOT_DETAIL = obj({
  id: uuid,
  consistencygroup_id: uuid,
  status: str,
  created_at: str,
  name: nullableStr,
  description: nullableStr,
});
const noContent = (what = 'Done.') => own(204, what);

/** What every path answers on refusal: Cinder's fault body, `{"<faultName>": {"code", "message"}}`. */
const FAULT: JsonSchema = {
  type: 'object',
  minProperties: 1,
  maxProperties: 1,
  additionalProperties: {
    type: 'object',
    properties: { code: { type: 'integer' }, message: { type: 'string' } },
    required: ['code', 'message'],
    description: 'volstate adds machine-readable fields where a state machine refused: type, state, event, allowed, …',
  },
};

const VOLUME_ACTIONS = [
  'v3_69.volumes.extend_volume',
  'v3_69.volumes.reset_volume_status',
  'v3_69.volumes.attach_volume',
  'v3_69.volumes.detach_volume',
  'v3_69.volumes.reserve_volume',
  'v3_69.volumes.unreserve_volume',
  'v3_69.volumes.retype_volume',
  'v3_69.volumes.force_delete_volume',
  'v3_69.volumes.force_detach_volume',
  'v3_69.volumes.set_bootable_volume',
  'v3_69.volumes.update_volume_readonly',
].map((name) => t(name));

const metadataRoutes = (collection: 'volumes' | 'snapshots', schemas: Record<string, string>, tag: string): Record<string, RouteDoc> => ({
  [`GET /${collection}/:id/metadata`]: { tag, summary: `Show the ${tag.toLowerCase()}'s metadata`, answers: [t(schemas.show!)] },
  [`POST /${collection}/:id/metadata`]: { tag, summary: 'Add or change metadata keys', answers: [t(schemas.create!)] },
  [`PUT /${collection}/:id/metadata`]: { tag, summary: 'Replace all metadata', answers: [t(schemas.update!)] },
  [`GET /${collection}/:id/metadata/:key`]: { tag, summary: 'Show one metadata key', answers: [t(schemas.showItem!)] },
  [`PUT /${collection}/:id/metadata/:key`]: { tag, summary: 'Set one metadata key', answers: [t(schemas.updateItem!)] },
  [`DELETE /${collection}/:id/metadata/:key`]: { tag, summary: 'Delete one metadata key', answers: [t(schemas.deleteItem!)] },
});

const transfers = (prefix: string, v: string, legacy: boolean): Record<string, RouteDoc> => {
  const tag = 'Volume transfers';
  const note = legacy ? ' (the 3.0 path)' : ' (3.55 and on)';
  return {
    [`POST /${prefix}`]: { tag, summary: `Offer a volume for transfer${note}`, answers: [t(`${v}transfers.create_volume_transfer`)] },
    [`GET /${prefix}`]: { tag, summary: `List transfers${note}`, answers: [t(`${v}transfers.list_volume_transfers_no_detail`)] },
    [`GET /${prefix}/detail`]: {
      tag,
      summary: `List transfers with details${note}`,
      answers: [t(`${v}transfers.list_volume_transfers_with_detail`)],
    },
    [`GET /${prefix}/:id`]: { tag, summary: `Show a transfer${note}`, answers: [t(`${v}transfers.show_volume_transfer`)] },
    [`POST /${prefix}/:id/accept`]: { tag, summary: `Accept a transfer${note}`, answers: [t(`${v}transfers.accept_volume_transfer`)] },
    [`DELETE /${prefix}/:id`]: { tag, summary: `Cancel a transfer${note}`, answers: [t(`${v}transfers.delete_volume_transfer`)] },
  };
};

/** Every route under /v3/{project_id} (and /v3): what it does and what it answers. */
const RESOURCE_ROUTES: Record<string, RouteDoc> = {
  'GET /volumes': { tag: 'Volumes', summary: 'List volumes', answers: [t('v3_69.volumes.list_volumes_no_detail')] },
  'GET /volumes/detail': { tag: 'Volumes', summary: 'List volumes with details', answers: [t('v3_69.volumes.list_volumes_with_detail')] },
  'GET /volumes/summary': {
    tag: 'Volumes',
    summary: 'Count and total size of the volumes (3.12)',
    answers: [t('v3_69.volumes.show_volume_summary')],
  },
  'POST /volumes': { tag: 'Volumes', summary: 'Create a volume', answers: [t('v3_69.volumes.create_volume')] },
  'GET /volumes/:id': { tag: 'Volumes', summary: 'Show a volume', answers: [t('v3_69.volumes.show_volume')] },
  'PUT /volumes/:id': {
    tag: 'Volumes',
    summary: 'Rename or describe a volume',
    description: "The answer is the volume's detail view, as Cinder's (Tempest's update_volume is the 3.0 form at every microversion).",
    answers: [t('v3_69.volumes.show_volume')],
  },
  'DELETE /volumes/:id': { tag: 'Volumes', summary: 'Delete a volume', answers: [t('v3_69.volumes.delete_volume')] },
  'GET /volumes/:id/transitions': {
    tag: 'Volumes',
    summary: "A volume's history: every state change, oldest first (volstate)",
    answers: [own(200, 'The transitions, each written by the statement that made it.', TRANSITIONS)],
  },
  'POST /volumes/:id/action': {
    tag: 'Volume actions',
    summary: 'A volume action: os-extend, os-attach, os-reset_status, os-initialize_connection, …',
    description: 'The body names one action. os-initialize_connection answers 200 with the connection_info; the others 202.',
    answers: [...VOLUME_ACTIONS, own(200, 'os-initialize_connection: how to connect.', obj({ connection_info: ANY_OBJECT }))],
  },
  ...metadataRoutes(
    'volumes',
    {
      show: 'v3_69.volumes.show_volume_metadata',
      create: 'v3_69.volumes.create_volume_metadata',
      update: 'v3_69.volumes.update_volume_metadata',
      showItem: 'volumes.show_volume_metadata_item',
      updateItem: 'v3_69.volumes.update_volume_metadata_item',
      deleteItem: 'volumes.delete_volume_metadata_item',
    },
    'Volumes',
  ),
  ...metadataRoutes(
    'snapshots',
    {
      show: 'snapshots.show_snapshot_metadata',
      create: 'snapshots.create_snapshot_metadata',
      update: 'snapshots.update_snapshot_metadata',
      showItem: 'snapshots.show_snapshot_metadata_item',
      updateItem: 'snapshots.update_snapshot_metadata_item',
      deleteItem: 'snapshots.delete_snapshot_metadata_item',
    },
    'Snapshots',
  ),
  'GET /snapshots': { tag: 'Snapshots', summary: 'List snapshots', answers: [t('snapshots.list_snapshots_no_detail')] },
  'GET /snapshots/detail': {
    tag: 'Snapshots',
    summary: 'List snapshots with details',
    answers: [t('snapshots.list_snapshots_with_detail')],
  },
  'POST /snapshots': { tag: 'Snapshots', summary: 'Create a snapshot', answers: [t('snapshots.create_snapshot')] },
  'GET /snapshots/:id': { tag: 'Snapshots', summary: 'Show a snapshot', answers: [t('snapshots.show_snapshot')] },
  'PUT /snapshots/:id': { tag: 'Snapshots', summary: 'Rename or describe a snapshot', answers: [t('snapshots.update_snapshot')] },
  'DELETE /snapshots/:id': { tag: 'Snapshots', summary: 'Delete a snapshot', answers: [t('snapshots.delete_snapshot')] },
  'POST /snapshots/:id/action': {
    tag: 'Snapshots',
    summary: 'A snapshot action: os-reset_status, os-update_snapshot_status, os-force_delete',
    answers: [t('snapshots.reset_snapshot_status'), t('snapshots.update_snapshot_status'), t('snapshots.force_delete_snapshot')],
  },
  'GET /snapshots/:id/transitions': {
    tag: 'Snapshots',
    summary: "A snapshot's history (volstate)",
    answers: [own(200, 'The transitions, oldest first.', TRANSITIONS)],
  },
  'GET /default-types': {
    tag: 'Volume types',
    summary: "Every project's default volume type (3.62, admin)",
    answers: [own(200, 'The defaults.', obj({ default_types: { type: 'array', items: DEFAULT_TYPE } }))],
  },
  'GET /default-types/:project': {
    tag: 'Volume types',
    summary: "A project's default volume type (3.62, admin)",
    answers: [own(200, 'The default.', obj({ default_type: DEFAULT_TYPE }))],
  },
  'PUT /default-types/:project': {
    tag: 'Volume types',
    summary: "Set a project's default volume type (3.62, admin)",
    answers: [own(200, 'The default.', obj({ default_type: DEFAULT_TYPE }))],
  },
  'DELETE /default-types/:project': {
    tag: 'Volume types',
    summary: "Unset a project's default volume type (3.62, admin)",
    answers: [noContent('Unset: its volumes get __DEFAULT__ again.')],
  },
  'GET /group_types': { tag: 'Group types', summary: 'List group types (3.11)', answers: [t('group_types.list_group_types')] },
  'GET /group_types/default': {
    tag: 'Group types',
    summary: 'The default group type (VOLSTATE_DEFAULT_GROUP_TYPE; 404 when unset)',
    answers: [t('group_types.show_default_group_type')],
  },
  'GET /group_types/:id': { tag: 'Group types', summary: 'Show a group type', answers: [t('group_types.show_group_type')] },
  'POST /group_types': { tag: 'Group types', summary: 'Create a group type (admin)', answers: [t('group_types.create_group_type')] },
  'PUT /group_types/:id': { tag: 'Group types', summary: 'Update a group type (admin)', answers: [t('group_types.update_group_type')] },
  'DELETE /group_types/:id': {
    tag: 'Group types',
    summary: 'Delete a group type no group uses (admin)',
    answers: [t('group_types.delete_group_type')],
  },
  'GET /group_types/:id/group_specs': {
    tag: 'Group types',
    summary: "A group type's group specs (admin)",
    answers: [t('group_types.list_group_type_specs')],
  },
  'POST /group_types/:id/group_specs': {
    tag: 'Group types',
    summary: 'Set group specs, merged in (admin)',
    answers: [t('group_types.create_or_update_group_type_specs')],
  },
  'GET /group_types/:id/group_specs/:key': {
    tag: 'Group types',
    summary: 'One group spec (admin)',
    answers: [t('group_types.show_group_type_specs_item')],
  },
  'PUT /group_types/:id/group_specs/:key': {
    tag: 'Group types',
    summary: 'Set one group spec (admin)',
    answers: [t('group_types.update_group_type_specs_item')],
  },
  'DELETE /group_types/:id/group_specs/:key': {
    tag: 'Group types',
    summary: 'Remove one group spec (admin)',
    answers: [t('group_types.delete_group_type_specs_item')],
  },
  'GET /groups': { tag: 'Groups', summary: 'List groups (3.13)', answers: [t('groups.list_groups_no_detail')] },
  'GET /groups/detail': {
    tag: 'Groups',
    summary: 'List groups with details (their volumes with list_volume=True, 3.25)',
    answers: [t('groups.list_groups_with_detail')],
  },
  'GET /groups/:id': { tag: 'Groups', summary: 'Show a group', answers: [t('groups.show_group')] },
  'POST /groups': {
    tag: 'Groups',
    summary: 'Create a group of a group type and volume types',
    answers: [t('groups.create_group')],
  },
  'POST /groups/action': {
    tag: 'Groups',
    summary: 'create-from-src (3.14): a group with a volume from each member of a group snapshot or a source group, every volume or none',
    answers: [t('groups.create_group_from_source')],
  },
  'PUT /groups/:id': {
    tag: 'Groups',
    summary: 'Rename a group, add and remove volumes (one transaction with every volume named)',
    answers: [t('groups.update_group')],
  },
  'POST /groups/:id/action': {
    tag: 'Groups',
    summary: 'A group action: delete (with delete-volumes: every member in the same transaction), reset_status (admin, 3.20)',
    answers: [t('groups.delete_group'), t('groups.reset_group_status')],
  },
  'GET /groups/:id/transitions': {
    tag: 'Groups',
    summary: "A group's history (volstate)",
    answers: [own(200, 'The transitions, oldest first.', TRANSITIONS)],
  },
  'GET /group_snapshots': {
    tag: 'Group snapshots',
    summary: 'List group snapshots (3.14)',
    answers: [t('group_snapshots.list_group_snapshots_no_detail')],
  },
  'GET /group_snapshots/detail': {
    tag: 'Group snapshots',
    summary: 'List group snapshots with details',
    answers: [t('group_snapshots.list_group_snapshots_with_detail')],
  },
  'GET /group_snapshots/:id': {
    tag: 'Group snapshots',
    summary: 'Show a group snapshot',
    answers: [t('group_snapshots.show_group_snapshot')],
  },
  'POST /group_snapshots': {
    tag: 'Group snapshots',
    summary: 'Snapshot every volume of a group at once (one transaction; a busy member refuses the whole request)',
    answers: [t('group_snapshots.create_group_snapshot')],
  },
  'DELETE /group_snapshots/:id': {
    tag: 'Group snapshots',
    summary: 'Delete a group snapshot and its member snapshots',
    answers: [t('group_snapshots.delete_group_snapshot')],
  },
  'POST /group_snapshots/:id/action': {
    tag: 'Group snapshots',
    summary: 'reset_status (admin, 3.19)',
    answers: [t('group_snapshots.reset_group_snapshot_status')],
  },
  'GET /group_snapshots/:id/transitions': {
    tag: 'Group snapshots',
    summary: "A group snapshot's history (volstate)",
    answers: [own(200, 'The transitions, oldest first.', TRANSITIONS)],
  },
  'GET /consistencygroups': {
    tag: 'Consistency groups',
    summary: 'List consistency groups (the legacy API, served from groups)',
    answers: [
      own(
        200,
        'The groups, as consistency groups.',
        obj({ consistencygroups: { type: 'array', items: obj({ id: uuid, name: nullableStr }) } }),
      ),
    ],
  },
  'GET /consistencygroups/detail': {
    tag: 'Consistency groups',
    summary: 'List consistency groups with details',
    answers: [own(200, 'The groups, as consistency groups.', obj({ consistencygroups: { type: 'array', items: CG_DETAIL } }))],
  },
  'GET /consistencygroups/:id': {
    tag: 'Consistency groups',
    summary: 'Show a consistency group',
    answers: [own(200, 'The group, as a consistency group.', obj({ consistencygroup: CG_DETAIL }))],
  },
  'POST /consistencygroups': {
    tag: 'Consistency groups',
    summary: 'Create a consistency group (a group of default_cgsnapshot_type)',
    answers: [own(202, 'Accepted: it is being created.', obj({ consistencygroup: obj({ id: uuid, name: nullableStr }) }))],
  },
  'POST /consistencygroups/create_from_src': {
    tag: 'Consistency groups',
    summary: 'A consistency group from a cgsnapshot or another consistency group',
    answers: [own(202, 'Accepted: it is being created.', obj({ consistencygroup: obj({ id: uuid, name: nullableStr }) }))],
  },
  'POST /consistencygroups/:id/delete': {
    tag: 'Consistency groups',
    summary: 'Delete a consistency group (force: with its volumes)',
    answers: [own(202, 'Accepted: it is being deleted.')],
  },
  'PUT /consistencygroups/:id/update': {
    tag: 'Consistency groups',
    summary: 'Rename a consistency group, add and remove volumes',
    answers: [own(202, 'Accepted.')],
  },
  'GET /cgsnapshots': {
    tag: 'Consistency groups',
    summary: 'List cgsnapshots (group snapshots)',
    answers: [
      own(
        200,
        'The group snapshots, as cgsnapshots.',
        obj({ cgsnapshots: { type: 'array', items: obj({ id: uuid, name: nullableStr }) } }),
      ),
    ],
  },
  'GET /cgsnapshots/detail': {
    tag: 'Consistency groups',
    summary: 'List cgsnapshots with details',
    answers: [own(200, 'The group snapshots, as cgsnapshots.', obj({ cgsnapshots: { type: 'array', items: CGSNAPSHOT_DETAIL } }))],
  },
  'GET /cgsnapshots/:id': {
    tag: 'Consistency groups',
    summary: 'Show a cgsnapshot',
    answers: [own(200, 'The group snapshot, as a cgsnapshot.', obj({ cgsnapshot: CGSNAPSHOT_DETAIL }))],
  },
  'POST /cgsnapshots': {
    tag: 'Consistency groups',
    summary: 'Snapshot a consistency group (a group snapshot: every member or none)',
    answers: [own(202, 'Accepted: it is being taken.', obj({ cgsnapshot: obj({ id: uuid, name: nullableStr }) }))],
  },
  'DELETE /cgsnapshots/:id': {
    tag: 'Consistency groups',
    summary: 'Delete a cgsnapshot and its member snapshots',
    answers: [own(202, 'Accepted: it is being deleted.')],
  },
  ...Object.fromEntries(
    Object.entries(ROUTES_NOT_IMPLEMENTED).map(([route, what]) => [
      route,
      { tag: 'Not implemented', summary: `Not implemented: ${what}`, answers: [own(404, `volstate does not implement ${what}.`, FAULT)] },
    ]),
  ),
  'GET /backups': { tag: 'Backups', summary: 'List backups', answers: [t('v3_64.backups.list_backups_no_detail')] },
  'GET /backups/detail': { tag: 'Backups', summary: 'List backups with details', answers: [t('v3_64.backups.list_backups_with_detail')] },
  'POST /backups': {
    tag: 'Backups',
    summary: 'Back up a volume or one of its snapshots (full, or incremental on the newest backup)',
    answers: [t('v3_64.backups.create_backup')],
  },
  'GET /backups/:id': {
    tag: 'Backups',
    summary: 'Show a backup (how far one being made has read: the Volstate-Progress header)',
    answers: [t('v3_64.backups.show_backup')],
  },
  'PUT /backups/:id': {
    tag: 'Backups',
    summary: 'Rename or describe a backup, or replace its metadata (3.9, 3.43)',
    answers: [t('v3_64.backups.update_backup')],
  },
  'DELETE /backups/:id': { tag: 'Backups', summary: 'Delete a backup', answers: [t('v3_64.backups.delete_backup')] },
  'POST /backups/:id/restore': {
    tag: 'Backups',
    summary: 'Restore a backup onto a volume, or into a new one',
    answers: [t('v3_64.backups.restore_backup')],
  },
  'POST /backups/:id/action': {
    tag: 'Backups',
    summary: 'os-reset_status, os-force_delete (admin)',
    answers: [t('v3_64.backups.reset_backup_status')],
  },
  'GET /backups/:id/export_record': {
    tag: 'Backups',
    summary: "Export a backup's record, to import it after the loss of the database (admin)",
    answers: [t('v3_64.backups.export_backup')],
  },
  'POST /backups/import_record': {
    tag: 'Backups',
    summary: 'Import a backup record whose objects are in the store (admin)',
    answers: [t('v3_64.backups.import_backup')],
  },
  'GET /backups/:id/transitions': {
    tag: 'Backups',
    summary: "A backup's history (volstate)",
    answers: [own(200, 'The transitions, oldest first.', TRANSITIONS)],
  },
  'GET /attachments': {
    tag: 'Attachments',
    summary: 'List attachments (3.27)',
    answers: [own(200, 'The attachments.', obj({ attachments: { type: 'array', items: ATTACHMENT_SUMMARY } }))],
  },
  'GET /attachments/detail': {
    tag: 'Attachments',
    summary: 'List attachments with details (3.27)',
    answers: [own(200, 'The attachments.', obj({ attachments: { type: 'array', items: ATTACHMENT_DETAIL } }))],
  },
  'GET /attachments/:id': {
    tag: 'Attachments',
    summary: 'Show an attachment (3.27)',
    answers: [own(200, 'The attachment.', obj({ attachment: ATTACHMENT_DETAIL }))],
  },
  'POST /attachments': {
    tag: 'Attachments',
    summary: 'Reserve a volume for an instance, with a connector to connect it (3.27)',
    answers: [own(200, 'The attachment.', obj({ attachment: ATTACHMENT_DETAIL }))],
  },
  'PUT /attachments/:id': {
    tag: 'Attachments',
    summary: 'Give a reserved attachment its connector (3.27)',
    answers: [own(200, 'The attachment with its connection_info.', obj({ attachment: ATTACHMENT_DETAIL }))],
  },
  'POST /attachments/:id/action': {
    tag: 'Attachments',
    summary: 'os-complete: the host has connected (3.44)',
    answers: [noContent('Completed: the attachment is attached.')],
  },
  'DELETE /attachments/:id': {
    tag: 'Attachments',
    summary: 'Detach and delete an attachment (3.27)',
    answers: [own(200, "The volume's remaining attachments.", obj({ attachments: { type: 'array', items: ATTACHMENT_SUMMARY } }))],
  },
  'GET /attachments/:id/transitions': {
    tag: 'Attachments',
    summary: "An attachment's history (volstate)",
    answers: [own(200, 'The transitions, oldest first.', TRANSITIONS)],
  },
  ...transfers('os-volume-transfer', '', true),
  ...transfers('volume-transfers', 'v3_57.', false),
  'GET /types': { tag: 'Volume types', summary: 'List volume types', answers: [t('volume_types.list_volume_types')] },
  'GET /types/:id': { tag: 'Volume types', summary: 'Show a volume type (or `default`)', answers: [t('volume_types.show_volume_type')] },
  'POST /types': { tag: 'Volume types', summary: 'Create a volume type (admin)', answers: [t('volume_types.create_volume_type')] },
  'PUT /types/:id': { tag: 'Volume types', summary: 'Update a volume type (admin)', answers: [t('volume_types.update_volume_types')] },
  'DELETE /types/:id': { tag: 'Volume types', summary: 'Delete a volume type (admin)', answers: [t('volume_types.delete_volume_type')] },
  'GET /types/:id/extra_specs': {
    tag: 'Volume types',
    summary: "A type's extra specs",
    answers: [t('volume_types.list_volume_types_extra_specs')],
  },
  'POST /types/:id/extra_specs': {
    tag: 'Volume types',
    summary: 'Set extra specs (admin)',
    answers: [t('volume_types.create_volume_types_extra_specs')],
  },
  'GET /types/:id/extra_specs/:key': {
    tag: 'Volume types',
    summary: 'One extra spec',
    answers: [t('volume_types.show_volume_types_extra_specs')],
  },
  'PUT /types/:id/extra_specs/:key': {
    tag: 'Volume types',
    summary: 'Set one extra spec (admin)',
    answers: [t('volume_types.update_volume_type_extra_specs')],
  },
  'DELETE /types/:id/extra_specs/:key': {
    tag: 'Volume types',
    summary: 'Delete one extra spec (admin)',
    answers: [t('volume_types.delete_volume_types_extra_specs')],
  },
  'GET /types/:id/os-volume-type-access': {
    tag: 'Volume types',
    summary: 'The projects a private type is shared with (admin)',
    answers: [t('volume_types.list_type_access')],
  },
  'POST /types/:id/action': {
    tag: 'Volume types',
    summary: 'addProjectAccess or removeProjectAccess (admin)',
    answers: [t('volume_types.add_type_access'), t('volume_types.remove_type_access')],
  },
  'GET /types/:id/encryption': {
    tag: 'Volume types',
    summary: "A type's encryption ({} when it has none)",
    answers: [t('encryption_types.show_encryption_type')],
  },
  'GET /types/:id/encryption/:key': {
    tag: 'Volume types',
    summary: "One field of a type's encryption",
    answers: [t('encryption_types.show_encryption_specs_item')],
  },
  'POST /types/:id/encryption': {
    tag: 'Volume types',
    summary: 'Give a type an encryption (admin; refused while a live volume has the type)',
    answers: [t('encryption_types.create_encryption_type')],
  },
  'PUT /types/:id/encryption/:key': {
    tag: 'Volume types',
    summary: "Change a type's encryption (admin; refused while a live volume has the type)",
    answers: [t('encryption_types.update_encryption_type')],
  },
  'DELETE /types/:id/encryption/:key': {
    tag: 'Volume types',
    summary: "Remove a type's encryption (admin; refused while a live volume has the type)",
    answers: [t('encryption_types.delete_encryption_type')],
  },
  'POST /qos-specs': { tag: 'QoS specs', summary: 'Create QoS specs (admin)', answers: [t('qos.show_qos')] },
  'GET /qos-specs': { tag: 'QoS specs', summary: 'List QoS specs (admin)', answers: [t('qos.list_qos')] },
  'GET /qos-specs/:id': { tag: 'QoS specs', summary: 'Show QoS specs (admin)', answers: [t('qos.show_qos')] },
  'PUT /qos-specs/:id': { tag: 'QoS specs', summary: 'Set keys (admin)', answers: [t('qos.set_qos_key')] },
  'PUT /qos-specs/:id/delete_keys': { tag: 'QoS specs', summary: 'Delete keys (admin)', answers: [t('qos.unset_qos_key')] },
  'DELETE /qos-specs/:id': { tag: 'QoS specs', summary: 'Delete QoS specs (admin)', answers: [t('qos.delete_qos')] },
  'GET /qos-specs/:id/associations': {
    tag: 'QoS specs',
    summary: 'The types associated (admin)',
    answers: [t('qos.show_association_qos')],
  },
  'GET /qos-specs/:id/associate': { tag: 'QoS specs', summary: 'Associate a type (admin)', answers: [t('qos.associate_qos')] },
  'GET /qos-specs/:id/disassociate': { tag: 'QoS specs', summary: 'Dissociate a type (admin)', answers: [t('qos.disassociate_qos')] },
  'GET /qos-specs/:id/disassociate_all': {
    tag: 'QoS specs',
    summary: 'Dissociate every type (admin)',
    answers: [t('qos.disassociate_all_qos')],
  },
  'GET /os-quota-sets/:target': {
    tag: 'Quotas',
    summary: "A project's quotas (`?usage=true`: with in_use and reserved)",
    answers: [t('quotas.show_quota_set'), t('quotas.show_quota_set_usage', 'usage=true')],
  },
  'GET /os-quota-sets/:target/defaults': { tag: 'Quotas', summary: 'The default quotas', answers: [t('quotas.show_quota_set')] },
  'PUT /os-quota-sets/:target': { tag: 'Quotas', summary: "Set a project's quotas (admin)", answers: [t('quotas.update_quota_set')] },
  'DELETE /os-quota-sets/:target': {
    tag: 'Quotas',
    summary: "Reset a project's quotas to the defaults (admin)",
    answers: [t('quotas.delete_quota_set')],
  },
  'GET /os-quota-class-sets/:target': {
    tag: 'Quotas',
    summary: 'A quota class (admin)',
    answers: [t('quota_classes.show_quota_classes')],
  },
  'PUT /os-quota-class-sets/:target': {
    tag: 'Quotas',
    summary: 'Set a quota class (admin)',
    answers: [t('quota_classes.update_quota_classes')],
  },
  'GET /limits': { tag: 'Quotas', summary: "The caller's absolute limits and usage", answers: [t('limits.show_limits')] },
  'GET /os-services': { tag: 'Services', summary: 'The services (admin)', answers: [t('v3_7.services.list_services')] },
  'PUT /os-services/:action': {
    tag: 'Services',
    summary: 'enable, disable, disable-log-reason, freeze, thaw (admin)',
    answers: [
      t('v3_7.services.enable_service'),
      t('v3_7.services.disable_service'),
      t('v3_7.services.disable_log_reason'),
      t('v3_7.services.freeze_host'),
      t('v3_7.services.thaw_host'),
    ],
  },
  'GET /os-hosts': { tag: 'Services', summary: 'The hosts (admin)', answers: [t('hosts.list_hosts')] },
  'GET /os-hosts/:host': { tag: 'Services', summary: "A host's volumes and snapshots (admin)", answers: [t('hosts.show_host')] },
  'GET /scheduler-stats/get_pools': {
    tag: 'Services',
    summary: "The backends' pools (admin; `?detail=true` with capabilities)",
    answers: [t('scheduler_stats.get_pools_no_detail'), t('scheduler_stats.get_pools_with_detail', 'detail=true')],
  },
  'GET /capabilities/:host': {
    tag: 'Services',
    summary: "A backend's capabilities (admin)",
    answers: [t('capabilities.show_backend_capabilities')],
  },
  'GET /os-availability-zone': {
    tag: 'Services',
    summary: 'The availability zones (volstate has one: nova)',
    answers: [own(200, 'The zones.', AVAILABILITY_ZONES)],
  },
  'GET /extensions': { tag: 'Services', summary: 'The API extensions', answers: [t('extensions.list_extensions')] },
  'GET /messages': { tag: 'Messages', summary: 'User messages: why an operation failed (3.3)', answers: [t('messages.list_messages')] },
  'GET /messages/:id': { tag: 'Messages', summary: 'Show a message (3.3)', answers: [t('messages.show_message')] },
  'DELETE /messages/:id': { tag: 'Messages', summary: 'Delete a message (3.3)', answers: [t('messages.delete_message')] },
  'GET /events': {
    tag: 'Operations',
    summary: 'Every state transition as it commits: a server-sent event stream (volstate)',
    description: '`?resource_type=`, `?resource_id=` filter it; `Last-Event-ID` resumes after a dropped connection.',
    answers: [own(200, 'text/event-stream: one event per transition.', undefined, 'text/event-stream')],
  },
};

/** The routes outside /v3/{project_id}. */
const OTHER_ROUTES: Record<string, RouteDoc> = {
  'GET /': { tag: 'Versions', summary: 'The API versions (300 Multiple Choices, as Cinder)', answers: [t('versions.list_versions')] },
  'GET /v3': { tag: 'Versions', summary: 'The v3 API: its microversions', answers: [t('versions.volume_api_version_details')] },
  'GET /v3/': { tag: 'Versions', summary: 'The v3 API: its microversions', answers: [t('versions.volume_api_version_details')] },
  'GET /openapi.json': { tag: 'Operations', summary: 'This document', answers: [own(200, 'OpenAPI 3.1.', ANY_OBJECT)] },
  'GET /openapi': { tag: 'Operations', summary: 'This document as a page to read', answers: [own(200, 'HTML.', undefined, 'text/html')] },
  'GET /healthz': {
    tag: 'Operations',
    summary: 'Liveness: the process serves',
    answers: [own(200, 'Alive.', obj({ status: { const: 'ok' } }))],
  },
  'GET /readyz': {
    tag: 'Operations',
    summary: "Readiness: the database answers and this node's worker beats",
    answers: [own(200, 'Ready.', ANY_OBJECT), own(503, 'Not ready, with the reason.', ANY_OBJECT)],
  },
  'GET /metrics': {
    tag: 'Operations',
    summary: 'Prometheus metrics',
    answers: [own(200, 'The text exposition format.', undefined, 'text/plain')],
  },
  'GET /diagrams': {
    tag: 'Operations',
    summary: 'The state machines, drawn from machines/',
    answers: [own(200, 'An HTML page.', undefined, 'text/html')],
  },
  'GET /diagrams/:file': {
    tag: 'Operations',
    summary: 'One diagram file (svg, dot, mmd)',
    answers: [own(200, 'The file.', undefined, 'image/svg+xml')],
  },
  'GET /ui': { tag: 'Operations', summary: 'The live page', answers: [own(200, 'An HTML page.', undefined, 'text/html')] },
  'GET /ui/state': {
    tag: 'Operations',
    summary: "The live page's data: counts by state, stuck resources, recent transitions",
    answers: [own(200, 'The overview.', ANY_OBJECT)],
  },
};

/** The documentation entry of a registered route, by Fastify's method and URL. */
export function routeDoc(method: string, url: string): RouteDoc | undefined {
  const resource = /^\/v3\/:project_id(\/.*)$/.exec(url)?.[1] ?? /^\/v3(\/.+)$/.exec(url)?.[1];
  if (resource) return RESOURCE_ROUTES[`${method} ${resource}`];
  return OTHER_ROUTES[`${method} ${url}`];
}

/** Every documented route key, for the test that holds the table and the routes together. */
export const DOCUMENTED = { resources: Object.keys(RESOURCE_ROUTES), others: Object.keys(OTHER_ROUTES) };

/**
 * Tempest checks snapshots at 3.0 only; from 3.14, 3.41 and 3.65 Cinder's
 * snapshot view carries three more fields, which its 3.0 schemas (closed
 * with additionalProperties: false) do not allow. Every `snapshots.*` schema
 * is published with them.
 */
const SNAPSHOT_FIELDS = {
  group_snapshot_id: { anyOf: [{ type: 'string', format: 'uuid' }, { type: 'null' }], description: '3.14' },
  user_id: { type: 'string', description: '3.41' },
  consumes_quota: { type: 'boolean', description: '3.65' },
};

function published(name: string, schema: TempestSchema): JsonSchema | undefined {
  const body = schema.response_body;
  if (!body || !name.startsWith('snapshots.')) return body;
  const copy = structuredClone(body) as { properties?: Record<string, { properties?: object; items?: { properties?: object } }> };
  const view = copy.properties?.snapshot ?? copy.properties?.snapshots?.items;
  if (!view?.properties || !('volume_id' in view.properties)) return body;
  view.properties = { ...view.properties, ...SNAPSHOT_FIELDS };
  return { ...copy, description: `Tempest's ${name} (3.0), with the snapshot fields of 3.14, 3.41 and 3.65` };
}

function answers(doc: RouteDoc): Record<string, unknown> {
  const byStatus = new Map<number, { description: string[]; type: string; schemas: unknown[] }>();
  const add = (status: number, description: string, type: string, schema: unknown) => {
    const e = byStatus.get(status) ?? { description: [], type, schemas: [] };
    if (!e.description.includes(description)) e.description.push(description);
    if (schema !== undefined) e.schemas.push(schema);
    byStatus.set(status, e);
  };
  for (const a of doc.answers) {
    if ('tempest' in a) {
      const s = TEMPEST.schemas[a.tempest];
      if (!s) throw new Error(`no Tempest schema ${a.tempest}`);
      const description = `Tempest's ${a.tempest} (microversion ${s.microversion})${a.when ? `, with ${a.when}` : ''}`;
      for (const status of s.status_code) {
        add(status, description, 'application/json', s.response_body ? { $ref: `#/components/schemas/${a.tempest}` } : undefined);
      }
    } else {
      add(
        a.status,
        a.description,
        a.type ?? 'application/json',
        a.schema ?? (a.type === 'application/json' ? ANY_OBJECT : { type: 'string' }),
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const [status, e] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const schema = e.schemas.length === 0 ? undefined : e.schemas.length === 1 ? e.schemas[0] : { anyOf: e.schemas };
    out[String(status)] = { description: e.description.join('; '), ...(schema ? { content: { [e.type]: { schema } } } : {}) };
  }
  out.default = {
    description: "A refusal in Cinder's fault shape: 400 invalid, 403, 404, 409 busy (an operation in flight), 413 over quota, …",
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Fault' } } },
  };
  return out;
}

/** `GET /v3/{project_id}/volumes/{id}` → `getV3ProjectIdVolumesId`; a trailing slash is `…Slash`. */
const operationId = (method: string, path: string) =>
  method.toLowerCase() +
  path
    .replace(/[{}]/g, '')
    .replace(/\/$/, '/slash')
    .replace(/[^A-Za-z0-9]+(\w)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase());

/** `/v3/:project_id/volumes/:id` → `/v3/{project_id}/volumes/{id}`. */
const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

/** The document, from the routes the app registered. */
export function openApiDocument(routes: RouteEntry[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const used = new Set<string>();
  for (const r of routes) {
    // The project-less twins (/v3/volumes) answer the same: one entry each, under /v3/{project_id}.
    if (/^\/v3\/(?!:project_id)./.test(r.url)) continue;
    const doc = routeDoc(r.method, r.url);
    if (!doc) continue; // test/api/openapi.test.ts fails on an undocumented route
    const path = openApiPath(r.url);
    const params = [...r.url.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const body = (r.schema as { body?: unknown } | undefined)?.body;
    for (const a of doc.answers) if ('tempest' in a) used.add(a.tempest);
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      tags: [doc.tag],
      summary: doc.summary,
      ...(doc.description ? { description: doc.description } : {}),
      operationId: operationId(r.method, path),
      ...(params.length ? { parameters: params } : {}),
      ...(body ? { requestBody: { content: { 'application/json': { schema: body } } } } : {}),
      responses: answers(doc),
    };
  }
  const schemas: Record<string, unknown> = { Fault: FAULT };
  for (const name of [...used].sort()) {
    const body = published(name, TEMPEST.schemas[name]!);
    if (body) schemas[name] = body;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'volstate: the Cinder Block Storage API v3',
      version: `3.${MAX_VERSION}`,
      description: [
        `Cinder's Block Storage API v3, microversions 3.${MIN_VERSION}–3.${MAX_VERSION} (header \`OpenStack-API-Version: volume 3.N\`).`,
        `Answers are described at the newest microversion Tempest ${TEMPEST.tempest} has a schema for; older microversions omit the fields added since.`,
        'Every path under /v3/{project_id} also answers under /v3 without the project.',
        "Refusals: 409 when an operation is in flight on the resource (VolumeIsBusy), 400 when the resource's state at rest does not allow it, both naming that state.",
      ].join(' '),
    },
    servers: [{ url: '/' }],
    components: { schemas },
    paths,
  };
}
