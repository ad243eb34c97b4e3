/**
 * What a resource counts against its project's quota, read from its state
 * row. Pure: db/ and the enforcer apply it (src/enforcer.ts, db/quotas.ts).
 *
 * - A live resource counts from the transaction that creates it to the one
 *   that enters its final state, whoever ends it (the worker's DELETED after
 *   a delete or a force delete).
 * - An operation that grows a resource reserves the growth when it is
 *   accepted (the limit is checked then, in the same transaction), and the
 *   transition that leaves its state settles the reservation: kept by the
 *   event that completes it, given back by any other (a failure, a lost
 *   worker giving up, a reset, a force delete).
 * - Per-type quotas (Cinder's `volumes_<type>`, `gigabytes_<type>`,
 *   `snapshots_<type>`): each resource named in `perType` also counts as
 *   `<resource>@<type id>`, the volume type of the row (a snapshot's is its
 *   volume's type when it was taken, as Cinder's). Keyed by id, not name, so
 *   renaming a type moves nothing; the API shows and takes them by name.
 */
export interface Counts {
  /** resource → what one live row counts: a number, or a column of the row */
  [resource: string]: number | 'size';
}

export interface Row {
  size: number;
  operation: Record<string, unknown> | null;
}

/**
 * A growth of `size` to the operation's `to`, reserving `resource` (with
 * its per-type twin) by the difference; `largest`: a limit of the project's
 * on the size grown to, not on its usage (Cinder's per_volume_gigabytes),
 * judged where the growth is reserved.
 */
export interface Growth {
  resource: string;
  to: string;
  largest?: string;
}

export interface Reserving {
  /** the state in which the reservation is held */
  state: string;
  /** the event whose transition out of `state` keeps what was reserved */
  keptBy: string;
  /**
   * What it reserves, declared where it is a growth of `size` to the
   * operation's `to` (an extend): `resource` (with its per-type twin) by
   * the difference. `amount` is then computed from it, and the transition
   * into `state` reserves it in its own statement (db/quotas.ts growthCtes).
   */
  growth?: Growth;
  /** what entering `state` reserves, from the new row and the row's type */
  amount(row: Row, typeId: string | null): Record<string, number>;
  /** what keeping it changes besides (a retype gives back what the old type counted) */
  onKept?(row: Row, typeId: string | null): Record<string, number>;
}

export interface QuotaSpec {
  counts: Counts;
  /** the resources also counted per volume type */
  perType: readonly string[];
  reserving: readonly Reserving[];
}

/** The internal name of a per-type resource. */
export const typed = (resource: string, typeId: string) => `${resource}@${typeId}`;

/** `amounts` with the per-type twin of each resource in `perType` added. */
export function withTypes(amounts: Record<string, number>, perType: readonly string[], typeId: string | null): Record<string, number> {
  if (typeId === null) return amounts;
  const out = { ...amounts };
  for (const [r, n] of Object.entries(amounts)) if (perType.includes(r)) out[typed(r, typeId)] = (out[typed(r, typeId)] ?? 0) + n;
  return out;
}

/** The same amounts given back. */
export const negate = (amounts: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(amounts).map(([r, n]) => [r, -n]));

/** What a live row counts, resource by resource (without its per-type twins). */
function baseCounts(counts: Counts, row: { size: number }): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([resource, c]) => [resource, c === 'size' ? row.size : c]));
}

/** What a declared growth reserves of a row (without its per-type twin): the growth of `size` to the operation's `to`, never below 0. */
export function growthOf(g: { resource: string; to: string }, row: Row): Record<string, number> {
  return { [g.resource]: Math.max(0, Number(row.operation?.[g.to] ?? row.size) - row.size) };
}

const EXTEND_GROWTH: Growth = { resource: 'gigabytes', to: 'new_size', largest: 'per_volume_gigabytes' };

const VOLUME_COUNTS = { volumes: 1, gigabytes: 'size' } as const;
const VOLUME_PER_TYPE = ['volumes', 'gigabytes'];

export const QUOTA: Record<string, QuotaSpec> = {
  volume: {
    counts: VOLUME_COUNTS,
    perType: VOLUME_PER_TYPE,
    reserving: [
      {
        state: 'extending.backend',
        keptBy: 'EXTENDED',
        growth: EXTEND_GROWTH,
        amount: (row, typeId) => withTypes(growthOf(EXTEND_GROWTH, row), VOLUME_PER_TYPE, typeId),
      },
      {
        // The new type's counts are taken when the retype is accepted; keeping
        // them gives back the old type's (the total counts do not change).
        state: 'retyping.backend',
        keptBy: 'RETYPED',
        amount: (row) => {
          const to = row.operation?.['type_id'];
          if (typeof to !== 'string') return {};
          return { [typed('volumes', to)]: 1, [typed('gigabytes', to)]: row.size };
        },
        onKept: (row, typeId) => (typeId === null ? {} : negate({ [typed('volumes', typeId)]: 1, [typed('gigabytes', typeId)]: row.size })),
      },
    ],
  },
  snapshot: { counts: { snapshots: 1, gigabytes: 'size' }, perType: ['snapshots', 'gigabytes'], reserving: [] },
  // Project-wide, as Cinder's; a backup in error keeps counting until it is deleted.
  backup: { counts: { backups: 1, backup_gigabytes: 'size' }, perType: [], reserving: [] },
  // Cinder's GroupQuotaEngine: `groups` per project; a group's volumes count as volumes.
  group: { counts: { groups: 1 }, perType: [], reserving: [] },
};

/** What a live row of `type` counts, with its per-type twins. */
export function countsOf(type: string, row: { size: number }, typeId: string | null): Record<string, number> {
  const spec = QUOTA[type];
  if (!spec) return {};
  return withTypes(baseCounts(spec.counts, row), spec.perType, typeId);
}

/** The reservation held in `state`, if any. */
export function reservingIn(type: string, state: string): Reserving | undefined {
  return QUOTA[type]?.reserving.find((r) => r.state === state);
}
