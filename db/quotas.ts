/**
 * Quota usage that never drifts: every change is one statement in the
 * transaction of the transition that causes it, so a refusal rolls the
 * transition back. Cinder reserves in one transaction and commits in
 * another; its usages drift, and it ships `cinder-manage quota sync` for them.
 *
 * A project's usage of a resource is the sum of its slots (quota_usages):
 *
 * - A resource with a limit: every change goes to slot 0, with the limit in
 *   the WHERE clause of the same statement. Two concurrent requests cannot
 *   both pass a limit one of them would break: slot 0 is locked by the
 *   first; the second's WHERE is judged on the row the first commits (the
 *   other slots only change while the resource is unlimited).
 * - An unlimited resource (the default class's, for every resource): the
 *   change goes to the slot of the backend that makes it, `1 + pid % 32`.
 *   A backend runs one transaction at a time, so concurrent transactions of
 *   one project meet only when their backends' pids agree modulo 32 — an
 *   unlimited quota costs one uncontended row write, not a lock every
 *   create of the project waits for in turn.
 *
 * Limits: the project's own (quota_limits), else the `default` class's
 * (quota_class_limits); -1 is unlimited. A limit set while changes of the
 * unlimited kind are in flight holds from the next change on (as Cinder's:
 * usage above a new, lower limit stays).
 */
import type postgres from 'postgres';
import type { Counts } from '../machines/quota.ts';
import type { Executor as Exec } from './connect.ts';

/** The resources volstate counts, and those it reports as Cinder does (always 0 in use). */
export const COUNTED = ['volumes', 'gigabytes', 'snapshots', 'backups', 'backup_gigabytes', 'groups'] as const;
export const QUOTA_RESOURCES = [
  'volumes',
  'snapshots',
  'gigabytes',
  'per_volume_gigabytes',
  'backups',
  'backup_gigabytes',
  'groups',
] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];

/** What refused a consumption: the resource, its limit, what was in use, what was asked. */
export interface Exceeded {
  /** as stored: `gigabytes`, or a per-type `gigabytes@<type id>` */
  resource: string;
  /** as Cinder names it: `gigabytes`, `gigabytes_<type name>` */
  name: string;
  limit: number;
  inUse: number;
  requested: number;
}

/** The slots an unlimited resource's changes spread over (slot 0 is a limited one's). */
const SLOTS = 32;

/**
 * A usage change compiled into a transition's own statement (db/cas.ts),
 * as CTE text: what the row in `from` counts (machines/quota.ts `counts`,
 * with the per-type twins of `perType` for a data table with a volume
 * type), times `sign`, for the project of its data row in `table`, when
 * `when` holds. The same change `consume` makes, row for row: the same
 * slot (0 for a limited resource, the backend's for an unlimited one), the
 * rows taken in name order. `CTE` names the insert (its RETURNING gives one
 * row per resource changed); `CTE_rows` what it would change.
 *
 * A give-back (`sign` -1) always passes. A count (+1) is made here only
 * when every resource it changes is unlimited (then no limit can refuse
 * it, and it needs no lock on a shared row): otherwise nothing is changed,
 * and the caller counts it with `consume`, whose statement judges the
 * limit on the locked row.
 */
export function usageCte(o: {
  cte: string;
  from: string;
  table: string;
  typed: boolean;
  counts: Counts;
  perType: readonly string[];
  sign: 1 | -1;
  when: string;
}): string {
  const amount = (c: number | 'size') => (c === 'size' ? `${o.from}.size` : String(c));
  return usageRowsCte({ ...o, amounts: Object.entries(o.counts).map(([resource, c]) => [resource, amount(c)]) });
}

const sqlLit = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** SQL text: the limit of `resource` for `project` (SQL expressions both), -1 when unlimited (as `consume` reads it). */
function limitText(project: string, resource: string): string {
  return `COALESCE(
      (SELECT hard_limit FROM quota_limits WHERE project_id = ${project} AND resource = ${resource}),
      (SELECT hard_limit FROM quota_class_limits WHERE class_name = 'default' AND resource = ${resource}),
      -1)`;
}

/**
 * SQL text of a query with a row when a resource a declared growth of the
 * resource `id` (an SQL expression) reserves has a limit in its project:
 * then its transition must count it with `consume`, in a transaction.
 */
export function growthLimited(o: {
  id: string;
  table: string;
  typed: boolean;
  growth: { resource: string };
  perType: readonly string[];
}): string {
  const names = [
    `(${sqlLit(o.growth.resource)})`,
    ...(o.typed && o.perType.includes(o.growth.resource) ? [`(${sqlLit(`${o.growth.resource}@`)} || d.volume_type_id)`] : []),
  ];
  return `SELECT 1 FROM ${o.table} d CROSS JOIN LATERAL (VALUES ${names.join(', ')}) AS r(resource)
      WHERE d.id = ${o.id} AND r.resource IS NOT NULL AND ${limitText('d.project_id', 'r.resource')} >= 0`;
}

/**
 * SQL text of a query with a row when the size the resource `id` grows to
 * (`to`, an SQL expression) is over its project's limit `largest` (a
 * growth's, machines/quota.ts Growth): the transition alone refuses it
 * (`needs_tx`), and in its transaction the enforcer refuses it with the 413
 * that names the limit (src/enforcer.ts account).
 */
export function largestExceeded(o: { id: string; table: string; largest: string; to: string }): string {
  return `SELECT 1 FROM ${o.table} d CROSS JOIN LATERAL (SELECT ${limitText('d.project_id', sqlLit(o.largest))} AS l) x
      WHERE d.id = ${o.id} AND x.l >= 0 AND ${o.to} > x.l`;
}

/** A project's limit of a resource (-1: none). */
export async function limitIn(sql: Exec, projectId: string, resource: string): Promise<number> {
  const [row] = await sql<{ l: number }[]>`SELECT ${limitOf(sql, projectId, resource)} AS l`;
  return row!.l;
}

/**
 * SQL text, true when a resource a new row counts (`counts`; per type too, of
 * type `typeId`) has a limit in `project` (SQL expressions both): the row's
 * create must then count it with `consume`, in a transaction (db/cas.ts
 * countsLimited).
 */
export function countLimitedText(o: {
  project: string;
  typeId: string;
  typed: boolean;
  counts: Counts;
  perType: readonly string[];
}): string {
  const names = Object.keys(o.counts).flatMap((resource) => [
    `(${sqlLit(resource)})`,
    ...(o.typed && o.perType.includes(resource) ? [`(${sqlLit(`${resource}@`)} || ${o.typeId})`] : []),
  ]);
  return `EXISTS (SELECT 1 FROM (VALUES ${names.join(', ')}) AS r(resource)
      WHERE r.resource IS NOT NULL AND ${limitText(o.project, 'r.resource')} >= 0)`;
}

/** SQL text: the largest volume `project` (an SQL expression) may create (per_volume_gigabytes; -1: any size). */
export function perVolumeLimitText(project: string): string {
  return limitText(project, "'per_volume_gigabytes'");
}

/** `usageCte` for amounts given as SQL over `from` (its row) and `d` (its data row). */
function usageRowsCte(o: {
  cte: string;
  from: string;
  table: string;
  typed: boolean;
  amounts: readonly (readonly [resource: string, amount: string])[];
  perType: readonly string[];
  sign: 1 | -1;
  when: string;
}): string {
  const rows = o.amounts.flatMap(([resource, amount]) => [
    `(${sqlLit(resource)}, ${amount})`,
    ...(o.typed && o.perType.includes(resource) ? [`(${sqlLit(`${resource}@`)} || d.volume_type_id, ${amount})`] : []),
  ]);
  const limit = limitText('d.project_id', 'r.resource');
  return `${o.cte}_rows AS (
    SELECT d.project_id, r.resource, ${o.sign < 0 ? '-' : ''}r.amount AS delta, ${limit} AS l
    FROM ${o.from} JOIN ${o.table} d ON d.id = ${o.from}.resource_id
    CROSS JOIN LATERAL (VALUES ${rows.join(', ')}) AS r(resource, amount)
    WHERE (${o.when}) AND r.resource IS NOT NULL AND r.amount <> 0
  ), ${o.cte} AS (
    INSERT INTO quota_usages (project_id, resource, slot, in_use)
    SELECT project_id, resource, CASE WHEN l < 0 THEN 1 + pg_backend_pid() % ${SLOTS} ELSE 0 END, delta FROM ${o.cte}_rows
    ${o.sign > 0 ? `WHERE NOT EXISTS (SELECT 1 FROM ${o.cte}_rows WHERE l >= 0)` : ''}
    ORDER BY resource COLLATE "C"
    ON CONFLICT (project_id, resource, slot) DO UPDATE SET in_use = quota_usages.in_use + EXCLUDED.in_use
    RETURNING 1
  )`;
}

/**
 * The resources a change moves, with their amounts (zero and absent ones
 * left out), in name order: every statement locks its rows in the same
 * order, so two of them never wait on each other in a cycle.
 */
function nonZero(deltas: Partial<Record<string, number>>): [string, number][] {
  return Object.entries(deltas)
    .filter((e): e is [string, number] => typeof e[1] === 'number' && e[1] !== 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** What the project uses of a resource: the sum of its slots. */
function inUse(sql: Exec, projectId: string, resource: postgres.PendingQuery<postgres.Row[]> | string) {
  const r = typeof resource === 'string' ? sql`${resource}` : resource;
  return sql`(SELECT COALESCE(sum(u.in_use), 0)::int FROM quota_usages u WHERE u.project_id = ${projectId} AND u.resource = ${r})`;
}

/** A project's limit of a resource; the project a value, or a column of the statement (`v.project_id`). */
function limitOf(sql: Exec, project: string | postgres.PendingQuery<postgres.Row[]>, resource: string) {
  return sql`COALESCE(
    (SELECT hard_limit FROM quota_limits WHERE project_id = ${project} AND resource = ${resource}),
    (SELECT hard_limit FROM quota_class_limits WHERE class_name = 'default' AND resource = ${resource}),
    -1)`;
}

/**
 * Add `deltas` to the project's usage, each within its limit (a negative
 * delta always passes). Returns what exceeded a limit, having changed
 * nothing of that resource: the caller throws, and its transaction rolls
 * the rest back.
 */
export async function consume(tx: Exec, projectId: string, deltas: Partial<Record<string, number>>): Promise<Exceeded | undefined> {
  const changes = nonZero(deltas);
  if (changes.length === 0) return undefined;
  // The changes as VALUES rows, not unnest() of two arrays: the planner knows how many rows
  // VALUES has whatever the parameters, so the generic plan costs what a custom one does and
  // PostgreSQL keeps it. Over unnest() (10 rows guessed) the generic plan looked dearer and the
  // statement was planned afresh at every execution: 0.19 ms, three times a volume lifecycle
  // (bench:control --why). One text per number of resources (one to four).
  const rowsOf = changes.map(([r, n]) => tx`(${r}::text, ${n}::int)`).reduce((all, row) => tx`${all}, ${row}`);
  // One statement for every resource. A resource over its limit is not changed and not
  // returned; the caller then throws and its transaction rolls the others back.
  const rows = await tx<{ resource: string }[]>`
    WITH d AS (
      SELECT d.resource, d.delta,
        COALESCE(
          (SELECT hard_limit FROM quota_limits WHERE project_id = ${projectId} AND resource = d.resource),
          (SELECT hard_limit FROM quota_class_limits WHERE class_name = 'default' AND resource = d.resource),
          -1) AS l
      FROM (VALUES ${rowsOf}) AS d(resource, delta))
    INSERT INTO quota_usages (project_id, resource, slot, in_use)
    SELECT ${projectId}, d.resource, CASE WHEN d.l < 0 THEN 1 + pg_backend_pid() % ${SLOTS} ELSE 0 END, d.delta
    -- CASE, not OR: the sums are read only for a limited resource that grows (OR may evaluate them anyway).
    FROM d WHERE CASE WHEN d.delta <= 0 OR d.l < 0 THEN true ELSE d.delta + ${inUse(tx, projectId, tx`d.resource`)} <= d.l END
    ON CONFLICT (project_id, resource, slot) DO UPDATE SET in_use = quota_usages.in_use + EXCLUDED.in_use
      WHERE CASE WHEN EXCLUDED.in_use <= 0 OR EXCLUDED.slot > 0 THEN true
        ELSE quota_usages.in_use + EXCLUDED.in_use
            + (SELECT COALESCE(sum(o.in_use), 0) FROM quota_usages o
               WHERE o.project_id = ${projectId} AND o.resource = EXCLUDED.resource AND o.slot > 0)
            <= (SELECT d.l FROM d WHERE d.resource = EXCLUDED.resource) END
    RETURNING resource`;
  if (rows.length === changes.length) return undefined;
  const done = new Set(rows.map((r) => r.resource));
  const [resource, requested] = changes.find(([r]) => !done.has(r))!;
  const [row] = await tx<{ limit: number; in_use: number; name: string }[]>`
    SELECT ${limitOf(tx, projectId, resource)} AS limit,
      ${inUse(tx, projectId, resource)} AS in_use,
      ${cinderName(tx, resource)} AS name`;
  return { resource, name: row!.name, limit: row!.limit, inUse: row!.in_use, requested };
}

/**
 * The reservation of a declared growth (machines/quota.ts Reserving.growth)
 * made in the statement of the transition into its state, as CTE text: the
 * reservation rows (`reserve`'s) and, when every resource is unlimited, the
 * usage (`consume`'s; its RETURNING, in the `counted` CTE, is empty
 * otherwise, and the caller counts it with `consume`, which judges the
 * limit on the locked row). The reservation is made either way.
 */
export function growthCtes(o: {
  from: string;
  table: string;
  typed: boolean;
  growth: { resource: string; to: string };
  perType: readonly string[];
  when: string;
}): string {
  const amount = `GREATEST(0, COALESCE((${o.from}.operation ->> ${sqlLit(o.growth.to)})::int, ${o.from}.size) - ${o.from}.size)`;
  const usage = usageRowsCte({ ...o, cte: 'counted', amounts: [[o.growth.resource, amount]], sign: 1 });
  return `${usage}, reserved AS (
    INSERT INTO quota_reservations (resource_type, resource_id, project_id, resource, amount)
    SELECT ${o.from}.resource_type, ${o.from}.resource_id, c.project_id, c.resource, c.delta
    FROM counted_rows c CROSS JOIN ${o.from}
    ON CONFLICT (resource_type, resource_id, resource) DO UPDATE SET amount = quota_reservations.amount + EXCLUDED.amount
  )`;
}

/**
 * Fold the slots of unlimited resources back into slot 0, `batch` (project,
 * resource) pairs per statement, until none has more than one other slot:
 * what a project uses stays one or two rows per resource, not 33, however
 * long it lives. The rows are locked in (project, resource, slot) order
 * (the order every change takes them in: name order, one slot), deleted
 * with their latest values, and added to slot 0 in the same statement, so
 * a change that comes meanwhile either waits and lands in a fresh slot row
 * or was already counted. A resource with a limit is left alone: its other
 * slots no longer change. Returns the pairs folded.
 */
export async function foldUsage(sql: Exec, batch = 500): Promise<number> {
  let folded = 0;
  for (;;) {
    const rows = await sql`
      WITH g AS (
        SELECT u.project_id, u.resource FROM quota_usages u
        WHERE u.slot > 0
          AND COALESCE(
            (SELECT hard_limit FROM quota_limits l WHERE l.project_id = u.project_id AND l.resource = u.resource),
            (SELECT hard_limit FROM quota_class_limits c WHERE c.class_name = 'default' AND c.resource = u.resource),
            -1) < 0
        GROUP BY u.project_id, u.resource HAVING count(*) > 1
        LIMIT ${batch}
      ), locked AS (
        SELECT u.project_id, u.resource, u.slot FROM quota_usages u JOIN g ON g.project_id = u.project_id AND g.resource = u.resource
        WHERE u.slot > 0 ORDER BY u.project_id, u.resource, u.slot FOR UPDATE OF u
      ), gone AS (
        DELETE FROM quota_usages u USING locked k
        WHERE u.project_id = k.project_id AND u.resource = k.resource AND u.slot = k.slot
        RETURNING u.project_id, u.resource, u.in_use
      )
      INSERT INTO quota_usages (project_id, resource, slot, in_use)
      SELECT project_id, resource, 0, sum(in_use) FROM gone GROUP BY project_id, resource
      ON CONFLICT (project_id, resource, slot) DO UPDATE SET in_use = quota_usages.in_use + EXCLUDED.in_use
      RETURNING project_id`;
    folded += rows.length;
    if (rows.length < batch) return folded;
  }
}

/** A resource as Cinder names it: `volumes@<type id>` is `volumes_<type name>`. */
function cinderName(sql: Exec, resource: string) {
  const [base, typeId] = resource.split('@');
  if (!typeId) return sql`${resource}::text`;
  return sql`${base + '_'} || COALESCE((SELECT name FROM volume_types WHERE id = ${typeId}::uuid), ${typeId}::text)`;
}

/** What an operation in flight took and has not settled, keyed by the resource it is for: every resource in one statement. */
export async function reserve(
  tx: Exec,
  ref: { type: string; id: string },
  projectId: string,
  amounts: Partial<Record<string, number>>,
): Promise<void> {
  const changes = nonZero(amounts);
  if (changes.length === 0) return;
  await tx`
    INSERT INTO quota_reservations (resource_type, resource_id, project_id, resource, amount)
    SELECT ${ref.type}, ${ref.id}, ${projectId}, r.resource, r.amount
    FROM unnest(${changes.map(([r]) => r)}::text[], ${changes.map(([, n]) => n)}::int[]) AS r(resource, amount)
    ON CONFLICT (resource_type, resource_id, resource) DO UPDATE SET amount = quota_reservations.amount + EXCLUDED.amount`;
}

/**
 * Settle the reservations of a resource: `keep` leaves what they took in
 * use (the operation succeeded), otherwise it is given back. Exactly once:
 * the rows are deleted by the statement that reads them.
 */
export async function settle(tx: Exec, ref: { type: string; id: string }, keep: boolean): Promise<void> {
  const taken = await tx<{ project_id: string; resource: string; amount: number }[]>`
    DELETE FROM quota_reservations WHERE resource_type = ${ref.type} AND resource_id = ${ref.id}
    RETURNING project_id, resource, amount`;
  if (keep) return;
  for (const r of taken) await consume(tx, r.project_id, { [r.resource]: -r.amount });
}

export interface QuotaRow {
  /** as Cinder names it: `volumes`, `volumes_<type name>` */
  name: string;
  /** as stored: `volumes`, `volumes@<type id>` */
  resource: string;
  limit: number;
  in_use: number;
  reserved: number;
}

/** The resources counted per volume type (machines/quota.ts). */
export const PER_TYPE = ['volumes', 'gigabytes', 'snapshots'] as const;

/** Every resource Cinder reports: the fixed ones, then the per-type ones of every volume type, by name. */
function resources(sql: Exec) {
  return sql`
    SELECT b.name, b.name AS resource, b.ord FROM unnest(${[...QUOTA_RESOURCES]}::text[]) WITH ORDINALITY AS b(name, ord)
    UNION ALL
    SELECT p || '_' || t.name, p || '@' || t.id, 100 FROM volume_types t CROSS JOIN unnest(${[...PER_TYPE]}::text[]) AS p`;
}

/** A project's limits and usage, every resource Cinder reports. */
export async function quotaSet(sql: Exec, projectId: string): Promise<QuotaRow[]> {
  return sql<QuotaRow[]>`
    SELECT r.name, r.resource,
      COALESCE(l.hard_limit, c.hard_limit, -1) AS limit,
      ${inUse(sql, projectId, sql`r.resource`)} AS in_use,
      COALESCE((SELECT sum(amount)::int FROM quota_reservations q WHERE q.project_id = ${projectId} AND q.resource = r.resource), 0) AS reserved
    FROM (${resources(sql)}) AS r
    LEFT JOIN quota_limits l ON l.project_id = ${projectId} AND l.resource = r.resource
    LEFT JOIN quota_class_limits c ON c.class_name = 'default' AND c.resource = r.resource
    ORDER BY r.ord, r.name`;
}

/** A class's limits by Cinder's names (a class without its own limit for a resource has the `default` class's). */
export async function classSet(sql: Exec, className: string): Promise<Record<string, number>> {
  const rows = await sql<{ name: string; hard_limit: number }[]>`
    SELECT r.name, COALESCE(c.hard_limit, d.hard_limit, -1) AS hard_limit
    FROM (${resources(sql)}) AS r
    LEFT JOIN quota_class_limits c ON c.class_name = ${className} AND c.resource = r.resource
    LEFT JOIN quota_class_limits d ON d.class_name = 'default' AND d.resource = r.resource
    ORDER BY r.ord, r.name`;
  return Object.fromEntries(rows.map((r) => [r.name, r.hard_limit]));
}

/** Cinder's resource names → stored ones (`volumes_<type name>` → `volumes@<type id>`); undefined for a name that is no resource. */
export async function storedNames(sql: Exec): Promise<Map<string, string>> {
  const rows = await sql<{ name: string; resource: string }[]>`SELECT name, resource FROM (${resources(sql)}) AS r`;
  return new Map(rows.map((r) => [r.name, r.resource]));
}

export async function setLimits(sql: Exec, table: 'project' | 'class', owner: string, limits: Record<string, number>): Promise<void> {
  for (const [resource, hard] of Object.entries(limits)) {
    if (table === 'project') {
      await sql`INSERT INTO quota_limits (project_id, resource, hard_limit) VALUES (${owner}, ${resource}, ${hard})
        ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = EXCLUDED.hard_limit`;
    } else {
      await sql`INSERT INTO quota_class_limits (class_name, resource, hard_limit) VALUES (${owner}, ${resource}, ${hard})
        ON CONFLICT (class_name, resource) DO UPDATE SET hard_limit = EXCLUDED.hard_limit`;
    }
  }
}

/** Back to the defaults: the project's own limits removed. */
export async function clearLimits(sql: Exec, projectId: string): Promise<void> {
  await sql`DELETE FROM quota_limits WHERE project_id = ${projectId}`;
}
