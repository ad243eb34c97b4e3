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
 */
export interface Counts {
  /** resource → what one live row counts: a number, or a column of the row */
  [resource: string]: number | 'size';
}

export interface Reserving {
  /** the state in which the reservation is held */
  state: string;
  /** the event whose transition out of `state` keeps what was reserved */
  keptBy: string;
  /** what entering `state` reserves, from the new row */
  amount(row: { size: number; operation: Record<string, unknown> | null }): Record<string, number>;
}

export const QUOTA: Record<string, { counts: Counts; reserving?: Reserving }> = {
  volume: {
    counts: { volumes: 1, gigabytes: 'size' },
    reserving: {
      state: 'extending.backend',
      keptBy: 'EXTENDED',
      amount: (row) => ({ gigabytes: Math.max(0, Number(row.operation?.['new_size'] ?? row.size) - row.size) }),
    },
  },
  snapshot: { counts: { snapshots: 1, gigabytes: 'size' } },
};

/** What a live row counts, resource by resource. */
export function countsOf(type: string, row: { size: number }): Record<string, number> {
  const counts = QUOTA[type]?.counts ?? {};
  return Object.fromEntries(Object.entries(counts).map(([resource, c]) => [resource, c === 'size' ? row.size : c]));
}
