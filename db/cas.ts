/**
 * Compiles a machine's transitions into SQL: ONE statement per (machine,
 * event) that applies the event to one row as a compare-and-swap and
 * records it in the history, in a single round trip.
 *
 *   WITH moved AS (
 *     UPDATE resource_states SET
 *       state = CASE WHEN <branch 1> THEN 'target 1' WHEN <branch 2> ... END,
 *       <column> = CASE WHEN <branch 1> THEN <effect> ... ELSE <column> END,
 *       previous_state = state, version = version + 1, owner = ..., updated_at = now()
 *     WHERE resource_type = $1 AND resource_id = $2
 *       AND (<branch 1> OR <branch 2> ...)          -- sources + guards, from the machine
 *       AND ($5 IS NULL OR owner = $5)              -- a worker step must own the row
 *       AND ($6 IS NULL OR version = $6)            -- If-Match
 *     RETURNING *),
 *   logged AS (INSERT INTO state_transitions ... SELECT ... FROM moved),
 *   current AS (SELECT * FROM resource_states WHERE <key>
 *               AND NOT EXISTS (SELECT 1 FROM moved) FOR SHARE)
 *   SELECT true AS applied, moved.* ... UNION ALL SELECT false, current.* ...
 *
 * A branch is `state IN (<sources>) AND <guard SQL>`, one per candidate
 * transition, in the order XState tries them; CASE picks the first that
 * holds, exactly as XState does. PostgreSQL evaluates every SET expression
 * against the old row, so effects read the row as it was.
 *
 * Zero rows updated = refused, and nothing changed. The `current` CTE then
 * reads the row with a locking read, which in READ COMMITTED returns the
 * latest committed version (not the statement's snapshot): the refusal is
 * explained with the state at refusal time, without a second round trip.
 * It only runs when the UPDATE matched nothing.
 */
import type { ResourceModel } from '../machines/index.ts';
import type { Candidate } from '../machines/introspect.ts';
import { CREATE_EVENT, guardAtoms, type ColumnType } from '../machines/model.ts';
import { QUOTA, reservingIn, type Growth } from '../machines/quota.ts';
import { countLimitedText, growthCtes, growthLimited, largestExceeded, usageCte } from './quotas.ts';

/** Channel a worker LISTENs on; notified when a row becomes pending work. */
export const WORK_CHANNEL = 'volstate_work';

/**
 * Channel of waiting requests (`Prefer: wait`): `<type>:<id>:<state>` of a
 * row that moved while requests were waiting for it (the state it moved
 * to), or `<type>:<id>` when a waiter left the queue. Only such rows
 * notify: the probe of the (almost always empty) waiters table is all the
 * others pay.
 */
export const STATE_CHANNEL = 'volstate_state';

const PG_TYPE: Record<ColumnType, string> = { int: 'int', bool: 'boolean', text: 'text', 'text?': 'text', jsonb: 'jsonb' };

/**
 * The table of each resource type's data rows. The statement that moves a
 * row into its machine's final state also sets the data row's `deleted_at`
 * (the `retired` CTE): live rows are those with none, and the partial
 * indexes of the lists hold live rows only (docs/retention.md).
 */
export const DATA_TABLES: Readonly<Record<string, string>> = {
  volume: 'volumes',
  snapshot: 'snapshots',
  attachment: 'attachments',
  backup: 'backups',
  group: 'groups',
  group_snapshot: 'group_snapshots',
};
/** The data tables whose rows count against a volume type's quota (backups count project-wide only). */
const TYPED_TABLES: ReadonlySet<string> = new Set(['volumes', 'snapshots']);

/** Parameters every transition statement takes first, in placeholder order ($1…$6). */
export const FIXED_PARAMS = ['resource_type', 'resource_id', 'actor', 'request_id', 'expect_owner', 'expect_version'] as const;

/**
 * The owner a state change hands the row to. Bound like an event parameter
 * (after the fixed ones) and only by statements with a state change: an
 * unreferenced placeholder has no type, and PostgreSQL refuses to prepare.
 */
export const NEXT_OWNER = '@next_owner';

/**
 * Whether a row that becomes pending work is announced to every node
 * (NOTIFY), or left to the sender's own worker (see notifyCte). Bound like
 * NEXT_OWNER, and only by statements whose rows can become pending work.
 */
export const BROADCAST = '@broadcast';

/**
 * The worker of the sender's process that keeps the work the statement
 * makes (src/enforcer.ts keepWork), or NULL. A row the statement leaves in
 * a state with a step, pending at once, is then owned by that worker in the
 * same statement ("owned at birth"): the worker runs its step once the
 * transition has committed, with no claim statement (and no claim commit)
 * in between. Bound like BROADCAST; NULL leaves the row pending work, for
 * any worker to claim.
 */
export const KEEPER = '@keeper';

/**
 * The volume a row's data lives on, as SQL over the row's id expression:
 * a volume's own (when it has a data row), a snapshot's volume; NULL for
 * the other types. The claim (db/queue.ts) and a statement that keeps the
 * row at birth read it for the step's backend call.
 */
export function dataVolumeOf(type: string, id: string): string {
  if (type === 'volume') return `(SELECT v.id FROM volumes v WHERE v.id = ${id})`;
  if (type === 'snapshot') return `(SELECT n.volume_id FROM snapshots n WHERE n.id = ${id})`;
  return 'NULL::uuid';
}

/**
 * What a row kept at birth carries for its step beside its columns (db/queue.ts ClaimedRow): its
 * data volume and that volume's backend; read from `data` when the statement inserts the volume's
 * data row itself (compileCreate's CreateData), which the statement's own reads of `volumes` cannot see.
 */
function keptColumns(type: string, row: string, keeper: string, data?: string): string[] {
  if (data !== undefined && type !== 'volume') throw new Error(`${type}: only a volume's create inserts its data row in its statement`);
  const volume = data ? `${data}.id` : dataVolumeOf(type, `${row}.resource_id`);
  const backend = data ? `${data}.backend` : `(SELECT v.backend FROM volumes v WHERE v.id = ${volume})`;
  return [
    `CASE WHEN ${row}.owner = ${keeper} THEN ${volume} END AS data_volume_id`,
    `CASE WHEN ${row}.owner = ${keeper} THEN ${backend} END AS backend`,
  ];
}

export interface CompiledStatement {
  readonly type: string;
  readonly event: string;
  readonly text: string;
  /** names bound after the fixed ones, in order: event parameters, and NEXT_OWNER */
  readonly params: readonly string[];
  /**
   * The statement changes the project's usage by what the row counts
   * (machines/quota.ts; db/quotas.ts usageCte): a transition gives it back
   * when it moves the row into its final state; a create counts it, when
   * every resource is unlimited (its `counted` column says whether).
   */
  readonly counts?: boolean;
  /** a create's data parameters (compileCreate's CreateData), bound by name after `params` */
  readonly dataParams?: readonly string[];
  /**
   * The transition into a state that reserves a declared growth reserves
   * it here, and counts it when every resource is unlimited (`counted`
   * says whether; db/quotas.ts growthCtes).
   */
  readonly reserves?: boolean;
}

/**
 * The reserving state with a declared growth (machines/quota.ts) that
 * every move of `event` enters, if it is one event's only way in: the
 * moves that reach it from elsewhere are the ones its statement reserves
 * for; undefined when no move of the event reserves a growth, or when one
 * also leaves a reserving state (its settling is the enforcer's).
 */
export function reservesGrowth(model: ResourceModel, event: string): { state: string; growth: Growth } | undefined {
  const table = DATA_TABLES[model.type];
  if (!QUOTA[model.type] || table === undefined) return undefined;
  const moves = model.index.leaves.flatMap((from) =>
    model.index
      .candidates(from, event)
      .filter((c) => c.target && c.target !== from)
      .map((c) => ({ from: reservingIn(model.type, from), to: reservingIn(model.type, c.target!) })),
  );
  const into = moves.filter((m) => m.to !== undefined && m.to !== m.from);
  if (into.length === 0 || moves.some((m) => m.from !== undefined)) return undefined;
  const target = into[0]!.to!;
  if (!target.growth || into.some((m) => m.to !== target)) return undefined;
  return { state: target.state, growth: target.growth };
}

/**
 * The usage CTE of a statement whose row, in `from`, starts or stops
 * counting (see CompiledStatement.counts), or undefined when its type
 * counts nothing or has no data row.
 */
function countsCte(model: ResourceModel, cte: string, from: string, sign: 1 | -1, when: string, data?: string): string | undefined {
  const spec = QUOTA[model.type];
  const table = DATA_TABLES[model.type];
  if (!spec || table === undefined) return undefined;
  // `data`: the statement's own CTE holding the data row it inserted (the table's rows cannot show it yet)
  return usageCte({
    cte,
    from,
    table: data ?? table,
    typed: TYPED_TABLES.has(table),
    counts: spec.counts,
    perType: spec.perType,
    sign,
    when,
  });
}

/**
 * SQL text, true when a resource a new row of `model` counts has a limit in
 * `project` (its volume type `typeId`; SQL expressions both): then its
 * create cannot count it in its statement (compileCreate's `counts`), and
 * `admit` must, in a transaction.
 */
export function countsLimited(model: ResourceModel, project: string, typeId: string): string {
  const spec = QUOTA[model.type];
  const table = DATA_TABLES[model.type];
  if (!spec || table === undefined) return 'FALSE';
  return countLimitedText({ project, typeId, typed: TYPED_TABLES.has(table), counts: spec.counts, perType: spec.perType });
}

interface Branch {
  readonly cond: string;
  readonly candidate: Candidate;
}

const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
const list = (xs: readonly string[]) => xs.map(lit).join(', ');

/**
 * Replace `:param` by a typed placeholder, numbering parameters on first use.
 * `column` (the batched statement): by the column of the batch's input row
 * that carries the parameter instead, its type recorded for the array.
 */
function binder(model: ResourceModel, event: string, first: number, column?: (i: number) => string) {
  const spec = model.events[event]!.params;
  const order: string[] = [];
  const types: ColumnType[] = [];
  const placeholder = (name: string, type: ColumnType) => {
    let i = order.indexOf(name);
    if (i < 0) {
      i = order.push(name) - 1;
      types.push(type);
    }
    return column ? column(i) : `$${first + i}::${PG_TYPE[type]}`;
  };
  const bind = (fragment: string) =>
    fragment.replace(/(?<!:):([a-z_][a-z0-9_]*)/g, (_m, name: string) => {
      const type = spec[name];
      if (!type) throw new Error(`${model.type}.${event}: unknown parameter :${name}`);
      return placeholder(name, type);
    });
  return {
    bind,
    order,
    types,
    nextOwner: () => placeholder(NEXT_OWNER, 'text?'),
    broadcast: () => placeholder(BROADCAST, 'bool'),
    keeper: () => placeholder(KEEPER, 'text?'),
  };
}

/**
 * Fault injection, to prove the history checker can catch a broken
 * enforcer (test/check/harness.test.ts): `VOLSTATE_BREAK_GUARDS=volume.noSnapshots`
 * compiles the named guards' SQL as TRUE, so the database lets through what
 * the machine forbids. Never set in a deployment; a node that has it says so
 * loudly at start (src/server.ts).
 */
export const BROKEN_GUARDS = new Set((process.env.VOLSTATE_BREAK_GUARDS ?? '').split(',').filter(Boolean));

function branchesOf(model: ResourceModel, event: string, bind: (s: string) => string): Branch[] {
  const { index } = model;
  // Leaf states with identical candidate lists share one `state IN (...)`.
  const groups = new Map<string, { states: string[]; candidates: readonly Candidate[] }>();
  for (const state of index.leaves) {
    const candidates = index.candidates(state, event);
    if (candidates.length === 0) continue;
    const key = JSON.stringify(candidates.map((c) => [c.guard, c.target, c.effects]));
    const group = groups.get(key);
    if (group) group.states.push(state);
    else groups.set(key, { states: [state], candidates });
  }
  const branches: Branch[] = [];
  for (const { states, candidates } of groups.values()) {
    const source = states.length === 1 ? `state = ${lit(states[0]!)}` : `state IN (${list(states)})`;
    for (const candidate of candidates) {
      const guard = candidate.guard
        ? guardAtoms(model.guards, candidate.guard)
            .map((a) => (BROKEN_GUARDS.has(`${model.type}.${a.name}`) ? '(TRUE)' : `(${bind(a.guard.sql)})`))
            .join(' AND ')
        : '';
      branches.push({ cond: guard ? `(${source} AND ${guard})` : `(${source})`, candidate });
    }
  }
  return branches;
}

/** `CASE WHEN b1 THEN v1 ... ELSE otherwise END`, dropping trailing WHENs equal to `otherwise`. */
function caseOf(branches: Branch[], value: (b: Branch) => string, otherwise: string): string {
  const whens = branches.map((b) => [b.cond, value(b)] as const);
  while (whens.length && whens[whens.length - 1]![1] === otherwise) whens.pop();
  if (whens.length === 0) return otherwise;
  return `CASE ${whens.map(([c, v]) => `WHEN ${c} THEN ${v}`).join(' ')} ELSE ${otherwise} END`;
}

/** Resulting states a branch can leave the row in. */
function resultsOf(model: ResourceModel, event: string): Set<string> {
  const out = new Set<string>();
  for (const state of model.index.leaves) {
    for (const c of model.index.candidates(state, event)) out.add(c.target ?? state);
  }
  return out;
}

/** Whether `event` can leave a row in a state with a step: then its statement may make work (NOTIFY it, or keep it: KEEPER). */
function makesWork(model: ResourceModel, event: string): boolean {
  return [...resultsOf(model, event)].some((s) => model.index.stepStates.includes(s));
}

/**
 * A row left unowned in a state with a step is pending work (`pending`: the
 * statement answers how many). Every node's workers are woken for it by a
 * NOTIFY (`notified`) unless the sender said `broadcast` false: its node's
 * own worker takes the row, woken in the process once the transition has
 * committed (src/enforcer.ts). A NOTIFY serializes the commits of every
 * transaction that sends one, in the whole database (PostgreSQL takes one
 * lock for its queue from before the commit's WAL flush to its end), so
 * work a node keeps costs none. A wake-up too many is harmless.
 */
function notifyCte(model: ResourceModel, from: string, broadcast: string): string {
  return `pending AS (SELECT ${from}.resource_type FROM ${from}
    WHERE ${from}.owner IS NULL AND ${from}.state IN (${list(model.index.stepStates)})),
  notified AS (SELECT pg_notify(${lit(WORK_CHANNEL)}, pending.resource_type) FROM pending WHERE ${broadcast})`;
}

/** Whether the transition's row holds a lease (the lone variant of a move into the final state applies only when not). */
const HOLDS_LEASES = 'SELECT 1 FROM leases l WHERE l.holder_type = $1::text AND l.holder_id = $2::uuid';

/** The leases a move into the final state took (the `taken` CTE), as a JSON array of db/leases.ts Lease. */
const TAKEN_LEASES = `(SELECT json_agg(json_build_object('source_type', source_type, 'source_id', source_id, 'kind', kind)) FROM taken) AS taken_leases`;

/** What a statement whose rows may become pending work answers of it (see notifyCte). */
const PENDING_COUNTS = '(SELECT count(*) FROM pending) AS pending, (SELECT count(*) FROM notified) AS notified';

/**
 * Who owns a row a branch moves to `target` when the statement keeps its work
 * (KEEPER): the next owner the sender names, else the keeper if the row is
 * pending work there. A step state is pending at once unless its step waits
 * for a guard (meta.ready): then the keeper only if the guard holds, judged
 * on the old row, which is exact when the branch's effects write none of the
 * columns the guard reads (and otherwise nobody: the row stays pending, for
 * a claim, as without a keeper).
 */
function keptOwner(model: ResourceModel, branch: Branch, target: string, bind: (s: string) => string, nextOwner: string, keeper: string) {
  if (!model.index.stepStates.includes(target)) return nextOwner;
  const ready = model.index.meta(target).ready;
  if (!ready) return `COALESCE(${nextOwner}, ${keeper})`;
  const atoms = guardAtoms(model.guards, ready).map((a) => a.guard.sql);
  const written = branch.candidate.effects.flatMap((e) => Object.keys(model.effects[e]!.sql));
  if (written.some((col) => atoms.some((sql) => new RegExp(`\\b${col}\\b`).test(sql)))) return nextOwner;
  return `COALESCE(${nextOwner}, CASE WHEN ${atoms.map((sql) => `(${bind(sql)})`).join(' AND ')} THEN ${keeper} END)`;
}

/** The branches of `event` and the SET list that applies whichever holds first (see the file's comment). */
function updateOf(model: ResourceModel, event: string, bind: (s: string) => string, nextOwner: () => string, keeper?: () => string) {
  const branches = branchesOf(model, event, bind);
  if (branches.length === 0) throw new Error(`${model.type}: no state handles ${event}`);

  const columns = [...new Set(branches.flatMap((b) => b.candidate.effects.flatMap((e) => Object.keys(model.effects[e]!.sql))))];
  const set = [
    `state = ${caseOf(branches, (b) => (b.candidate.target ? lit(b.candidate.target) : 'state'), 'state')}`,
    ...columns.map((col) => {
      const value = (b: Branch) => {
        for (const e of b.candidate.effects) {
          const expr = (model.effects[e]!.sql as Record<string, string | undefined>)[col];
          if (expr !== undefined) return bind(expr);
        }
        return col;
      };
      return `${col} = ${caseOf(branches, value, col)}`;
    }),
    // A transition that changes state hands the row to `next_owner` (NULL:
    // nobody, so a step state becomes pending work); one that keeps the
    // state (bookkeeping such as READ_END) leaves the owner alone.
    // the keeper's (see keptOwner), when the statement keeps the work it makes.
    `owner = ${caseOf(
      branches,
      (b) => (!b.candidate.target ? 'owner' : keeper ? keptOwner(model, b, b.candidate.target, bind, nextOwner(), keeper()) : nextOwner()),
      'owner',
    )}`,
    'previous_state = state',
    'version = version + 1',
    'not_before = NULL',
    'updated_at = now()',
  ];
  return { branches, set };
}

/**
 * What follows a move, in both the single and the batched statement: wake the
 * requests waiting on a moved row (`woken`, naming the state it moved to), the
 * workers when a row becomes pending work (`notified`, only if the event can
 * lead to a step state), retire the data row of one that reached the final
 * state (`retired`), and write the data row's columns the event carries
 * (`recorded`, the event's `data`; `moved` is where a row's parameters are
 * found: the batch joins its entries), and delete the quota reservation a
 * row moving out of one of `settles` keeps (`settled`: EXTENDED keeps the
 * extend's gigabytes, counted when they were reserved, so settling them is
 * deleting the rows; the enforcer names the events, machines/quota.ts).
 */
function afterMove(
  model: ResourceModel,
  event: string,
  bind: (fragment: string) => string,
  broadcast: () => string,
  moved = 'moved',
  settles: readonly string[] = [],
): { notify: boolean; ctes: string } {
  const notify = makesWork(model, event);
  const finals = [...resultsOf(model, event)].filter((s) => model.index.isFinal(s));
  const table = DATA_TABLES[model.type];
  const data = Object.entries(model.events[event]!.data ?? {});
  if (data.length > 0 && table === undefined) throw new Error(`${model.type}.${event} writes its data row, but ${model.type} has none`);
  const recorded =
    data.length > 0
      ? `, recorded AS (
  UPDATE ${table} SET ${data.map(([column, param]) => `${column} = ${bind(`:${param}`)}`).join(', ')}
  FROM ${moved} WHERE ${table}.id = moved.resource_id
)`
      : '';
  const woken = `, woken AS (
  SELECT pg_notify(${lit(STATE_CHANNEL)}, moved.resource_type || ':' || moved.resource_id || ':' || moved.state) FROM moved
  WHERE EXISTS (SELECT 1 FROM waiters w WHERE w.resource_type = moved.resource_type AND w.resource_id = moved.resource_id)
)`;
  const retired =
    finals.length > 0 && table !== undefined
      ? `, retired AS (
  UPDATE ${table} SET deleted_at = now() FROM moved WHERE ${table}.id = moved.resource_id AND moved.state IN (${list(finals)})
)`
      : '';
  const settled =
    settles.length > 0
      ? `, settled AS (
  DELETE FROM quota_reservations q USING moved
  WHERE q.resource_type = moved.resource_type AND q.resource_id = moved.resource_id AND moved.previous_state IN (${list(settles)})
)`
      : '';
  return { notify, ctes: `${woken}${notify ? `, ${notifyCte(model, 'moved', broadcast())}` : ''}${retired}${recorded}${settled}` };
}

/**
 * The transition statement for `event` of `model`. `withOwner`: the applied
 * row also carries its data row's project and volume
 * type (`data_project_id`, `data_volume_type_id`), for a transition that
 * changes quota usage: it needs them in its transaction, and reading them
 * here saves a round trip while the project's usage waits.
 */
export function compileTransition(
  model: ResourceModel,
  event: string,
  withOwner = false,
  settles: readonly string[] = [],
  alone = false,
): CompiledStatement {
  if (!model.events[event]) throw new Error(`${model.type}: unknown event ${event}`);
  const { bind, order, nextOwner, broadcast, keeper } = binder(model, event, FIXED_PARAMS.length + 1);
  // A statement that can leave a row pending work can keep it (KEEPER).
  const keeps = makesWork(model, event);
  const { branches, set } = updateOf(model, event, bind, nextOwner, keeps ? keeper : undefined);
  const after = afterMove(model, event, bind, broadcast, 'moved', settles);
  const notify = after.notify;
  const table = DATA_TABLES[model.type];
  const owned = withOwner && table !== undefined;
  // Into the final state: what the row counted is given back here, not by a statement after it.
  const finals = [...resultsOf(model, event)].filter((s) => model.index.isFinal(s));
  const entersFinal = `moved.state IN (${list(finals)}) AND moved.previous_state <> moved.state`;
  const released = finals.length > 0 ? countsCte(model, 'released', 'moved', -1, entersFinal) : undefined;
  // Into a state that reserves a declared growth (an extend): reserved, and counted when unlimited, here.
  const grows = reservesGrowth(model, event);
  const growth = grows
    ? growthCtes({
        from: 'moved',
        table: DATA_TABLES[model.type]!,
        typed: TYPED_TABLES.has(DATA_TABLES[model.type]!),
        growth: grows.growth,
        perType: QUOTA[model.type]!.perType,
        when: `moved.state = ${lit(grows.state)} AND moved.previous_state <> moved.state`,
      })
    : undefined;
  // Into the final state, the row gives back every lease it holds (src/enforcer.ts releasedBy): they are
  // taken here, and the enforcer gives each source back its counter (TAKEN_LEASES).
  const taken =
    finals.length > 0 && !alone
      ? `taken AS (
  DELETE FROM leases l USING moved
  WHERE l.holder_type = moved.resource_type AND l.holder_id = moved.resource_id AND ${entersFinal}
  RETURNING l.source_type, l.source_id, l.kind
)`
      : undefined;
  // `alone`: what would need the transaction refuses the statement instead (NEEDS_TX): into the final
  // state, a lease held (its sources are to be locked first); into a growth's reservation, a limit.
  const needsTx = alone
    ? [
        ...(finals.length > 0 ? [HOLDS_LEASES] : []),
        ...(grows
          ? [
              growthLimited({
                id: '$2::uuid',
                table: DATA_TABLES[model.type]!,
                typed: TYPED_TABLES.has(DATA_TABLES[model.type]!),
                growth: grows.growth,
                perType: QUOTA[model.type]!.perType,
              }),
              // The size grown to over its project's limit of it: the transaction refuses it, saying so.
              ...(grows.growth.largest
                ? [
                    largestExceeded({
                      id: '$2::uuid',
                      table: DATA_TABLES[model.type]!,
                      largest: grows.growth.largest,
                      to: bind(`:${grows.growth.to}`),
                    }),
                  ]
                : []),
            ]
          : []),
      ]
    : [];
  if (alone && needsTx.length === 0) throw new Error(`${model.type}.${event}: nothing makes it need a transaction`);
  const selects = [
    ...(notify ? [PENDING_COUNTS] : []),
    '(SELECT count(*) FROM woken) AS woken',
    ...(owned
      ? [
          `(SELECT d.project_id FROM ${table} d WHERE d.id = moved.resource_id) AS data_project_id`,
          TYPED_TABLES.has(table)
            ? `(SELECT d.volume_type_id FROM ${table} d WHERE d.id = moved.resource_id) AS data_volume_type_id`
            : 'NULL::uuid AS data_volume_type_id',
        ]
      : []),
    ...(keeps ? keptColumns(model.type, 'moved', keeper()) : []),
    ...(taken ? [TAKEN_LEASES] : []),
    ...(alone ? ['false AS needs_tx'] : []),
    ...(growth ? ['(SELECT count(*) FROM counted) AS counted'] : []),
  ];
  const nothing = [
    ...(notify ? ['0::bigint', '0::bigint'] : []),
    '0::bigint',
    ...(owned ? ['NULL::text', 'NULL::uuid'] : []),
    ...(keeps ? ['NULL::uuid', 'NULL::text'] : []),
    ...(taken ? ['NULL::json'] : []),
    ...(alone ? [`(${needsTx.map((q) => `EXISTS (${q})`).join(' OR ')}) AS needs_tx`] : []),
    ...(growth ? ['0::bigint'] : []),
  ];
  const text = `WITH moved AS (
  UPDATE resource_states SET
    ${set.join(',\n    ')}
  WHERE resource_type = $1::text AND resource_id = $2::uuid
    AND (${branches.map((b) => b.cond).join('\n      OR ')})
    AND ($5::text IS NULL OR owner = $5::text)
    AND ($6::int IS NULL OR version = $6::int)${needsTx.map((q) => `\n    AND NOT EXISTS (${q})`).join('')}
  RETURNING *
), logged AS (
  INSERT INTO state_transitions (resource_type, resource_id, from_state, event, to_state, version, actor, request_id, size)
  SELECT resource_type, resource_id, previous_state, ${lit(event)}, state, version, $3::text, $4::text, size FROM moved
), current AS (
  SELECT * FROM resource_states
  WHERE resource_type = $1::text AND resource_id = $2::uuid AND NOT EXISTS (SELECT 1 FROM moved)
  FOR SHARE
)${after.ctes}${released ? `, ${released}` : ''}${taken ? `, ${taken}` : ''}${growth ? `, ${growth}` : ''}
SELECT true AS applied, moved.*, ${selects.join(', ')} FROM moved
UNION ALL
SELECT false AS applied, current.*, ${nothing.join(', ')} FROM current`;
  return { type: model.type, event, text, params: order, counts: released !== undefined, reserves: growth !== undefined };
}

/**
 * The batched statement for `event` of `model` (group commit, src/batch.ts):
 * the same compare-and-swap on many rows in one round trip. `$1` is the
 * resource type, `$2` a JSON array (as text) of one object per row: `b_id`,
 * `b_actor`, `b_request_id`, `b_owner`, `b_version` (the fixed parameters)
 * and `b_p0`, `b_p1`… (the event's parameters, `params` in order).
 *
 *   WITH batch AS (SELECT * FROM jsonb_to_recordset($2) AS b(b_id uuid, …)),
 *   locked AS MATERIALIZED (SELECT * FROM resource_states WHERE <ids in batch>
 *                           ORDER BY resource_id FOR NO KEY UPDATE),
 *   moved AS (UPDATE resource_states SET <as one row> FROM batch b
 *             WHERE TRUE AND resource_id = b.b_id AND <branches> …)
 *   …
 *   SELECT true, moved.* … UNION ALL SELECT false, locked.* … WHERE not moved
 *
 * Every row is locked first, in id order (the one-time filter runs `locked`
 * to its end before the UPDATE reads a row), so two batches, or a batch and
 * a transaction of db/tx.ts, never wait on each other in a circle. A row
 * the UPDATE refused was locked by this statement and not changed: `locked`
 * holds it as it is at refusal time, exactly, with no second read. An id
 * must appear at most once in a batch.
 */
export function compileBatch(model: ResourceModel, event: string, settles: readonly string[] = []): CompiledStatement {
  if (!model.events[event]) throw new Error(`${model.type}: unknown event ${event}`);
  const { bind, order, types, nextOwner, broadcast } = binder(model, event, 0, (i) => `b.b_p${i}`);
  const { branches, set } = updateOf(model, event, bind, nextOwner);
  // a data row's columns come from each row's own parameters: its batch entry beside it; so does
  // its broadcast (every entry of a batch carries the same)
  const after = afterMove(
    model,
    event,
    bind,
    () => `(SELECT bool_or(${broadcast()}) FROM batch b)`,
    'moved JOIN batch b ON b.b_id = moved.resource_id',
    settles,
  );
  const notify = after.notify;
  const record = [
    'b_id uuid',
    'b_actor text',
    'b_request_id text',
    'b_owner text',
    'b_version int',
    ...types.map((t, i) => `b_p${i} ${PG_TYPE[t]}`),
  ];
  const text = `WITH batch AS (
  SELECT * FROM jsonb_to_recordset($2::text::jsonb) AS b(${record.join(', ')})
), locked AS MATERIALIZED (
  SELECT * FROM resource_states
  WHERE resource_type = $1::text AND resource_id IN (SELECT b_id FROM batch)
  ORDER BY resource_id
  FOR NO KEY UPDATE
), moved AS (
  UPDATE resource_states SET
    ${set.join(',\n    ')}
  FROM batch b
  WHERE (SELECT count(*) FROM locked) >= 0
    AND resource_type = $1::text AND resource_id = b.b_id
    AND (${branches.map((b) => b.cond).join('\n      OR ')})
    AND (b.b_owner IS NULL OR owner = b.b_owner)
    AND (b.b_version IS NULL OR version = b.b_version)
  RETURNING resource_states.*, b.b_actor, b.b_request_id
), logged AS (
  INSERT INTO state_transitions (resource_type, resource_id, from_state, event, to_state, version, actor, request_id, size)
  SELECT resource_type, resource_id, previous_state, ${lit(event)}, state, version, b_actor, b_request_id, size FROM moved
)${after.ctes}
SELECT true AS applied, moved.*${notify ? `, ${PENDING_COUNTS}` : ''}, (SELECT count(*) FROM woken) AS woken FROM moved
UNION ALL
SELECT false AS applied, locked.*, NULL::text, NULL::text${notify ? ', 0::bigint, 0::bigint' : ''}, 0::bigint FROM locked
WHERE NOT EXISTS (SELECT 1 FROM moved WHERE moved.resource_id = locked.resource_id)`;
  return { type: model.type, event, text, params: order };
}

/** Context columns a new row is inserted with (everything but the owner, which starts empty). */
export function createColumns(model: ResourceModel): string[] {
  return Object.keys(model.context).filter((c) => c !== 'owner');
}

/**
 * A create whose statement also inserts the resource's data row (a plain
 * volume create, db/volume-create.ts: one statement, no transaction). The
 * caller's CTEs come first, the last of them named `data`: the data row
 * inserted, or none (then no state row either, and the answer says why).
 */
export interface CreateData {
  /**
   * The CTEs' text. `param(name)` is the placeholder of one of the caller's
   * parameters (numbered after the create's own; `CompiledStatement.dataParams`
   * lists them); they may also use $2, the resource's id.
   */
  ctes: (param: (name: string) => string) => string;
  /** context columns the state row takes from the data row's column of the same name instead of a parameter */
  columns: readonly string[];
  /** columns answered beside the state row's, SQL over the caller's CTEs, each named `"part.column"` */
  answer: string;
}

/**
 * The statement that creates a resource's state row in the machine's
 * initial state, with its history row ($1 type, $2 id, $3 actor,
 * $4 request id, then `createColumns(model)` in order, then BROADCAST when the
 * initial state has a step: `params`). With `data`, the data row is the
 * statement's too (CreateData): its row always comes back, `applied` saying
 * whether it created anything, the caller's answer beside it; and it counts
 * the row's usage (CompiledStatement.counts).
 */
export function compileCreate(model: ResourceModel, data?: CreateData): CompiledStatement {
  const fromData = new Set(data?.columns ?? []);
  const cols = createColumns(model);
  for (const c of fromData) if (!cols.includes(c)) throw new Error(`${model.type}: ${c} is no context column of a create`);
  const bound = cols.filter((c) => !fromData.has(c));
  // With its data row, the row's usage is counted here when every resource is unlimited (`counted`
  // says whether; a caller judges a limit with `admit`). Without it, the caller counts with `admit`.
  const counted = data ? countsCte(model, 'counted', 'created', 1, 'true', 'data') : undefined;
  const initial = model.index.initial;
  const notify = model.index.stepStates.includes(initial);
  const values = cols.map((c) => (fromData.has(c) ? `data.${c}` : `$${5 + bound.indexOf(c)}::${PG_TYPE[model.context[c]!]}`));
  const broadcast = `$${5 + bound.length}::boolean`;
  // The initial state's step, if it has one, is pending at once (a step waiting for a guard there would need keptOwner).
  if (notify && model.index.meta(initial).ready) throw new Error(`${model.type}: the initial state's step waits for a guard`);
  const keeper = `$${6 + bound.length}::text`;
  const params = notify ? [...bound, BROADCAST, KEEPER] : bound;
  const dataParams: string[] = [];
  const param = (name: string) => {
    let i = dataParams.indexOf(name);
    if (i < 0) i = dataParams.push(name) - 1;
    return `$${5 + params.length + i}`;
  };
  const row = ['$1::text', '$2::uuid', lit(initial), ...values, ...(notify ? [keeper] : [])].join(', ');
  const text = `WITH ${data ? `${data.ctes(param)},\n` : ''}created AS (
  INSERT INTO resource_states (${['resource_type', 'resource_id', 'state', ...cols, ...(notify ? ['owner'] : [])].join(', ')})
  ${data ? `SELECT ${row} FROM data` : `VALUES (${row})`}
  RETURNING *
), logged AS (
  INSERT INTO state_transitions (resource_type, resource_id, from_state, event, to_state, version, actor, request_id, size)
  SELECT resource_type, resource_id, NULL, ${lit(CREATE_EVENT)}, state, version, $3::text, $4::text, size FROM created
)${notify ? `, ${notifyCte(model, 'created', broadcast)}` : ''}${counted ? `, ${counted}` : ''}
SELECT ${data ? 'created.resource_id IS NOT NULL' : 'true'} AS applied, created.*${notify ? `, ${PENDING_COUNTS}, ${keptColumns(model.type, 'created', keeper, data && 'data').join(', ')}` : ''}${counted ? ', (SELECT count(*) FROM counted) AS counted' : ''}${data ? `, ${data.answer}\nFROM (SELECT) one LEFT JOIN created ON TRUE LEFT JOIN data ON TRUE` : ' FROM created'}`;
  return {
    type: model.type,
    event: CREATE_EVENT,
    text,
    params,
    ...(data ? { dataParams } : {}),
    counts: counted !== undefined,
  };
}

/** Every statement of every model, compiled once. */
export function compileAll(
  models: readonly ResourceModel[],
  opts: {
    /** the transition also reads its data row's project and volume type (see compileTransition) */
    withOwner?: (type: string, event: string) => boolean;
    /** the states from which the event keeps a reservation that its statement settles (see afterMove) */
    settles?: (type: string, event: string) => readonly string[];
    /**
     * also a variant to run alone, outside a transaction, which refuses a
     * row that needs one (`needs_tx` says whether that refused it): a move
     * into the final state of a row holding a lease, a growth's reservation
     * of a limited resource (src/enforcer.ts apply)
     */
    alone?: (type: string, event: string) => boolean;
  } = {},
) {
  const withOwner = opts.withOwner ?? (() => false);
  const settles = opts.settles ?? (() => []);
  const alone = opts.alone ?? (() => false);
  const alones = new Map<string, CompiledStatement>();
  const transitions = new Map<string, CompiledStatement>();
  const batches = new Map<string, CompiledStatement>();
  const creates = new Map<string, CompiledStatement>();
  for (const model of models) {
    // (A volume's create, which counts its usage, inserts its data row in its own statement: db/volume-create.ts.)
    creates.set(model.type, compileCreate(model));
    for (const event of Object.keys(model.events)) {
      transitions.set(`${model.type}:${event}`, compileTransition(model, event, withOwner(model.type, event), settles(model.type, event)));
      if (alone(model.type, event))
        alones.set(
          `${model.type}:${event}`,
          compileTransition(model, event, withOwner(model.type, event), settles(model.type, event), true),
        );
      batches.set(`${model.type}:${event}`, compileBatch(model, event, settles(model.type, event)));
    }
  }
  return { transitions, batches, creates, alone: alones };
}

/** For tests and the docs: the SQL face of one guard, bound with literal placeholders. */
export function guardSql(model: ResourceModel, guard: string, event: string, first = 1): { text: string; params: string[] } {
  const { bind, order } = binder(model, event, first);
  const text = guardAtoms(model.guards, guard)
    .map((a) => `(${bind(a.guard.sql)})`)
    .join(' AND ');
  return { text, params: order };
}
