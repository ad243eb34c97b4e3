/**
 * Real volstate nodes for multi-process tests: `volstate serve` processes
 * on loopback ports, sharing one database and one backend (the file driver
 * on one storage directory, as nodes of a deployment share their storage),
 * with every driver operation slowed down (so steps are in flight when a
 * node dies) and journaled to one file (so a test can check that no two
 * operations on a resource overlapped, across processes).
 */
import { readFileSync } from 'node:fs';
import { startNode, type NodeOptions, type VolstateNode } from '../../src/harness/nodes.ts';
import { HEADERS } from './app.ts';

export { startNode, type NodeOptions, type VolstateNode };

export interface Reply {
  status: number;
  body: any;
  requestId: string | undefined;
}

/** One request to one node; a network error is status 0. */
export async function call(
  node: VolstateNode,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  try {
    const r = await fetch(`${node.url}${path}`, {
      method,
      headers: { ...HEADERS, ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null, requestId: r.headers.get('x-openstack-request-id') ?? undefined };
  } catch {
    return { status: 0, body: null, requestId: undefined };
  }
}

/**
 * The driver journal: operations on one resource must never overlap
 * (`<ms> start|end <op> <resource> <pid>`). An operation of a killed
 * process that never ended ends at `killedAt`. Returns the overlaps found.
 */
export function overlapsIn(journal: string, killed: Map<number, number>): string[] {
  const open = new Map<string, { pid: number; at: number; op: string }[]>();
  const intervals = new Map<string, { pid: number; from: number; to: number; op: string }[]>();
  for (const line of readFileSync(journal, 'utf8').split('\n')) {
    const [at, what, op, resource, pid] = line.split(' ');
    if (!at || !resource || resource === '-') continue;
    if (what === 'start') open.set(resource, [...(open.get(resource) ?? []), { pid: Number(pid), at: Number(at), op: op! }]);
    else {
      const starts = open.get(resource) ?? [];
      const i = starts.findIndex((s) => s.pid === Number(pid) && s.op === op);
      if (i < 0) continue;
      const [s] = starts.splice(i, 1);
      intervals.set(resource, [...(intervals.get(resource) ?? []), { pid: s!.pid, from: s!.at, to: Number(at), op: s!.op }]);
    }
  }
  for (const [resource, starts] of open) {
    for (const s of starts) {
      const end = killed.get(s.pid);
      if (end !== undefined) intervals.set(resource, [...(intervals.get(resource) ?? []), { pid: s.pid, from: s.at, to: end, op: s.op }]);
    }
  }
  const overlaps: string[] = [];
  for (const [resource, list] of intervals) {
    list.sort((a, b) => a.from - b.from);
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1]!;
      const b = list[i]!;
      if (b.from < a.to) overlaps.push(`${resource}: ${a.op} by ${a.pid} [${a.from}, ${a.to}] and ${b.op} by ${b.pid} from ${b.from}`);
    }
  }
  return overlaps;
}
