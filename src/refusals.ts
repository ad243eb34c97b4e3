/**
 * A refused transition, as the client sees it.
 *
 * - busy → 409 `VolumeIsBusy` / `SnapshotIsBusy` with `Retry-After`: an
 *   operation is in flight on the resource (or one it depends on);
 *   retrying later may succeed.
 * - invalid → 400 `Invalid volume: ...` / `Invalid snapshot: ...`, as real
 *   Cinder answers (clients and Nova expect 400 there).
 * - missing, gone → 404; stale (If-Match) → 412.
 *
 * Both 409 and 400 bodies name the state at refusal time (read by the same
 * statement that refused) and the events the machine accepts now, in
 * words and as machine-readable fields: `type`, `status`, `state`,
 * `event`, `allowed`.
 */
import { modelOf, type ResourceModel, type ResourceType } from '../machines/index.ts';
import type { Refusal } from './enforcer.ts';
import { ApiError } from './errors.ts';

/** Seconds a busy client is told to wait before retrying. */
export const RETRY_AFTER_SECONDS = 1;

const NAMES = {
  volume: { notFound: 'VolumeNotFound', busy: 'VolumeIsBusy', invalid: 'InvalidVolume' },
  snapshot: { notFound: 'SnapshotNotFound', busy: 'SnapshotIsBusy', invalid: 'InvalidSnapshot' },
  // Cinder answers attachment conflicts (duplicate connectors) with ResourceConflict, 409.
  attachment: { notFound: 'AttachmentNotFound', busy: 'ResourceConflict', invalid: 'InvalidAttachment' },
  backup: { notFound: 'BackupNotFound', busy: 'BackupIsBusy', invalid: 'InvalidBackup' },
  group: { notFound: 'GroupNotFound', busy: 'GroupIsBusy', invalid: 'InvalidGroup' },
  group_snapshot: { notFound: 'GroupSnapshotNotFound', busy: 'GroupSnapshotIsBusy', invalid: 'InvalidGroupSnapshot' },
} as const satisfies Record<ResourceType, unknown>;

function verbOf(model: ResourceModel, event: string): string {
  return model.events[event]?.verb ?? event.toLowerCase().replaceAll('_', ' ');
}

/** The client's name for an event (`os-extend`), not the machine's (`EXTEND`). */
function requestOf(model: ResourceModel, event: string): string {
  return model.events[event]?.request ?? verbOf(model, event);
}

/** `ifMatch`: the version the request asked for, to name it when stale. */
export function refusalError(refusal: Refusal, ifMatch?: number): ApiError {
  const type = refusal.ref.type;
  const model = modelOf(type);
  const names = NAMES[type];
  const id = refusal.ref.id;
  if (refusal.kind === 'missing' || refusal.kind === 'gone') return new ApiError(names.notFound, { id });
  const row = refusal.row!;
  if (refusal.kind === 'stale') {
    return new ApiError('PreconditionFailed', { noun: model.noun, expected: ifMatch ?? '?', actual: row.version });
  }
  const status = model.index.statusOf(row.state);
  // In words, by what a client would send; the machine's event names stay in `allowed`.
  const allowed = refusal.allowed.length ? [...new Set(refusal.allowed.map((e) => requestOf(model, e)))].join(', ') : 'none';
  const where = row.state === status ? `'${status}'` : `'${status}' (step ${row.state})`;
  // Several transitions may fail on one guard (os-reset_status has one per target): each reason once.
  const reasons = [...new Set(refusal.failed.map((f) => f.unmet))].join('; ');
  const details = {
    type: refusal.kind === 'busy' ? names.busy : names.invalid,
    status,
    state: row.state,
    event: refusal.event,
    allowed: refusal.allowed,
    version: row.version,
  };
  const verb = `${verbOf(model, refusal.event)}`;
  const asked = requestOf(model, refusal.event);
  if (refusal.kind === 'busy' || refusal.kind === 'not_owner') {
    const why = reasons || 'an operation is in flight on it';
    return new ApiError(
      names.busy,
      { reason: `cannot ${verb} ${model.noun} ${id} now (${asked}): it is ${where} and ${why}. Retry later. Allowed now: ${allowed}.` },
      { details: { ...details, type: names.busy }, headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) }, refusal },
    );
  }
  const why = reasons ? `: ${reasons}` : ` in status ${where}`;
  return new ApiError(
    names.invalid,
    { reason: `cannot ${verb} ${model.noun} ${id} (${asked})${why}${reasons ? ` (status ${where})` : ''}. Allowed now: ${allowed}.` },
    { details, refusal },
  );
}
