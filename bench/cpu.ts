/**
 * Where a benchmark's CPU went, read from /proc (Linux): the whole
 * machine's busy time, and one process's own time with, for a server
 * like PostgreSQL's postmaster, its children's (the live ones, and the
 * exited ones it waited for). In clock ticks of 1/100 s: a window of
 * seconds is needed for a figure to mean anything.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // getconf CLK_TCK = 100 on Linux

/** Busy ms of all the machine's CPUs since boot (user, nice, system, irq, softirq). */
export function machineBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) * TICK_MS;
}

/** Fields after the command name of /proc/<pid>/stat (index 0 is field 3, the state), or undefined once it is gone. */
function stat(pid: number): number[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s
      .slice(s.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
  } catch {
    return undefined;
  }
}

/**
 * CPU ms of `pid` (user and system); with `tree`, plus its live children's
 * and the exited children it has waited for: what a postmaster and its
 * backends used together.
 */
export function processCpuMs(pid: number, tree = false): number {
  const own = stat(pid);
  if (!own) return NaN;
  let ticks = own[11]! + own[12]!;
  if (tree) {
    ticks += own[13]! + own[14]!;
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const child = stat(Number(name));
      if (child && child[1] === pid) ticks += child[11]! + child[12]!;
    }
  }
  return ticks * TICK_MS;
}

/** The postmaster's pid of a PostgreSQL on this machine: the parent of the backend serving `sql`. */
export async function postmasterPid(sql: (strings: TemplateStringsArray) => PromiseLike<readonly { pid: number }[]>): Promise<number> {
  const [row] = await sql`SELECT pg_backend_pid() AS pid`;
  const ppid = stat(row!.pid)?.[1];
  if (ppid === undefined) throw new Error(`no /proc entry for PostgreSQL backend ${row!.pid}: is the server on another machine?`);
  return ppid;
}
