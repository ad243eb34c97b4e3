/**
 * Lists with Cinder's query conventions: filters, `sort=key:dir,...`,
 * `limit` + `marker` (keyset: the rows after the marker in the sort order,
 * compared in SQL, where timestamps keep their microseconds), `offset`.
 * Shared by volumes and snapshots; each passes its own FROM and columns.
 */
import type postgres from 'postgres';
import type { Executor as Exec } from './connect.ts';

type Fragment = postgres.PendingQuery<postgres.Row[]>;

export interface SortSpec {
  key: string;
  dir: 'asc' | 'desc';
}

export interface ListSpec {
  /** `FROM ... JOIN ...` of the resource, with its columns named for `columns` */
  from: Fragment;
  /** `SELECT` list */
  select: Fragment;
  /** sort key → SQL expression (never NULL: wrap nullable columns in COALESCE) */
  sortable: Record<string, Fragment>;
  /** the id column, last tiebreak of every sort and what a marker names */
  id: Fragment;
  /** conditions ANDed together */
  where: Fragment[];
  sort: SortSpec[];
  limit: number;
  marker?: string | undefined;
  offset?: number | undefined;
}

export class MarkerNotFound extends Error {
  constructor(readonly marker: string) {
    super(`marker ${marker} not found`);
  }
}

/** `(p1 AND p2 ...)`, each part and the whole parenthesised, so it composes under any operator. */
function and(sql: Exec, parts: Fragment[]): Fragment {
  if (parts.length === 0) return sql`TRUE`;
  const joined = parts.slice(1).reduce((acc, p) => sql`${acc} AND (${p})`, sql`(${parts[0]!})`);
  return sql`(${joined})`;
}

/** `(p1 OR p2 ...)`, parenthesised as a whole: `a AND b OR c` would leak rows past `a`. */
function or(sql: Exec, parts: Fragment[]): Fragment {
  const joined = parts.slice(1).reduce((acc, p) => sql`${acc} OR (${p})`, sql`(${parts[0]!})`);
  return sql`(${joined})`;
}

/** Rows of one page, and whether there are more after it. */
export async function listPage<T extends postgres.Row>(sql: Exec, spec: ListSpec): Promise<{ rows: T[]; more: boolean }> {
  const keys = [
    ...spec.sort.map((s) => ({ expr: spec.sortable[s.key]!, dir: s.dir })),
    { expr: spec.id, dir: spec.sort.at(-1)?.dir ?? 'desc' },
  ];
  const where = [...spec.where];
  if (spec.marker !== undefined) {
    const [found] = await sql`SELECT 1 AS one ${spec.from} WHERE ${and(sql, [...spec.where, sql`${spec.id} = ${spec.marker}`])}`;
    if (!found) throw new MarkerNotFound(spec.marker);
    // (k1, k2, ..., id) after the marker's, each key in its own direction.
    const markerValue = (expr: Fragment) => sql`(SELECT ${expr} ${spec.from} WHERE ${spec.id} = ${spec.marker!})`;
    const after = keys.map((k, i) =>
      and(sql, [
        ...keys.slice(0, i).map((prev) => sql`${prev.expr} = ${markerValue(prev.expr)}`),
        k.dir === 'asc' ? sql`${k.expr} > ${markerValue(k.expr)}` : sql`${k.expr} < ${markerValue(k.expr)}`,
      ]),
    );
    where.push(or(sql, after));
  }
  const order = keys.map((k) => (k.dir === 'asc' ? sql`${k.expr} ASC` : sql`${k.expr} DESC`));
  const orderBy = order.slice(1).reduce((acc, o) => sql`${acc}, ${o}`, order[0]!);
  const rows = await sql<T[]>`
    SELECT ${spec.select} ${spec.from}
    WHERE ${and(sql, where)}
    ORDER BY ${orderBy}
    LIMIT ${spec.limit + 1} OFFSET ${spec.offset ?? 0}`;
  const more = rows.length > spec.limit;
  return { rows: more ? rows.slice(0, spec.limit) : [...rows], more };
}

export async function countRows(sql: Exec, from: Fragment, where: Fragment[]): Promise<number> {
  const [row] = await sql`SELECT count(*)::int AS n ${from} WHERE ${and(sql, where)}`;
  return row!.n as number;
}
