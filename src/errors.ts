/**
 * Every error the API can answer, in one closed registry: code → HTTP
 * status and message template. Routes throw `new ApiError(code, params)`;
 * one error handler (src/api/errors.ts) renders the Cinder-shaped body
 * `{"<faultName>": {"code": N, "message": "..."}}`. The error
 * table in docs/api.md is checked against this registry by a test.
 *
 * Messages follow real Cinder's where clients or people match on them
 * ("Volume <id> could not be found.", "Invalid volume: ..."), and always
 * say what to do next where there is something to do.
 */

export const ERRORS = {
  MalformedBody: { status: 400, message: 'Malformed request body: {reason}' },
  InvalidInput: { status: 400, message: 'Invalid input received: {reason}' },
  InvalidField: { status: 400, message: 'Invalid input for field/attribute {field}. Value: {value}. {reason}' },
  InvalidVolume: { status: 400, message: 'Invalid volume: {reason}' },
  InvalidSnapshot: { status: 400, message: 'Invalid snapshot: {reason}' },
  InvalidBackup: { status: 400, message: 'Invalid backup: {reason}' },
  InvalidGroup: { status: 400, message: 'Invalid group: {reason}' },
  ActionNotImplemented: { status: 400, message: 'volstate does not implement {what} ({action}): see "Not implemented" in docs/api.md.' },
  InvalidGroupSnapshot: { status: 400, message: 'Invalid group snapshot: {reason}' },
  InvalidGroupType: { status: 400, message: 'Invalid group type: {reason}' },
  GroupTypeInUse: { status: 400, message: 'Target group type {id} is still in use: delete the groups of this type first.' },
  VolumeTypeEncryptionInUse: {
    status: 400,
    message: 'Cannot {verb} encryption specs. Volume type {id} in use: a volume of this type exists.',
  },
  VolumeTypeEncryptionExists: {
    status: 400,
    message: 'Volume type encryption for type {id} already exists: update it (PUT) or delete it first.',
  },
  InvalidVolumeType: { status: 400, message: 'Invalid volume type: {reason}.' },
  QosSpecsInUse: { status: 400, message: 'QoS Specs {id} is still associated with entities: dissociate them, or delete with ?force=True.' },
  VolumeTypeInUse: { status: 400, message: 'Volume Type {id} deletion is not allowed with volumes present with the type.' },
  InvalidAuthKey: {
    status: 400,
    message: 'Invalid auth key: Attempt to transfer {id} with invalid auth key. Ask the project that created the transfer for its key.',
  },
  InvalidAttachment: { status: 400, message: 'Invalid attachment: {reason}' },
  NoSuchAction: {
    status: 400,
    message: 'There is no such action: {action}. Verify the request body and Content-Type header and try again.',
  },
  InvalidVersionHeader: {
    status: 400,
    message: 'Invalid OpenStack-API-Version header {value}: expected "volume 3.N" or "volume latest".',
  },
  Unauthorized: { status: 401, message: 'Authentication required: {reason}' },
  MalformedUrl: { status: 400, message: "Malformed request url: the project in the URL is not the token's project." },
  Forbidden: { status: 403, message: "Policy doesn't allow {action} to be performed." },
  VolumeNotFound: { status: 404, message: 'Volume {id} could not be found.' },
  SnapshotNotFound: { status: 404, message: 'Snapshot {id} could not be found.' },
  BackupNotFound: { status: 404, message: 'Backup {id} could not be found.' },
  GroupNotFound: { status: 404, message: 'Group {id} could not be found.' },
  GroupSnapshotNotFound: { status: 404, message: 'GroupSnapshot {id} could not be found.' },
  GroupTypeNotFound: { status: 404, message: 'Group type {id} could not be found.' },
  DefaultGroupTypeNotFound: {
    status: 404,
    message: 'Default group type can not be found: set VOLSTATE_DEFAULT_GROUP_TYPE to the name of a group type.',
  },
  GroupTypeSpecsNotFound: { status: 404, message: 'Group Type {id} has no specs with key {key}.' },
  VolumeTypeProjectDefaultNotFound: {
    status: 404,
    message: 'Default type for project {project} not found: set one with PUT /default-types/{project}.',
  },
  VolumeTypeEncryptionNotFound: { status: 404, message: 'Volume type encryption for type {id} does not exist.' },
  EncryptionSpecNotFound: { status: 404, message: 'Volume type {id} has no encryption spec {key}.' },
  AttachmentNotFound: { status: 404, message: 'Volume attachment could not be found with filter: attachment_id = {id}.' },
  MessageNotFound: { status: 404, message: 'Message {id} could not be found.' },
  TransferNotFound: { status: 404, message: 'Transfer {id} could not be found.' },
  MarkerNotFound: { status: 404, message: 'Marker {marker} could not be found: give the id of the last item of the previous page.' },
  VolumeTypeNotFound: { status: 404, message: 'Volume type {id} could not be found.' },
  QosSpecsNotFound: { status: 404, message: 'No such QoS spec {id}.' },
  QosSpecsKeyNotFound: { status: 404, message: 'QoS spec {id} has no key(s) {keys}.' },
  ExtraSpecNotFound: { status: 404, message: 'Volume Type {id} has no extra specs with key {key}.' },
  NoAccessList: { status: 404, message: 'Access list not available for public volume types ({id}).' },
  VolumeTypeAccessNotFound: { status: 404, message: 'Volume type access not found for {id} / {project} combination.' },
  MetadataNotFound: { status: 404, message: 'Metadata item with key {key} could not be found for {id}.' },
  ServiceNotFound: { status: 404, message: 'Service {binary} on host {host} could not be found.' },
  HostNotFound: { status: 404, message: 'Host {host} could not be found: list the hosts with GET /os-hosts.' },
  NotFound: { status: 404, message: 'The resource could not be found.' },
  FeatureNotImplemented: { status: 404, message: 'volstate does not implement {what}: see "Not implemented" in docs/api.md.' },
  VersionNotSupported: {
    status: 406,
    message: 'Version {version} is not supported by the API. Minimum is {min} and maximum is {max}.',
  },
  VolumeIsBusy: { status: 409, message: 'VolumeIsBusy: {reason}' },
  SnapshotIsBusy: { status: 409, message: 'SnapshotIsBusy: {reason}' },
  BackupIsBusy: { status: 409, message: 'BackupIsBusy: {reason}' },
  GroupIsBusy: { status: 409, message: 'GroupIsBusy: {reason}' },
  GroupSnapshotIsBusy: { status: 409, message: 'GroupSnapshotIsBusy: {reason}' },
  GroupTypeExists: { status: 409, message: 'Group Type {name} already exists.' },
  QosSpecsExists: { status: 409, message: 'QoS Specs {name} already exists.' },
  VolumeTypeExists: { status: 409, message: 'Volume Type {name} already exists.' },
  VolumeTypeAccessExists: { status: 409, message: 'Volume type access for {id} / {project} combination already exists.' },
  ResourceConflict: { status: 409, message: 'Resource conflict: {reason}' },
  PreconditionFailed: {
    status: 412,
    message: 'The {noun} changed: If-Match asked for version {expected}, it is at version {actual}. Read it again.',
  },
  VolumeLimitExceeded: { status: 413, message: "Maximum number of volumes allowed ({allowed}) exceeded for quota '{name}'." },
  SnapshotLimitExceeded: { status: 413, message: 'Maximum number of snapshots allowed ({allowed}) exceeded.' },
  BackupLimitExceeded: { status: 413, message: 'Maximum number of backups allowed ({allowed}) exceeded' },
  VolumeBackupSizeExceedsAvailableQuota: {
    status: 413,
    message:
      'Requested backup exceeds allowed Backup gigabytes quota. Requested {requested}G, quota is {quota}G and {consumed}G has been consumed.',
  },
  VolumeSizeExceedsAvailableQuota: {
    status: 413,
    message:
      'Requested volume or snapshot exceeds allowed {name} quota. Requested {requested}G, quota is {quota}G and {consumed}G has been consumed.',
  },
  VolumeSizeExceedsLimit: { status: 413, message: 'Requested volume size {size}G is larger than maximum allowed limit {limit}G.' },
  PayloadTooLarge: { status: 413, message: 'The request body is larger than {limit} bytes.' },
  UriTooLong: { status: 414, message: 'A segment of the request path is longer than {limit} characters: no resource has such a name.' },
  UnsupportedMediaType: { status: 415, message: 'Unsupported Content-Type {type}: send application/json.' },
  Internal: {
    status: 500,
    message: 'The server has either erred or is incapable of performing the requested operation.',
  },
  BackendFailed: {
    status: 503,
    message: 'The storage backend failed: {reason}. Retry, or delete what it left in an error state.',
  },
  ServiceUnavailable: { status: 503, message: 'The database is unavailable; retry shortly. ({reason})' },
  AuthUnavailable: { status: 503, message: 'Authentication is unavailable: {reason}. Retry shortly.' },
  NotReady: { status: 503, message: 'This node is not ready: {reason}.' },
  ChangedUnread: {
    status: 503,
    message:
      'The change was made ({what}), but the database went away before the answer could be read. Look at the resource; do not repeat the request.',
  },
  OutcomeUnknown: {
    status: 503,
    message:
      'The database connection was lost during the change and the database did not answer again within {seconds} s: whether the change was made is unknown. Look at the resource before retrying.',
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** Cinder's fault names by HTTP status (cinder/api/openstack/wsgi.py); anything else is computeFault. */
export const FAULT_NAMES: Readonly<Record<number, string>> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

export function faultName(status: number): string {
  return FAULT_NAMES[status] ?? 'computeFault';
}

/** The most of a client's input a message repeats: a 100 KB name is not echoed whole. */
export const ECHO_MAX = 120;
/** Any one field of a message, whatever it holds (a reason may quote input too). */
const FIELD_MAX = 2000;

/** `text`, cut to `max` characters with how long it was: `abc… (100000 characters)`. */
export function echo(text: string, max = ECHO_MAX): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

function render(template: string, params: Record<string, unknown>): string {
  return template.replace(/\{(\w+)\}/g, (m, key: string) => (key in params ? echo(String(params[key]), FIELD_MAX) : m));
}

export interface ApiErrorOptions {
  /** machine-readable fields added to the fault body (type, state, event, allowed, ...) */
  details?: Record<string, unknown>;
  headers?: Record<string, string>;
  /** the machine's refusal this error reports (what a waiting request waits on) */
  refusal?: { kind: string; ref: { type: string; id: string }; event: string };
}

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown>;
  readonly headers: Record<string, string>;
  readonly refusal: ApiErrorOptions['refusal'];

  constructor(code: ErrorCode, params: Record<string, unknown> = {}, opts: ApiErrorOptions = {}) {
    super(render(ERRORS[code].message, params));
    this.name = 'ApiError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = opts.details ?? {};
    this.headers = opts.headers ?? {};
    this.refusal = opts.refusal;
  }

  /** `{"<faultName>": {"code": N, "message": "...", ...details}}` */
  body(): Record<string, Record<string, unknown>> {
    return { [faultName(this.status)]: { code: this.status, message: this.message, ...this.details } };
  }
}
