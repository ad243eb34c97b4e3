/**
 * An OpenStack CLI (`cinder`, `openstack`) that imports its client once:
 * resident-cli.py imports the executable's entry point
 * (`cinderclient.shell.main`, `openstackclient.shell.main`), then forks a
 * fresh process per call that runs it with that call's argv, environment,
 * stdout, stderr and exit code. The client's code is the installed one,
 * unchanged, and no call sees another's state; what is saved is the
 * interpreter's start and the client's imports, about 1.4 s of CPU a call,
 * which made the CLI files the longest in `npm test` (cinder.test.ts: 99
 * calls, 259 s). cinder.test.ts checks that a resident call answers what the
 * executable answers.
 *
 * Calls run one at a time, in order, as a shell user's would.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

interface Live {
  child: ChildProcess;
  replies: AsyncIterator<string>;
}

export class ResidentCli {
  #live: Live | undefined;
  #installed: boolean | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  /**
   * @param prog the executable's name on PATH (`cinder`)
   * @param module the module whose `main` it runs (`cinderclient.shell`)
   */
  constructor(
    readonly prog: string,
    readonly module: string,
  ) {}

  /** Whether the executable is installed (its `--version` answers; asked once). */
  installed(): boolean {
    return (this.#installed ??= spawnSync(this.prog, ['--version'], { encoding: 'utf8' }).status === 0);
  }

  run(argv: readonly string[], env: Record<string, string | undefined>, timeoutMs = 60_000): Promise<CliRun> {
    const call = this.#tail.then(() => this.#call(argv, env, timeoutMs));
    this.#tail = call.catch(() => undefined);
    return call;
  }

  close(): void {
    const pid = this.#live?.child.pid;
    this.#live = undefined;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  async #call(argv: readonly string[], env: Record<string, string | undefined>, timeoutMs: number): Promise<CliRun> {
    const live = (this.#live ??= this.#start());
    (live.child.stdin as Writable).write(`${JSON.stringify({ argv, env: defined(env) })}\n`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const reply = await Promise.race([live.replies.next(), timedOut]).finally(() => clearTimeout(timer));
    if (reply === 'timeout' || reply.done) {
      this.close();
      const why = reply === 'timeout' ? `did not answer within ${timeoutMs} ms` : 'exited (its stderr is above)';
      return { code: -1, out: '', err: `${this.prog} ${argv.join(' ')}: the resident interpreter ${why}` };
    }
    return JSON.parse(reply.value) as CliRun;
  }

  #start(): Live {
    const child = spawn(this.#interpreter(), [join(import.meta.dirname, 'resident-cli.py'), this.module, this.prog], {
      stdio: ['pipe', 'inherit', 'inherit', 'pipe'],
      // its own process group, so that close() ends a call's child with it
      detached: true,
    });
    const replies = createInterface({ input: child.stdio[3] as Readable })[Symbol.asyncIterator]();
    return { child, replies };
  }

  /** The interpreter the installed executable names on its `#!` line. */
  #interpreter(): string {
    const path = spawnSync('sh', ['-c', `command -v ${this.prog}`], { encoding: 'utf8' }).stdout.trim();
    const shebang = /^#!\s*(\S+)/.exec(readFileSync(path, 'utf8'));
    if (!shebang) throw new Error(`${path} does not start with a #! line naming its interpreter`);
    return shebang[1]!;
  }
}

function defined(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}
