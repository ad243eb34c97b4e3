/**
 * Route schemas. They declare the shape of every request (what a route
 * reads); the values themselves are checked by src/api/parse.ts, which
 * accepts what real clients send (sizes as digit strings, booleans as
 * "True", null bodies for actions) and answers with Cinder's messages.
 */
import { Type, type TProperties } from 'typebox';

const text = Type.Union([Type.String(), Type.Null()]);

/** What a client may name and describe (with the v1 names too). */
const described = {
  name: Type.Optional(text),
  description: Type.Optional(text),
  display_name: Type.Optional(text),
  display_description: Type.Optional(text),
  metadata: Type.Optional(Type.Unknown()),
};

/** `{"<key>": {...}}`: the wrapper and the object both optional in the schema (parse.unwrap says what is missing). */
const wrapped = <P extends TProperties>(key: string, properties: P) =>
  Type.Object({ [key]: Type.Optional(Type.Object(properties, { additionalProperties: true })) }, { additionalProperties: true });

export const IdParams = Type.Object({ id: Type.String(), project_id: Type.Optional(Type.String()) });
export const ProjectParams = Type.Object({ project_id: Type.Optional(Type.String()) });

/** Query strings: every value a string (a repeated key is refused). */
export const Query = Type.Record(Type.String(), Type.String());

export const VolumeCreateBody = wrapped('volume', {
  ...described,
  size: Type.Optional(Type.Unknown()),
  snapshot_id: Type.Optional(text),
  source_volid: Type.Optional(text),
  volume_type: Type.Optional(text),
  availability_zone: Type.Optional(text),
  imageRef: Type.Optional(text),
  backup_id: Type.Optional(text),
  consistencygroup_id: Type.Optional(text),
  group_id: Type.Optional(text),
  multiattach: Type.Optional(Type.Unknown()),
});

export const VolumeUpdateBody = wrapped('volume', described);

/** `{"<action>": <arguments or null>}`: exactly one key. */
export const ActionBody = Type.Record(Type.String(), Type.Unknown());

export const SnapshotCreateBody = wrapped('snapshot', {
  ...described,
  volume_id: Type.Optional(Type.Unknown()),
  force: Type.Optional(Type.Unknown()),
});

export const SnapshotUpdateBody = wrapped('snapshot', described);

export const BackupCreateBody = wrapped('backup', {
  volume_id: Type.Optional(Type.Unknown()),
  container: Type.Optional(Type.Unknown()),
  name: Type.Optional(Type.Unknown()),
  description: Type.Optional(Type.Unknown()),
  incremental: Type.Optional(Type.Unknown()),
  force: Type.Optional(Type.Unknown()),
  snapshot_id: Type.Optional(Type.Unknown()),
  metadata: Type.Optional(Type.Unknown()),
  availability_zone: Type.Optional(Type.Unknown()),
});

export const BackupUpdateBody = wrapped('backup', {
  name: Type.Optional(Type.Unknown()),
  description: Type.Optional(Type.Unknown()),
  metadata: Type.Optional(Type.Unknown()),
});

/** `{"restore": {...}}`; `{"restore": null}` too (a restore into a new volume, all defaults). */
export const BackupRestoreBody = Type.Object(
  { restore: Type.Optional(Type.Union([Type.Null(), Type.Object({}, { additionalProperties: true })])) },
  { additionalProperties: true },
);
