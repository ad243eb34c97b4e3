/**
 * How a volume's status follows its attachments. Pure.
 *
 * The volume row counts its live attachments by status bucket
 * (`att_reserved`, `att_attaching`, `att_attached`, `att_detaching`,
 * `att_error`). Every attachment transition sends the volume ONE event,
 * ATTACHMENTS_CHANGED, whose parameters are the changes of those counts
 * (`d_attached: +1, d_attaching: -1` for os-complete), in the same
 * transaction as the attachment's own CAS. The volume's next state is
 * chosen from the counts *after* the change, first match wins, as
 * Cinder's finish_detach recomputes it:
 *
 *   any attached → in-use, else any attaching → attaching, else any
 *   detaching → detaching, else any reserved → reserved, else available.
 *
 * A new attachment (the counts grow) is accepted only when the volume is
 * multiattach or has none: two concurrent attachment creates on a
 * non-multiattach volume cannot both win.
 */
import { allOf, type AtomGuard, type AllOfGuard, type ColumnType, type EffectDef } from './model.ts';

export const ATTACHMENT_BUCKETS = ['reserved', 'attaching', 'attached', 'detaching', 'error'] as const;
export type AttachmentBucket = (typeof ATTACHMENT_BUCKETS)[number];

type CountColumn = `att_${AttachmentBucket}`;
type DeltaParam = `d_${AttachmentBucket}`;
export type AttachmentCounts = Record<CountColumn, number>;
export type AttachmentDeltas = Record<DeltaParam, number>;

const col = (b: AttachmentBucket): CountColumn => `att_${b}`;
const param = (b: AttachmentBucket): DeltaParam => `d_${b}`;

/** Context columns of the counts. */
export const attachmentCountColumns = Object.fromEntries(ATTACHMENT_BUCKETS.map((b) => [col(b), 'int'])) as Record<CountColumn, 'int'>;

/** Parameters of ATTACHMENTS_CHANGED. */
export const attachmentDeltaParams = Object.fromEntries(ATTACHMENT_BUCKETS.map((b) => [param(b), 'int'])) as Record<DeltaParam, ColumnType>;

const sumSql = (f: (b: AttachmentBucket) => string) => ATTACHMENT_BUCKETS.map(f).join(' + ');
const total = (c: AttachmentCounts) => ATTACHMENT_BUCKETS.reduce((n, b) => n + c[col(b)], 0);
const growth = (e: object) => ATTACHMENT_BUCKETS.reduce((n, b) => n + (param(b) in e ? ((e as AttachmentDeltas)[param(b)] ?? 0) : 0), 0);
const after = (c: AttachmentCounts, e: object, b: AttachmentBucket) =>
  c[col(b)] + (param(b) in e ? ((e as AttachmentDeltas)[param(b)] ?? 0) : 0);

/** The volume status each bucket gives, in priority order. */
export const STATUS_BY_BUCKET = [
  ['attached', 'in-use'],
  ['attaching', 'attaching'],
  ['detaching', 'detaching'],
  ['reserved', 'reserved'],
] as const;

export function attachmentGuards<C extends AttachmentCounts & { multiattach: boolean }, E extends object>() {
  const atoms = {
    countsStayValid: {
      unmet: 'it has no such attachment to remove',
      refusal: 'invalid',
      js: (c: C, e: E) => ATTACHMENT_BUCKETS.every((b) => after(c, e, b) >= 0),
      sql: ATTACHMENT_BUCKETS.map((b) => `${col(b)} + :${param(b)} >= 0`).join(' AND '),
    },
    newAttachmentAllowed: {
      unmet: 'it is attached already and is not multiattach',
      refusal: 'invalid',
      js: (c: C, e: E) => growth(e) <= 0 || c.multiattach || total(c) === 0,
      sql: `(${sumSql((b) => `:${param(b)}`)}) <= 0 OR multiattach OR (${sumSql(col)}) = 0`,
    },
    noNewAttachment: {
      unmet: 'no attachment can be added in this status',
      refusal: 'invalid',
      js: (_c: C, e: E) => growth(e) <= 0,
      sql: `(${sumSql((b) => `:${param(b)}`)}) <= 0`,
    },
    noAttachments: {
      unmet: 'it has attachments (delete them first)',
      refusal: 'invalid',
      js: (c: C) => total(c) === 0,
      sql: `(${sumSql(col)}) = 0`,
    },
    hasAttached: {
      unmet: 'it has no attached attachment',
      refusal: 'invalid',
      js: (c: C) => c.att_attached > 0,
      sql: 'att_attached > 0',
    },
  } satisfies Record<string, AtomGuard<C, E>>;
  const afters = Object.fromEntries(
    STATUS_BY_BUCKET.map(([b]) => [
      `${b}After`,
      {
        unmet: `no ${b} attachment would remain`,
        refusal: 'invalid',
        js: (c: C, e: E) => after(c, e, b) > 0,
        sql: `${col(b)} + :${param(b)} > 0`,
      },
    ]),
  ) as Record<`${(typeof STATUS_BY_BUCKET)[number][0]}After`, AtomGuard<C, E>>;
  const follow = Object.fromEntries(
    STATUS_BY_BUCKET.map(([b]) => [`follow:${b}`, allOf('countsStayValid', 'newAttachmentAllowed', `${b}After`)]),
  ) as Record<`follow:${(typeof STATUS_BY_BUCKET)[number][0]}`, AllOfGuard>;
  return {
    ...atoms,
    ...afters,
    ...follow,
    'follow:none': allOf('countsStayValid', 'newAttachmentAllowed'),
    detachOnly: allOf('countsStayValid', 'noNewAttachment'),
  };
}

export function attachmentEffects<C extends AttachmentCounts, E extends object>() {
  const sql = Object.fromEntries(ATTACHMENT_BUCKETS.map((b) => [col(b), `${col(b)} + :${param(b)}`]));
  return {
    countAttachments: {
      js: (c: C, e: E) => Object.fromEntries(ATTACHMENT_BUCKETS.map((b) => [col(b), after(c, e, b)])) as Partial<C>,
      sql,
    } as EffectDef<C, E>,
  };
}

/** ATTACHMENTS_CHANGED from an attachment-cycle state: the target follows the counts. */
export function followAttachments(machineId: string) {
  return [
    ...STATUS_BY_BUCKET.map(([b, status]) => ({
      guard: `follow:${b}` as const,
      target: `#${machineId}.${status}`,
      actions: 'countAttachments' as const,
    })),
    { guard: 'follow:none' as const, target: `#${machineId}.available`, actions: 'countAttachments' as const },
  ];
}
