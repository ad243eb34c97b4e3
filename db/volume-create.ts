/**
 * A volume's create as ONE statement (issue 19): its type, the project's
 * per-volume limit, the data row and, compiled from the machine
 * (db/cas.ts compileCreate), the state row, its history and its usage.
 *
 * A plain create (no source, no group) in a project whose volume quotas are
 * unlimited (the default class) runs it alone: one round trip, no
 * transaction (it was four: BEGIN, the type, the two inserts, COMMIT). One
 * with a limit to judge is refused by it (`needs_tx`) and runs again in a
 * transaction, with `admit` after it (src/services/volumes.ts), as does every
 * create from a source or into a group, which takes its leases first.
 *
 * The type is locked `FOR KEY SHARE` until the statement (or the
 * transaction) commits, against its deletion (db/volume-types.ts).
 */
import { getTableColumns } from 'drizzle-orm';
import { modelOf } from '../machines/index.ts';
import { compileCreate, countsLimited } from './cas.ts';
import { perVolumeLimitText } from './quotas.ts';
import { volumes } from './schema.ts';
import { typeForCreateSql } from './volume-types.ts';

const model = modelOf('volume');

/** The data row's columns, as the statement answers them (`"data.<column>"`). */
const DATA_COLUMNS = Object.values(getTableColumns(volumes)).map((c) => c.name);

/** What the statement is given beside the state row's context (its `dataParams`, by name). */
export interface VolumeCreateData {
  project_id: string;
  user_id: string | null;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
  snapshot_id: string | null;
  source_volid: string | null;
  backup_id: string | null;
  /** the size again, for the per-volume limit (the state row's is a parameter of the create's own) */
  size: number;
  /** asked for by the request; the type's `multiattach` extra spec may say so too */
  multiattach: boolean;
  /** the type named by id (a UUID), or by name; neither: the project's default (3.62), else __DEFAULT__ */
  type_id: string | null;
  type_name: string | null;
  /** the project a named type must be visible to; null: an admin, who sees every type */
  scope: string | null;
  group_id: string | null;
  /** the volume types of the group it joins: its type must be one of them (null: no group) */
  group_type_ids: string[] | null;
  consistencygroup_id: string | null;
  /** run alone: refuse (`needs_tx`) when a volume quota of the project has a limit to judge */
  alone: boolean;
}

/** What the statement answers beside the rows it made (`"asked.<column>"`), whether it made them or not. */
export interface VolumeCreateAsked {
  /** the type found (null: none), locked */
  type_id: string | null;
  type_name: string | null;
  /** per_volume_gigabytes; -1: any size */
  per_volume: number;
  /** refused for a limit to judge: run it in a transaction */
  needs_tx: boolean;
}

/** Cinder makes a volume multiattach from a type whose extra spec says so (`<is> True`). */
const MULTIATTACH_SPEC = `COALESCE(t.extra_specs ->> 'multiattach' ~* '^<is>\\s*true$', false)`;

/** Compiled once: the statement, its text and its parameters' order. */
export const VOLUME_CREATE = compileCreate(model, {
  columns: ['multiattach'],
  ctes: (p) => `type AS (
  ${typeForCreateSql(p)}
), asked AS (
  SELECT (SELECT id FROM type) AS type_id, (SELECT name FROM type) AS type_name,
    ${perVolumeLimitText(`${p('project_id')}::text`)} AS per_volume,
    ${p('alone')}::boolean AND ${countsLimited(model, `${p('project_id')}::text`, '(SELECT id FROM type)')} AS needs_tx
), data AS (
  INSERT INTO volumes (id, project_id, user_id, name, description, metadata, snapshot_id, source_volid, backup_id,
    multiattach, volume_type, volume_type_id, group_id, consistencygroup_id, encrypted)
  SELECT $2::uuid, ${p('project_id')}::text, ${p('user_id')}::text, ${p('name')}::text, ${p('description')}::text,
    ${p('metadata')}::jsonb, ${p('snapshot_id')}::uuid, ${p('source_volid')}::uuid, ${p('backup_id')}::uuid,
    ${p('multiattach')}::boolean OR ${MULTIATTACH_SPEC}, t.name, t.id, ${p('group_id')}::uuid, ${p('consistencygroup_id')}::uuid, t.encrypted
  FROM type t, asked a
  WHERE NOT a.needs_tx AND (a.per_volume < 0 OR ${p('size')}::int <= a.per_volume)
    AND (${p('group_type_ids')}::uuid[] IS NULL OR t.id = ANY(${p('group_type_ids')}::uuid[]))
  RETURNING *
)`,
  answer: [
    ...['type_id', 'type_name', 'per_volume', 'needs_tx'].map((c) => `(SELECT ${c} FROM asked) AS "asked.${c}"`),
    ...DATA_COLUMNS.map((c) => `data.${c} AS "data.${c}"`),
  ].join(', '),
});
