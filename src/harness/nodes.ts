/**
 * Real volstate nodes: `volstate serve` processes on loopback ports,
 * sharing one database and one backend (the file driver on one storage
 * directory, as the nodes of a deployment share their storage), for the
 * harness and the multi-process tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tcpUrl } from '../../db/connect.ts';
import { freePort } from '../../db/servers/embedded.ts';
import { volstateArgs } from '../launch.ts';

export interface NodeOptions {
  databaseUrl: string;
  dataDir: string;
  /** the shared backend: the file driver's directory */
  storage: string;
  /** a file every driver operation's start and end is appended to (none: no journal) */
  journal?: string | undefined;
  latencyMs: number;
  timeoutMs: number;
  /** more environment for the node (overrides the above) */
  env?: Record<string, string>;
  /** append the node's log (stdout's JSON lines and stderr) to this file */
  logFile?: string | undefined;
  /**
   * Another volstate checkout to run instead of this one (the benchmarks'
   * `--compare`): its own `src/cli.ts` through its own tsx, from its
   * directory, on the TCP form of the database URL (older servers did not
   * take a socket in the URL).
   */
  tree?: string | undefined;
}

export interface VolstateNode {
  readonly url: string;
  readonly proc: ChildProcess;
  /** the node's worker id */
  readonly workerId: string;
  readonly exited: Promise<number | null>;
  /** stderr so far (startup messages, errors) */
  output(): string;
}

export async function startNode(opts: NodeOptions): Promise<VolstateNode> {
  const port = await freePort();
  const args = opts.tree
    ? [
        '--import',
        pathToFileURL(join(opts.tree, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href,
        'src/cli.ts',
        'serve',
        '--port',
        String(port),
      ]
    : await volstateArgs('serve', '--port', String(port));
  const proc = spawn(process.execPath, args, {
    ...(opts.tree ? { cwd: opts.tree } : {}),
    env: {
      ...process.env,
      DATABASE_URL: opts.tree ? tcpUrl(opts.databaseUrl) : opts.databaseUrl,
      VOLSTATE_DATA_DIR: opts.dataDir,
      VOLSTATE_DRIVER: 'file',
      VOLSTATE_FILE_DIR: opts.storage,
      VOLSTATE_DRIVER_LATENCY_MS: String(opts.latencyMs),
      ...(opts.journal ? { VOLSTATE_DRIVER_JOURNAL: opts.journal } : {}),
      VOLSTATE_WORKER_TIMEOUT_MS: String(opts.timeoutMs),
      VOLSTATE_HEARTBEAT_MS: String(Math.max(50, Math.floor(opts.timeoutMs / 8))),
      VOLSTATE_WORKER_POLL_MS: '500',
      VOLSTATE_DRAIN_MS: '2000',
      LOG_LEVEL: process.env.NODE_LOG_LEVEL ?? 'error',
      ...opts.env,
    },
    stdio: ['ignore', opts.logFile ? 'pipe' : 'ignore', 'pipe'],
  });
  let err = '';
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  if (log) {
    proc.stdout!.pipe(log); // the log's JSON lines
    proc.stderr!.pipe(log);
  }
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const ready = new Promise<{ url: string; workerId: string }>((resolveReady, reject) => {
    proc.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const url = /serving the Cinder v3 API at (\S+)\/v3/.exec(err)?.[1];
      const workerId = /worker (worker:\S+) running/.exec(err)?.[1];
      if (url && workerId) resolveReady({ url, workerId });
    });
    void exited.then((code) => reject(new Error(`node exited (${code}) before it was ready:\n${err}`)));
  });
  const { url, workerId } = await ready;
  return { url, proc, workerId, exited, output: () => err };
}
