/**
 * The independent history checker (`volstate check`): reads what a run
 * left in the database — the history (`state_transitions`), the state rows,
 * the leases and the resources — and checks it against the machines and
 * the invariants the product promises, without any of the code that made
 * it (no enforcer, no CAS compiler: src/check/edges.ts reads the machines
 * on its own), so that a bug there shows here.
 *
 * What it checks:
 * - every transition is an edge of its machine, and the first is the
 *   creation into the initial state;
 * - each resource's versions run 1, 2, 3, … with no gap and no duplicate,
 *   each transition starts where the one before it ended, and the state row
 *   is where the last transition left it, at the last version;
 * - readers and dependents are never negative, equal the leases that
 *   record them, and no reader is held when nothing is in flight;
 * - at the end, no resource is in a worker step, and none is owned;
 * - no live snapshot of a deleted volume; no live attachment of a deleted
 *   volume; a volume's attachment counts equal its live attachments;
 * - backups: a volume's or snapshot's `backups` counter equals the backup
 *   leases on it; no live incremental backup of a deleted parent; quota
 *   usage counts live backups and their gigabytes;
 * - groups: a group's `members` counter equals the live volumes that name
 *   it; a group snapshot is never partial (no member left in
 *   `creating.group` once it ended, every member of an available one
 *   available); quota usage counts live groups;
 * - optionally, every request a client was told succeeded is in the
 *   history by its request id, and no refused one is.
 *
 * What a consumer of the notifications received is checked against the
 * same history by src/check/notifications.ts (the harness's `--notify`).
 *
 * Each violation names the resource and carries its history slice.
 */
import type postgres from 'postgres';
import type { StateTransitionRow } from '../../db/schema.ts';
import { RESOURCE_TYPES } from '../../machines/index.ts';
import { factsOf, type MachineFacts } from './edges.ts';

type Exec = postgres.Sql;

export type ViolationKind =
  | 'not-an-edge'
  | 'bad-creation'
  | 'version-gap'
  | 'broken-chain'
  | 'row-mismatch'
  | 'negative-counter'
  | 'counter-lease-mismatch'
  | 'reader-at-rest'
  | 'not-at-rest'
  | 'owned-at-rest'
  | 'snapshot-outlives-volume'
  | 'attachment-on-deleted-volume'
  | 'attachment-counts'
  | 'incremental-outlives-parent'
  | 'group-membership'
  | 'group-snapshot-partial'
  | 'quota-usage'
  | 'accepted-not-in-history'
  | 'refused-but-changed'
  | 'notification-missing'
  | 'notification-order'
  | 'notification-unexpected';

export interface Violation {
  kind: ViolationKind;
  resource: string;
  detail: string;
  /** the resource's transitions around the violation: `v3 available --EXTEND--> extending (actor, request)` */
  slice: string[];
}

type TransitionRow = Omit<StateTransitionRow, 'id'>;

export interface CheckOptions {
  /** check the end state (nothing in a step, nothing owned, no reader held): after a run has settled */
  atRest?: boolean;
  /** request ids clients were told succeeded (2xx), and those refused (4xx) */
  requests?: { accepted: string[]; refused: string[] };
}

export interface CheckReport {
  transitions: number;
  resources: number;
  violations: Violation[];
}

const line = (t: TransitionRow) =>
  `v${t.version} ${t.from_state ?? '∅'} --${t.event}--> ${t.to_state} (${t.actor}${t.request_id ? `, ${t.request_id}` : ''})`;

export async function checkHistory(sql: Exec, opts: CheckOptions = {}): Promise<CheckReport> {
  const facts = new Map<string, MachineFacts>(RESOURCE_TYPES.map((t) => [t, factsOf(t)]));
  const rows = new Map<string, StateRow>();
  for (const r of await sql<(StateRow & { resource_type: string; resource_id: string })[]>`
    SELECT resource_type, resource_id, state, version, readers, dependents, owner, updated_at FROM resource_states`) {
    rows.set(`${r.resource_type}:${r.resource_id}`, r);
  }
  // How far a purge went (db/retention.ts): before it, transitions and deleted resources may be gone.
  const [horizon] = await sql<{ history_before: Date }[]>`SELECT history_before FROM history_horizon`;
  const ctx: Context = { sql, facts, rows, purgedBefore: horizon?.history_before, violations: [] };

  const transitions = await checkTransitions(ctx);
  await checkCounters(ctx);
  if (opts.atRest) await checkAtRest(ctx);
  await checkRelations(ctx);
  await checkQuotaUsage(ctx);
  if (opts.requests) await checkRequests(ctx, opts.requests);
  return { transitions, resources: rows.size, violations: ctx.violations };
}

type StateRow = { state: string; version: number; readers: number; dependents: number; owner: string | null; updated_at: Date };

/** What every step of the check reads, and where it writes what it finds. */
interface Context {
  sql: Exec;
  facts: Map<string, MachineFacts>;
  /** every state row, by `type:id` */
  rows: Map<string, StateRow>;
  /** the purge's cutoff, if one ran */
  purgedBefore: Date | undefined;
  violations: Violation[];
}

/**
 * The history, one resource at a time in version order, streamed: each
 * transition an edge of its machine, versions without a gap, each starting
 * where the one before ended, and the last one the state row. Then every row
 * has a history. Returns how many transitions were read.
 */
async function checkTransitions(ctx: Context): Promise<number> {
  const { sql, rows, purgedBefore, violations } = ctx;
  let transitions = 0;
  let current: TransitionRow[] = [];
  const seen = new Set<string>();
  const finish = (history: TransitionRow[]) => {
    if (history.length === 0) return;
    seen.add(`${history[0]!.resource_type}:${history[0]!.resource_id}`);
    checkResourceHistory(ctx, history);
  };
  await sql<TransitionRow[]>`
    SELECT resource_type, resource_id::text, from_state, event, to_state, version, actor, request_id, at
    FROM state_transitions ORDER BY resource_type, resource_id, version, id`.cursor(2000, (batch) => {
    for (const t of batch) {
      transitions++;
      const head = current[0];
      if (head && (head.resource_type !== t.resource_type || head.resource_id !== t.resource_id)) {
        finish(current);
        current = [];
      }
      current.push(t);
    }
  });
  finish(current);
  for (const [key, r] of rows) {
    // Its every transition was in months a purge dropped.
    if (seen.has(key) || (purgedBefore !== undefined && r.updated_at < purgedBefore)) continue;
    violations.push({ kind: 'row-mismatch', resource: key, detail: 'a state row with no history', slice: [] });
  }
  return transitions;
}

/** One resource's whole history (in version order), against its machine and its state row. */
function checkResourceHistory(ctx: Context, history: TransitionRow[]): void {
  const { facts, rows, purgedBefore, violations } = ctx;
  const { resource_type: type, resource_id: id } = history[0]!;
  const key = `${type}:${id}`;
  const f = facts.get(type);
  const slice = (i: number) => history.slice(Math.max(0, i - 3), i + 2).map(line);
  const add = (kind: ViolationKind, detail: string, at: number) => {
    violations.push({ kind, resource: key, detail, slice: slice(at) });
  };
  if (!f) return add('not-an-edge', `unknown resource type ${type}`, 0);
  // A purge may have dropped the first transitions (whole months of history): then the history
  // starts later, and its first transition is checked as an edge, not as a creation.
  const first = history[0]!.version;
  if (first !== 1 && purgedBefore === undefined)
    add('version-gap', `the history starts at version ${first}, and nothing was ever purged`, 0);
  history.forEach((t, i) => {
    if (t.version !== first + i) add('version-gap', `transition ${i + 1} has version ${t.version}`, i);
    if (i === 0 && first === 1) {
      if (t.from_state !== null || !f.edges.has(`|${t.event}|${t.to_state}`))
        add('bad-creation', `created by ${t.event} into ${t.to_state}, not into ${f.initial}`, i);
      return;
    }
    if (i === 0) {
      if (!f.edges.has(`${t.from_state}|${t.event}|${t.to_state}`))
        add('not-an-edge', `${t.from_state} --${t.event}--> ${t.to_state} is no edge of the ${type} machine`, i);
      return;
    }
    const before = history[i - 1]!;
    if (t.from_state !== before.to_state)
      add('broken-chain', `v${t.version} starts in ${t.from_state}, v${before.version} ended in ${before.to_state}`, i);
    if (!f.edges.has(`${t.from_state}|${t.event}|${t.to_state}`))
      add('not-an-edge', `${t.from_state} --${t.event}--> ${t.to_state} is no edge of the ${type} machine`, i);
  });
  const last = history.at(-1)!;
  const row = rows.get(key);
  // A resource that ended before the purge's cutoff was purged with its row; its history may remain.
  const purged = purgedBefore !== undefined && f.final.has(last.to_state) && last.at < purgedBefore;
  if (!row) {
    if (!purged) add('row-mismatch', 'history without a state row', history.length - 1);
  } else if (row.state !== last.to_state || row.version !== last.version) {
    add(
      'row-mismatch',
      `the row is ${row.state} at v${row.version}; its history ends in ${last.to_state} at v${last.version}`,
      history.length - 1,
    );
  }
}

/** Counters: never negative, equal to the leases that record them. */
async function checkCounters({ sql, violations }: Context): Promise<void> {
  for (const r of await sql<
    {
      key: string;
      readers: number;
      dependents: number;
      backups: number;
      members: number;
      reader_leases: number;
      dependent_leases: number;
      backup_leases: number;
      member_leases: number;
    }[]
  >`
    SELECT s.resource_type || ':' || s.resource_id AS key, s.readers, s.dependents, s.backups, s.members,
           count(*) FILTER (WHERE l.kind = 'reader')::int AS reader_leases,
           count(*) FILTER (WHERE l.kind = 'dependent')::int AS dependent_leases,
           count(*) FILTER (WHERE l.kind = 'backup')::int AS backup_leases,
           count(*) FILTER (WHERE l.kind = 'member')::int AS member_leases
    FROM resource_states s LEFT JOIN leases l ON l.source_type = s.resource_type AND l.source_id = s.resource_id
    GROUP BY s.resource_type, s.resource_id, s.readers, s.dependents, s.backups, s.members`) {
    if (r.readers < 0 || r.dependents < 0 || r.backups < 0 || r.members < 0)
      violations.push({
        kind: 'negative-counter',
        resource: r.key,
        detail: `readers ${r.readers}, dependents ${r.dependents}, backups ${r.backups}, members ${r.members}`,
        slice: [],
      });
    if (
      r.readers !== r.reader_leases ||
      r.dependents !== r.dependent_leases ||
      r.backups !== r.backup_leases ||
      r.members !== r.member_leases
    ) {
      violations.push({
        kind: 'counter-lease-mismatch',
        resource: r.key,
        detail: `readers ${r.readers} for ${r.reader_leases} reader leases, dependents ${r.dependents} for ${r.dependent_leases} dependent leases, backups ${r.backups} for ${r.backup_leases} backup leases, members ${r.members} for ${r.member_leases} member leases`,
        slice: [],
      });
    }
  }
}

/** After a run has settled: nothing in a worker step, nothing owned, no reader held. */
async function checkAtRest({ sql, facts, rows, violations }: Context): Promise<void> {
  for (const [key, r] of rows) {
    const f = facts.get(key.split(':')[0]!);
    if (!f) continue;
    if (f.steps.has(r.state))
      violations.push({ kind: 'not-at-rest', resource: key, detail: `still in the worker step ${r.state}`, slice: [] });
    if (r.owner !== null)
      violations.push({ kind: 'owned-at-rest', resource: key, detail: `still owned by ${r.owner} in ${r.state}`, slice: [] });
    if (r.readers > 0) {
      // A reader is held by an operation in flight (a snapshot being taken, a clone): at rest, none is.
      const [type, id] = key.split(':') as [string, string];
      const [holder] =
        await sql`SELECT holder_type, holder_id FROM leases WHERE source_type = ${type} AND source_id = ${id} AND kind = 'reader' LIMIT 1`;
      violations.push({
        kind: 'reader-at-rest',
        resource: key,
        detail: `${r.readers} readers at rest (held by ${holder ? `${holder.holder_type} ${holder.holder_id}` : 'no lease'})`,
        slice: [],
      });
    }
  }
}

/** Relations: nothing outlives its volume, and a volume's attachment counts are its live attachments. */
async function checkRelations({ sql, facts, violations }: Context): Promise<void> {
  const final = (type: string) => [...facts.get(type)!.final];
  const children = [
    ['snapshot', 'snapshots', 'snapshot-outlives-volume'],
    ['attachment', 'attachments', 'attachment-on-deleted-volume'],
  ] as const;
  for (const [type, table, kind] of children) {
    for (const r of await sql<{ id: string; volume_id: string; state: string }[]>`
      SELECT c.id, c.volume_id, s.state FROM ${sql(table)} c
      JOIN resource_states s ON s.resource_type = ${type} AND s.resource_id = c.id
      JOIN resource_states v ON v.resource_type = 'volume' AND v.resource_id = c.volume_id
      WHERE s.state <> ALL(${final(type)}) AND v.state = ANY(${final('volume')})`) {
      violations.push({ kind, resource: `${type}:${r.id}`, detail: `${r.state}, but volume ${r.volume_id} is deleted`, slice: [] });
    }
  }
  // An incremental needs its parent to restore: the parent's delete is refused while it lives (its dependent lease).
  for (const r of await sql<{ id: string; parent_id: string; state: string; parent_state: string }[]>`
    SELECT b.id, b.parent_id, s.state, p.state AS parent_state FROM backups b
    JOIN resource_states s ON s.resource_type = 'backup' AND s.resource_id = b.id
    JOIN resource_states p ON p.resource_type = 'backup' AND p.resource_id = b.parent_id
    WHERE s.state <> ALL(${final('backup')}) AND p.state = ANY(${final('backup')})`) {
    violations.push({
      kind: 'incremental-outlives-parent',
      resource: `backup:${r.id}`,
      detail: `${r.state}, but its parent ${r.parent_id} is ${r.parent_state}`,
      slice: [],
    });
  }
  // A group counts exactly the live volumes that name it (membership changes in the group's CAS's transaction).
  for (const r of await sql<{ id: string; members: number; named: number }[]>`
    SELECT g.resource_id AS id, g.members,
           (SELECT count(*)::int FROM volumes v JOIN resource_states x ON x.resource_type = 'volume' AND x.resource_id = v.id
            WHERE v.group_id = g.resource_id AND x.state <> ALL(${final('volume')})) AS named
    FROM resource_states g WHERE g.resource_type = 'group' AND g.state <> ALL(${final('group')})`) {
    if (r.members !== r.named)
      violations.push({
        kind: 'group-membership',
        resource: `group:${r.id}`,
        detail: `counts ${r.members} members, ${r.named} live volumes name it`,
        slice: [],
      });
  }
  // A group snapshot is never partial: its step moves every member with it, so no member is left
  // waiting once it ended, and an available one has every member available.
  for (const r of await sql<{ id: string; state: string; member: string; member_state: string }[]>`
    SELECT gs.resource_id AS id, gs.state, n.id AS member, m.state AS member_state
    FROM resource_states gs
    JOIN snapshots n ON n.group_snapshot_id = gs.resource_id
    JOIN resource_states m ON m.resource_type = 'snapshot' AND m.resource_id = n.id
    WHERE gs.resource_type = 'group_snapshot'
      AND ((gs.state = 'available' AND split_part(m.state, '.', 1) NOT IN ('available', 'deleting', 'restoring', 'deleted'))
        OR (gs.state NOT IN ('creating.backend', 'creating.parked') AND m.state = 'creating.group'))`) {
    violations.push({
      kind: 'group-snapshot-partial',
      resource: `group_snapshot:${r.id}`,
      detail: `${r.state}, but its member snapshot ${r.member} is ${r.member_state}`,
      slice: [],
    });
  }
  for (const r of await sql<{ id: string; counted: number; live: number }[]>`
    SELECT v.resource_id AS id, v.att_reserved + v.att_attaching + v.att_attached + v.att_detaching + v.att_error AS counted,
           (SELECT count(*)::int FROM attachments a JOIN resource_states x ON x.resource_type = 'attachment' AND x.resource_id = a.id
            WHERE a.volume_id = v.resource_id AND x.state <> ALL(${final('attachment')})) AS live
    FROM resource_states v WHERE v.resource_type = 'volume'`) {
    if (r.counted !== r.live)
      violations.push({
        kind: 'attachment-counts',
        resource: `volume:${r.id}`,
        detail: `counts ${r.counted} attachments, ${r.live} are live`,
        slice: [],
      });
  }
}

/**
 * Quota usage: what each project's live volumes, snapshots and backups add up to,
 * with what extends in flight reserve, read in one statement (one snapshot).
 */
async function checkQuotaUsage({ sql, facts, violations }: Context): Promise<void> {
  const final = (type: string) => [...facts.get(type)!.final];
  for (const r of await sql<{ project_id: string; resource: string; expected: number; recorded: number }[]>`
    WITH live AS (
      SELECT d.project_id, 'volumes' AS resource, 1 AS n FROM volumes d JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = d.id WHERE s.state <> ALL(${final('volume')})
      UNION ALL SELECT d.project_id, 'gigabytes', s.size FROM volumes d JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = d.id WHERE s.state <> ALL(${final('volume')})
      UNION ALL SELECT d.project_id, 'snapshots', 1 FROM snapshots d JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = d.id WHERE s.state <> ALL(${final('snapshot')})
      UNION ALL SELECT d.project_id, 'gigabytes', s.size FROM snapshots d JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = d.id WHERE s.state <> ALL(${final('snapshot')})
      UNION ALL SELECT d.project_id, 'backups', 1 FROM backups d JOIN resource_states s ON s.resource_type = 'backup' AND s.resource_id = d.id WHERE s.state <> ALL(${final('backup')})
      UNION ALL SELECT d.project_id, 'backup_gigabytes', s.size FROM backups d JOIN resource_states s ON s.resource_type = 'backup' AND s.resource_id = d.id WHERE s.state <> ALL(${final('backup')})
      UNION ALL SELECT d.project_id, 'groups', 1 FROM groups d JOIN resource_states s ON s.resource_type = 'group' AND s.resource_id = d.id WHERE s.state <> ALL(${final('group')})
      UNION ALL SELECT project_id, resource, amount FROM quota_reservations
    ), typed AS (
      -- per-type quotas: the same again under <resource>@<volume type id>
      SELECT d.project_id, 'volumes@' || d.volume_type_id AS resource, 1 AS n FROM volumes d JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = d.id WHERE s.state <> ALL(${final('volume')}) AND d.volume_type_id IS NOT NULL
      UNION ALL SELECT d.project_id, 'gigabytes@' || d.volume_type_id, s.size FROM volumes d JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = d.id WHERE s.state <> ALL(${final('volume')}) AND d.volume_type_id IS NOT NULL
      UNION ALL SELECT d.project_id, 'snapshots@' || d.volume_type_id, 1 FROM snapshots d JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = d.id WHERE s.state <> ALL(${final('snapshot')}) AND d.volume_type_id IS NOT NULL
      UNION ALL SELECT d.project_id, 'gigabytes@' || d.volume_type_id, s.size FROM snapshots d JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = d.id WHERE s.state <> ALL(${final('snapshot')}) AND d.volume_type_id IS NOT NULL
    ), expected AS (SELECT project_id, resource, sum(n)::int AS n FROM (SELECT * FROM live UNION ALL SELECT * FROM typed) AS x GROUP BY project_id, resource),
    recorded AS (SELECT project_id, resource, sum(in_use)::int AS in_use FROM quota_usages WHERE resource IN ('volumes', 'gigabytes', 'snapshots', 'backups', 'backup_gigabytes', 'groups') OR resource LIKE '%@%' GROUP BY project_id, resource)
    SELECT COALESCE(e.project_id, u.project_id) AS project_id, COALESCE(e.resource, u.resource) AS resource,
           COALESCE(e.n, 0) AS expected, COALESCE(u.in_use, 0) AS recorded
    FROM expected e FULL JOIN recorded u ON u.project_id = e.project_id AND u.resource = e.resource
    WHERE COALESCE(e.n, 0) <> COALESCE(u.in_use, 0)`) {
    violations.push({
      kind: 'quota-usage',
      resource: `project:${r.project_id}`,
      detail: `${r.resource}: ${r.recorded} recorded as in use, the live resources add up to ${r.expected}`,
      slice: [],
    });
  }
}

/** Every request a client was told succeeded is in the history by its id, and no refused one is. */
async function checkRequests({ sql, violations }: Context, requests: { accepted: string[]; refused: string[] }): Promise<void> {
  const inHistory = async (ids: string[]) =>
    new Set(
      (await sql<{ request_id: string }[]>`SELECT DISTINCT request_id FROM state_transitions WHERE request_id = ANY(${ids})`).map(
        (r) => r.request_id,
      ),
    );
  const accepted = await inHistory(requests.accepted);
  for (const id of requests.accepted)
    if (!accepted.has(id))
      violations.push({
        kind: 'accepted-not-in-history',
        resource: `request:${id}`,
        detail: 'answered as a success, but no transition carries its id',
        slice: [],
      });
  const refused = await inHistory(requests.refused);
  for (const id of refused)
    violations.push({
      kind: 'refused-but-changed',
      resource: `request:${id}`,
      detail: 'answered as refused, but a transition carries its id',
      slice: [],
    });
}

/** A report as text: one line per violation, with its history slice. */
export function formatReport(report: CheckReport): string {
  const head = `checked ${report.transitions} transitions of ${report.resources} resources: ${report.violations.length} violations`;
  const body = report.violations
    .slice(0, 200)
    .map((v) => [`${v.kind} ${v.resource}: ${v.detail}`, ...v.slice.map((l) => `    ${l}`)].join('\n'));
  const more = report.violations.length > 200 ? [`… and ${report.violations.length - 200} more`] : [];
  return [head, ...body, ...more].join('\n');
}
