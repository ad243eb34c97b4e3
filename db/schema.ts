/**
 * The database schema (drizzle). Migrations in db/migrations are generated
 * from this file by `npm run db:generate`; a test fails when they drift.
 *
 * Two kinds of table:
 * - resource data (`volumes`, `snapshots`): what a client named and asked
 *   for. Changed by plain updates (name, description, metadata).
 * - state (`resource_states`): one row per resource, changed ONLY by the
 *   compare-and-swap statements compiled from the machines (db/cas.ts), with
 *   every change recorded in `state_transitions` by the same statement.
 *
 * Table keys are the SQL column names (snake_case): queries run on
 * postgres.js, which returns rows keyed by column name, so `$inferSelect`
 * and `$inferInsert` are exactly the rows the code reads and writes, and no
 * row type is written by hand beside this schema.
 *
 * Size lives in `resource_states` only: it is changed by a transition
 * (EXTENDED) and checked by a guard (`:new_size > size`), so it is state.
 * Keeping a second copy in `volumes` would need keeping them in step.
 */
import { sql, type SQL } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { LEASE_KINDS, type LeaseKind } from '../machines/resource.ts';
import { quoted, stepStatesPredicate } from './queue.ts';
import { VALID_STATE_FUNCTION } from './state-check.ts';

/** States a worker step moves on: the work queue (db/queue.ts). */
const stepStates: SQL = sql.raw(stepStatesPredicate());

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true, mode: 'date' });
/** Set by the CAS that enters the machine's final state, in the same statement (db/cas.ts); NULL while the resource lives. */
const deletedAt = () => timestamp('deleted_at', { withTimezone: true, mode: 'date' });

/**
 * Volume types (Cinder's): a name, extra specs (`multiattach="<is> True"`
 * makes its volumes multiattach), public or private to the projects of
 * volume_type_access. `__DEFAULT__` is made by the migration, as Cinder makes
 * it. A type is deleted only while no live volume uses it (src/services/types.ts).
 */
export const volumeTypes = pgTable(
  'volume_types',
  {
    id: uuid('id').primaryKey(),
    name: text('name').notNull(),
    description: text('description'),
    is_public: boolean('is_public').notNull().default(true),
    extra_specs: jsonb('extra_specs').$type<Record<string, string>>().notNull().default({}),
    /** the QoS specs associated with the type; a QoS specs with types is deleted only by force, which dissociates them */
    qos_specs_id: uuid('qos_specs_id').references(() => qosSpecs.id, { onDelete: 'set null' }),
    created_at: createdAt(),
    updated_at: updatedAt(),
  },
  (t) => [uniqueIndex('volume_types_name').on(t.name)],
);

/** QoS specs (Cinder's): data, associated with volume types (volume_types.qos_specs_id). */
export const qosSpecs = pgTable(
  'qos_specs',
  {
    id: uuid('id').primaryKey(),
    name: text('name').notNull(),
    consumer: text('consumer').notNull().default('back-end'),
    specs: jsonb('specs').$type<Record<string, string>>().notNull().default({}),
    created_at: createdAt(),
    updated_at: updatedAt(),
  },
  (t) => [uniqueIndex('qos_specs_name').on(t.name), check('qos_specs_consumer', sql`consumer IN ('front-end', 'back-end', 'both')`)],
);

/**
 * A project's default volume type (3.62, Cinder's default_volume_types): a
 * volume the project creates without a type gets it, and GET /types/default
 * names it. A type that is some project's default is not deleted
 * (db/volume-types.ts deleteType).
 */
export const defaultVolumeTypes = pgTable('default_volume_types', {
  project_id: text('project_id').primaryKey(),
  volume_type_id: uuid('volume_type_id')
    .notNull()
    .references(() => volumeTypes.id),
  created_at: createdAt(),
  updated_at: updatedAt(),
});

export const volumeTypeAccess = pgTable(
  'volume_type_access',
  {
    volume_type_id: uuid('volume_type_id')
      .notNull()
      .references(() => volumeTypes.id, { onDelete: 'cascade' }),
    project_id: text('project_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.volume_type_id, t.project_id] })],
);

/**
 * Group types (Cinder's, 3.11): a name and group specs, as volume types have
 * extra specs; a group is made of one. `default_cgsnapshot_type` is made by the
 * migration, as Cinder makes it: the type of every consistency group (the
 * legacy consistencygroups API, src/api/groups.ts). A type a live group uses
 * cannot be deleted (db/group-types.ts).
 */
export const groupTypes = pgTable(
  'group_types',
  {
    id: uuid('id').primaryKey(),
    name: text('name').notNull(),
    description: text('description'),
    is_public: boolean('is_public').notNull().default(true),
    group_specs: jsonb('group_specs').$type<Record<string, string>>().notNull().default({}),
    created_at: createdAt(),
    updated_at: updatedAt(),
  },
  (t) => [uniqueIndex('group_types_name').on(t.name)],
);

/**
 * A volume type's encryption (Cinder's volume type encryption, data only:
 * volstate's backends store what they are given). At most one per type (the
 * key; Cinder's table has no such constraint, only a comment asking for it).
 * Created, changed or removed only while no live volume has the type
 * (db/volume-types.ts); a volume of an encrypted type shows `encrypted: true`.
 */
export const volumeTypeEncryption = pgTable(
  'volume_type_encryption',
  {
    volume_type_id: uuid('volume_type_id')
      .primaryKey()
      .references(() => volumeTypes.id, { onDelete: 'cascade' }),
    encryption_id: uuid('encryption_id').notNull(),
    provider: text('provider').notNull(),
    cipher: text('cipher'),
    key_size: integer('key_size'),
    control_location: text('control_location').notNull(),
    created_at: createdAt(),
    updated_at: updatedAt(),
  },
  (t) => [check('volume_type_encryption_control_location', sql`${t.control_location} IN ('front-end', 'back-end')`)],
);

/**
 * Groups (Cinder's generic volume groups, 3.13; consistency groups are
 * groups of `default_cgsnapshot_type`): what a client named and asked for.
 * Status lives in `resource_states` (machines/group.ts); membership is the
 * volumes' `group_id`, changed only in the transaction of the group's own
 * CAS (src/services/groups.ts). `group_snapshot_id` / `source_group_id`:
 * what it was created from (3.14).
 */
export const groups = pgTable(
  'groups',
  {
    id: uuid('id').primaryKey(),
    project_id: text('project_id').notNull(),
    user_id: text('user_id'),
    name: text('name'),
    description: text('description'),
    /** no foreign key: a deleted group keeps its type's id after the type is gone (a live group's type cannot be deleted: db/group-types.ts) */
    group_type_id: uuid('group_type_id').notNull(),
    /** the volume types its volumes may have (ids, at least one), in the order given */
    volume_type_ids: uuid('volume_type_ids').array().notNull(),
    availability_zone: text('availability_zone').notNull().default('nova'),
    group_snapshot_id: uuid('group_snapshot_id'),
    source_group_id: uuid('source_group_id'),
    created_at: createdAt(),
    updated_at: updatedAt(),
    deleted_at: deletedAt(),
  },
  (t) => [
    index('groups_live_project_created')
      .on(t.project_id, t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    index('groups_live_created')
      .on(t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    index('groups_deleted')
      .on(t.deleted_at)
      .where(sql`deleted_at IS NOT NULL`),
    index('groups_type').on(t.group_type_id),
  ],
);

/**
 * Group snapshots (3.14): a point-in-time snapshot of every member of a
 * group, taken as one operation (machines/group-snapshot.ts); its member
 * snapshots are rows of `snapshots` with `group_snapshot_id` set.
 */
export const groupSnapshots = pgTable(
  'group_snapshots',
  {
    id: uuid('id').primaryKey(),
    project_id: text('project_id').notNull(),
    user_id: text('user_id'),
    group_id: uuid('group_id')
      .notNull()
      .references(() => groups.id),
    group_type_id: uuid('group_type_id').notNull(),
    name: text('name'),
    description: text('description'),
    created_at: createdAt(),
    updated_at: updatedAt(),
    deleted_at: deletedAt(),
  },
  (t) => [
    index('group_snapshots_live_project_created')
      .on(t.project_id, t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    index('group_snapshots_live_created')
      .on(t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    index('group_snapshots_deleted')
      .on(t.deleted_at)
      .where(sql`deleted_at IS NOT NULL`),
    index('group_snapshots_group').on(t.group_id),
  ],
);

export const volumes = pgTable(
  'volumes',
  {
    id: uuid('id').primaryKey(),
    project_id: text('project_id').notNull(),
    user_id: text('user_id'),
    name: text('name'),
    description: text('description'),
    metadata: jsonb('metadata').$type<Record<string, string>>().notNull().default({}),
    snapshot_id: uuid('snapshot_id'),
    source_volid: uuid('source_volid'),
    availability_zone: text('availability_zone').notNull().default('nova'),
    /** the backend holding the volume's data (src/drivers/backends.ts), chosen by the scheduling step; null: not yet, or the default backend (volumes from before backends were named) */
    backend: text('backend'),
    /** the type's name, as volumes show it (renaming a type renames it here, in the same transaction) */
    volume_type: text('volume_type').notNull().default('__DEFAULT__'),
    /** null only for volumes whose type was deleted after they were */
    volume_type_id: uuid('volume_type_id').references(() => volumeTypes.id, { onDelete: 'set null' }),
    bootable: boolean('bootable').notNull().default(false),
    /** may be attached to several servers at once; copied into the state row, where the attach guard reads it */
    multiattach: boolean('multiattach').notNull().default(false),
    /** the backup it was created from (3.47), or restored from when made by a restore; it reads it while it is created */
    backup_id: uuid('backup_id'),
    /** os-update_readonly_flag: new attachments are read-only; null until the flag is first set (Cinder shows it in metadata from then on) */
    readonly: boolean('readonly'),
    /** its type had an encryption when it was made (or retyped): a type's encryption changes only while no live volume has the type */
    encrypted: boolean('encrypted').notNull().default(false),
    /** the group it is a member of (3.13): set and cleared only in the transaction of the group's CAS that admits or lets it go */
    group_id: uuid('group_id'),
    /** group_id again when that group is a consistency group (of default_cgsnapshot_type), as Cinder shows it; set with group_id */
    consistencygroup_id: uuid('consistencygroup_id'),
    created_at: createdAt(),
    updated_at: updatedAt(),
    deleted_at: deletedAt(),
  },
  (t) => [
    // Live rows only: a list costs the same whatever the number of deleted rows (docs/retention.md).
    index('volumes_live_project_created')
      .on(t.project_id, t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    index('volumes_live_project_name')
      .on(t.project_id, t.name, t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    // sort=name (db/resources.ts sorts by COALESCE(name, ''), never NULL for the keyset).
    index('volumes_live_project_name_sort')
      .on(t.project_id, sql`COALESCE(${t.name}, '')`, t.id)
      .where(sql`deleted_at IS NULL`),
    index('volumes_live_created')
      .on(t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    // Every row: what purge looks for, and the type foreign key's own index.
    index('volumes_deleted')
      .on(t.deleted_at)
      .where(sql`deleted_at IS NOT NULL`),
    index('volumes_type').on(t.volume_type_id),
    index('volumes_group')
      .on(t.group_id)
      .where(sql`group_id IS NOT NULL`),
  ],
);

export const snapshots = pgTable(
  'snapshots',
  {
    id: uuid('id').primaryKey(),
    project_id: text('project_id').notNull(),
    user_id: text('user_id'),
    volume_id: uuid('volume_id')
      .notNull()
      .references(() => volumes.id),
    /** the type of the volume when the snapshot was taken (its per-type quota counts against it, as Cinder's) */
    volume_type_id: uuid('volume_type_id').references(() => volumeTypes.id, { onDelete: 'set null' }),
    name: text('name'),
    description: text('description'),
    metadata: jsonb('metadata').$type<Record<string, string>>().notNull().default({}),
    /** the group snapshot it is a member of (3.14); such a snapshot is deleted with its group snapshot only */
    group_snapshot_id: uuid('group_snapshot_id'),
    created_at: createdAt(),
    updated_at: updatedAt(),
    deleted_at: deletedAt(),
  },
  (t) => [
    index('snapshots_live_project_created')
      .on(t.project_id, t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    index('snapshots_live_created')
      .on(t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    index('snapshots_deleted')
      .on(t.deleted_at)
      .where(sql`deleted_at IS NOT NULL`),
    index('snapshots_volume').on(t.volume_id),
    index('snapshots_type').on(t.volume_type_id),
    index('snapshots_group_snapshot')
      .on(t.group_snapshot_id)
      .where(sql`group_snapshot_id IS NOT NULL`),
  ],
);

/**
 * Backups (Cinder's): what a client named and asked for, and what the
 * backup driver wrote (db/backups.ts, src/backup/). Size and status live in
 * `resource_states`. `volume_id` is not a foreign key: a volume may be
 * deleted while its backups live on (as in Cinder), and an imported backup
 * names the zero uuid.
 */
export const backups = pgTable(
  'backups',
  {
    id: uuid('id').primaryKey(),
    project_id: text('project_id').notNull(),
    user_id: text('user_id'),
    volume_id: uuid('volume_id').notNull(),
    snapshot_id: uuid('snapshot_id'),
    /** the backup this one is an increment of (it holds a dependent lease on it) */
    parent_id: uuid('parent_id'),
    name: text('name'),
    description: text('description'),
    metadata: jsonb('metadata').$type<Record<string, string>>().notNull().default({}),
    /** its volume's metadata when it was taken: a restore gives it to the target (Cinder's volume_meta) */
    volume_metadata: jsonb('volume_metadata').$type<Record<string, string>>().notNull().default({}),
    /** where its objects are, under the backup store's root (Cinder's container) */
    container: text('container'),
    availability_zone: text('availability_zone'),
    /** the name prefix of its objects in the container (Cinder's service_metadata) */
    service_metadata: text('service_metadata'),
    object_count: integer('object_count').notNull().default(0),
    /** percent of the source read, while it is being made (the worker step writes it) */
    progress: smallint('progress').notNull().default(0),
    fail_reason: text('fail_reason'),
    /** when the data it holds was taken: the snapshot's creation, else the backup's */
    data_timestamp: timestamp('data_timestamp', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    created_at: createdAt(),
    updated_at: updatedAt(),
    deleted_at: deletedAt(),
  },
  (t) => [
    index('backups_live_project_created')
      .on(t.project_id, t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    index('backups_live_created')
      .on(t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    // The incremental parent: the newest live backup of a volume in a project.
    index('backups_live_volume')
      .on(t.volume_id, t.project_id, t.data_timestamp)
      .where(sql`deleted_at IS NULL`),
    index('backups_deleted')
      .on(t.deleted_at)
      .where(sql`deleted_at IS NOT NULL`),
  ],
);

/**
 * Volume transfers on offer (Cinder's). A row is the offer's data; whether
 * it is still on offer is the volume's state: `awaiting-transfer.offered`
 * with this id in `operation` (a reset or a force delete ends the offer
 * without touching this table, and such a row is never shown). Accept and
 * cancel delete the row in the transaction of their CAS; the history keeps
 * who offered and who accepted. The auth key is stored as a salted hash.
 */
export const transfers = pgTable(
  'transfers',
  {
    id: uuid('id').primaryKey(),
    volume_id: uuid('volume_id')
      .notNull()
      .references(() => volumes.id),
    name: text('name'),
    salt: text('salt').notNull(),
    /** HMAC-SHA256(salt, auth key), hex */
    crypt_hash: text('crypt_hash').notNull(),
    /** the volume's snapshots stay with the donor (3.55) */
    no_snapshots: boolean('no_snapshots').notNull().default(false),
    source_project_id: text('source_project_id').notNull(),
    created_at: createdAt(),
  },
  (t) => [index('transfers_volume').on(t.volume_id), index('transfers_source_created').on(t.source_project_id, t.created_at, t.id)],
);

/**
 * User messages (Cinder's, 3.3): why an asynchronous operation failed, for
 * the project that asked (a volume that no backend could take). Written in
 * the transaction of the failing transition; shown until `expires_at`.
 */
export const messages = pgTable(
  'messages',
  {
    id: uuid('id').primaryKey(),
    project_id: text('project_id').notNull(),
    /** the request that started the failed operation (its history row's) */
    request_id: text('request_id').notNull(),
    resource_type: text('resource_type').notNull(),
    resource_uuid: uuid('resource_uuid'),
    event_id: text('event_id').notNull(),
    message_level: text('message_level').notNull().default('ERROR'),
    user_message: text('user_message').notNull(),
    created_at: createdAt(),
    expires_at: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [index('messages_project_created').on(t.project_id, t.created_at, t.id)],
);

export const attachments = pgTable(
  'attachments',
  {
    id: uuid('id').primaryKey(),
    project_id: text('project_id').notNull(),
    volume_id: uuid('volume_id')
      .notNull()
      .references(() => volumes.id),
    /** the server (Nova's instance uuid), if given */
    instance_uuid: text('instance_uuid'),
    /** the connector's host */
    host_name: text('host_name'),
    mountpoint: text('mountpoint'),
    /** rw or ro, once a connector is given */
    attach_mode: text('attach_mode'),
    connector: jsonb('connector').$type<Record<string, unknown>>(),
    connection_info: jsonb('connection_info').$type<Record<string, unknown>>(),
    /** made by the legacy os-reserve / os-attach actions rather than the attachments API */
    legacy: boolean('legacy').notNull().default(false),
    attached_at: timestamp('attached_at', { withTimezone: true, mode: 'date' }),
    detached_at: timestamp('detached_at', { withTimezone: true, mode: 'date' }),
    created_at: createdAt(),
    updated_at: updatedAt(),
    deleted_at: deletedAt(),
  },
  (t) => [
    index('attachments_volume').on(t.volume_id),
    index('attachments_live_project_created')
      .on(t.project_id, t.created_at, t.id)
      .where(sql`deleted_at IS NULL`),
    index('attachments_deleted')
      .on(t.deleted_at)
      .where(sql`deleted_at IS NOT NULL`),
  ],
);

export const resourceStates = pgTable(
  'resource_states',
  {
    resource_type: text('resource_type').notNull(),
    resource_id: uuid('resource_id').notNull(),
    /** full machine state, e.g. `creating.scheduling` */
    state: text('state').notNull(),
    /** the state before the last transition (set by the CAS as `previous_state = state`) */
    previous_state: text('previous_state'),
    /** +1 on every transition; orders the history; the ETag */
    version: integer('version').notNull().default(1),
    readers: integer('readers').notNull().default(0),
    dependents: integer('dependents').notNull().default(0),
    /** backups of this volume or snapshot being made (machines/backup.ts) */
    backups: integer('backups').notNull().default(0),
    /** a group's member volumes, a group snapshot's member snapshots (the `member` leases they hold) */
    members: integer('members').notNull().default(0),
    size: integer('size').notNull().default(0),
    operation: jsonb('operation').$type<Record<string, unknown>>(),
    multiattach: boolean('multiattach').notNull().default(false),
    /** live attachments of a volume by status (machines/attachment-counts.ts) */
    att_reserved: integer('att_reserved').notNull().default(0),
    att_attaching: integer('att_attaching').notNull().default(0),
    att_attached: integer('att_attached').notNull().default(0),
    att_detaching: integer('att_detaching').notNull().default(0),
    att_error: integer('att_error').notNull().default(0),
    /** worker running a step on the row; NULL = nobody (pending work, if the state has a step) */
    owner: text('owner'),
    /** a step handed back after a failure is not claimed again before this (back-off) */
    not_before: timestamp('not_before', { withTimezone: true, mode: 'date' }),
    updated_at: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.resource_type, t.resource_id] }),
    // Only the machines' states: a function built from them (db/state-check.ts), not an inline list, which cost every write 47 µs.
    check('resource_states_valid_state', sql`${sql.raw(VALID_STATE_FUNCTION)}(${t.resource_type}, ${t.state})`),
    check(
      'resource_states_counts',
      sql`${t.readers} >= 0 AND ${t.dependents} >= 0 AND ${t.backups} >= 0 AND ${t.members} >= 0 AND ${t.size} >= 0 AND ${t.att_reserved} >= 0 AND ${t.att_attaching} >= 0 AND ${t.att_attached} >= 0 AND ${t.att_detaching} >= 0 AND ${t.att_error} >= 0`,
    ),
    // Small partial index over the work queue (unowned rows in a state with
    // a worker step), in claim order.
    index('resource_states_pending')
      .on(t.updated_at)
      .where(sql`owner IS NULL AND (${stepStates})`),
    // Rows a worker holds: what recovery scans for dead owners.
    index('resource_states_owned')
      .on(t.owner)
      .where(sql`owner IS NOT NULL`),
  ],
);

/**
 * The history. Partitioned by month on `at` (native range partitioning; the
 * partitions are made ahead by db/retention.ts, with a default partition as
 * the catch-all), so that purging a month is dropping a partition. A
 * partitioned table's unique keys must hold the partition key: the primary
 * key is (id, at), and (resource, version) is indexed, not unique (the CAS,
 * which bumps the version in the same statement, is what keeps it unique).
 * drizzle cannot say PARTITION BY: migration 0013 builds the table by hand.
 */
export const stateTransitions = pgTable(
  'state_transitions',
  {
    id: bigint('id', { mode: 'number' }).notNull().generatedAlwaysAsIdentity(),
    resource_type: text('resource_type').notNull(),
    resource_id: uuid('resource_id').notNull(),
    /** NULL for the row's creation */
    from_state: text('from_state'),
    event: text('event').notNull(),
    to_state: text('to_state').notNull(),
    version: integer('version').notNull(),
    /** who: `user:project` for a client, `worker:<id>` for a worker */
    actor: text('actor').notNull(),
    request_id: text('request_id'),
    at: timestamp('at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /**
     * The resource's size after the transition (GiB), written by the same statement: a notification
     * sent later (src/notify/) carries the size the change made, not the size at sending time.
     * NULL in history written before it was recorded.
     */
    size: integer('size'),
  },
  (t) => [
    primaryKey({ columns: [t.id, t.at] }),
    index('state_transitions_resource_version').on(t.resource_type, t.resource_id, t.version),
    // What did request X change? Asked when a request lost its connection
    // mid-change (src/api/changes.ts), so it must not scan the history.
    index('state_transitions_request')
      .on(t.request_id)
      .where(sql`request_id IS NOT NULL`),
  ],
);

/**
 * How far the history was purged (db/retention.ts): transitions before
 * `history_before` may be gone. One row. The history checker reads it: a
 * live resource whose history starts after its creation, or a state row
 * without history, is what a purge leaves, not a lost write, when it is
 * older than this.
 */
export const historyHorizon = pgTable('history_horizon', {
  id: boolean('id').primaryKey().default(true),
  history_before: timestamp('history_before', { withTimezone: true, mode: 'date' }).notNull(),
});

/**
 * Where each outbox relay (src/notify/relay.ts) has got to in the history:
 * every transition with an id up to `position` is confirmed by the broker.
 * One row per relay (`notifications`); the node publishing is `holder`
 * until `lease_until`, renewed each round, taken over by any node once it
 * lapses. The position moves only in a statement that checks the holder.
 */
export const notificationRelay = pgTable('notification_relay', {
  name: text('name').primaryKey(),
  position: bigint('position', { mode: 'number' }).notNull(),
  holder: text('holder'),
  lease_until: timestamp('lease_until', { withTimezone: true, mode: 'date' }),
  updated_at: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/**
 * Who holds what: one row per lease a holder (a snapshot being taken, a
 * volume being cloned) holds on a source. The source's `readers` and
 * `dependents` counters are what its guards read, in the same statement as
 * its CAS; these rows say *who* holds them, so each is given back exactly
 * once (DELETE ... RETURNING) when the holder leaves the state that holds
 * it, whoever moves it (worker, admin, recovery).
 */
export const leases = pgTable(
  'leases',
  {
    source_type: text('source_type').notNull(),
    source_id: uuid('source_id').notNull(),
    holder_type: text('holder_type').notNull(),
    holder_id: uuid('holder_id').notNull(),
    kind: text('kind').$type<LeaseKind>().notNull(),
    created_at: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.holder_type, t.holder_id, t.kind, t.source_type, t.source_id] }),
    index('leases_source').on(t.source_type, t.source_id),
    check('leases_kind', sql.raw(`kind IN (${quoted(LEASE_KINDS)})`)),
  ],
);

/**
 * Requests waiting for a resource to allow their transition (`Prefer:
 * wait=N`), oldest first. Their existence is what makes a CAS on that
 * resource notify (db/cas.ts). A waiter is a lease: its process renews
 * `alive_until` every second or so, up to `deadline`; a waiter whose
 * process died stops being renewed and, a few seconds later, stops
 * holding the head of the queue.
 */
export const waiters = pgTable(
  'waiters',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    resource_type: text('resource_type').notNull(),
    resource_id: uuid('resource_id').notNull(),
    /** when the request stops waiting */
    deadline: timestamp('deadline', { withTimezone: true, mode: 'date' }).notNull(),
    /** renewed while the waiting process lives; the waiter is ignored once past */
    alive_until: timestamp('alive_until', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [index('waiters_resource').on(t.resource_type, t.resource_id, t.id)],
);

export const workers = pgTable('workers', {
  id: text('id').primaryKey(),
  host: text('host').notNull(),
  pid: integer('pid').notNull(),
  started_at: timestamp('started_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  heartbeat_at: timestamp('heartbeat_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  /**
   * Since when its heartbeats have come without a long gap, on the
   * database's clock (db/workers.ts): a worker judges others dead only
   * once it has itself been beating for a whole timeout, so nobody is
   * judged on the clock of an outage (a restart, a failover).
   */
  healthy_since: timestamp('healthy_since', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/**
 * Cinder's services, as an operator disables them: one row per (host,
 * binary) that was ever enabled or disabled by `PUT /os-services/...`.
 * Which services exist, and whether they are up, comes from `workers`.
 */
export const services = pgTable(
  'services',
  {
    host: text('host').notNull(),
    binary: text('binary').notNull(),
    disabled: boolean('disabled').notNull().default(false),
    disabled_reason: text('disabled_reason'),
    updated_at: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.host, t.binary] })],
);

/**
 * Quotas (Cinder's): hard limits per project (quota_limits) over the
 * defaults of the class `default` (quota_class_limits; -1 is unlimited), and
 * what each project uses (quota_usages, in slots), changed in the transaction of the
 * transition that changes it, with the limit in the WHERE clause
 * (db/quotas.ts). quota_reservations holds what an operation in flight has
 * taken and not yet settled (the gigabytes an extend adds).
 */
export const quotaClassLimits = pgTable(
  'quota_class_limits',
  { class_name: text('class_name').notNull(), resource: text('resource').notNull(), hard_limit: integer('hard_limit').notNull() },
  (t) => [primaryKey({ columns: [t.class_name, t.resource] })],
);

export const quotaLimits = pgTable(
  'quota_limits',
  { project_id: text('project_id').notNull(), resource: text('resource').notNull(), hard_limit: integer('hard_limit').notNull() },
  (t) => [primaryKey({ columns: [t.project_id, t.resource] })],
);

/**
 * A project's usage of a resource is the sum of its slots (db/quotas.ts):
 * slot 0 takes every change of a resource that has a limit, so that those
 * changes meet on one row and the limit holds under a race; the changes of
 * an unlimited resource go to the slot of the backend that makes them
 * (1 + pid % 32), so that concurrent transactions rarely meet. A
 * slot alone means nothing and may be negative (taken on one backend, given
 * back on another): hence bigint.
 */
export const quotaUsages = pgTable(
  'quota_usages',
  {
    project_id: text('project_id').notNull(),
    resource: text('resource').notNull(),
    slot: smallint('slot').notNull().default(0),
    in_use: bigint('in_use', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.project_id, t.resource, t.slot] })],
);

export const quotaReservations = pgTable(
  'quota_reservations',
  {
    resource_type: text('resource_type').notNull(),
    resource_id: uuid('resource_id').notNull(),
    project_id: text('project_id').notNull(),
    resource: text('resource').notNull(),
    amount: integer('amount').notNull(),
  },
  (t) => [primaryKey({ columns: [t.resource_type, t.resource_id, t.resource] })],
);

export type VolumeRow = typeof volumes.$inferSelect;
export type NewVolumeRow = typeof volumes.$inferInsert;
export type SnapshotRow = typeof snapshots.$inferSelect;
export type NewSnapshotRow = typeof snapshots.$inferInsert;
export type AttachmentRow = typeof attachments.$inferSelect;
export type BackupRow = typeof backups.$inferSelect;
export type NewBackupRow = typeof backups.$inferInsert;
export type TransferRow = typeof transfers.$inferSelect;
export type MessageRow = typeof messages.$inferSelect;
export type NewAttachmentRow = typeof attachments.$inferInsert;
export type ResourceStateRow = typeof resourceStates.$inferSelect;
export type StateTransitionRow = typeof stateTransitions.$inferSelect;
export type GroupRow = typeof groups.$inferSelect;
export type NewGroupRow = typeof groups.$inferInsert;
export type GroupSnapshotRow = typeof groupSnapshots.$inferSelect;
export type NewGroupSnapshotRow = typeof groupSnapshots.$inferInsert;
