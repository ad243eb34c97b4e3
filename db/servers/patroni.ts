/**
 * A replicated PostgreSQL on loopback, the standard way: etcd, and one
 * Patroni member per PostgreSQL server (Debian's `patroni`, `etcd-server`
 * and `postgresql-15`), streaming replication with Patroni's
 * `synchronous_mode`, so a transaction is acknowledged only once the
 * synchronous standby has it. For the harness (`--db patroni`), the
 * failover test and the replication benchmark; docs/patroni.md's worked
 * example is the same configuration written out.
 *
 * Losing the primary's machine is `killPrimary`: SIGKILL to its Patroni
 * and to every PostgreSQL process of it, frozen first so none acts after
 * another died (killPostgres), so its sockets close at once. Patroni's leader key in etcd
 * then expires (`ttl`), and the synchronous standby, the only member
 * Patroni lets take over in synchronous mode, promotes itself. `restart`
 * brings the lost member back (a rebooted machine); Patroni rewinds it
 * (pg_rewind: `wal_log_hints`) and it follows the new primary.
 *
 * Pitfalls handled here:
 * - PostgreSQL refuses to run as root: as root, Patroni runs as the
 *   `postgres` user that the Debian package made, in directories it owns.
 * - The Debian package starts nothing here (no systemd), and its
 *   `/etc/patroni` is left alone: each cluster writes its own configuration.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './embedded.ts';

/** Debian packages a replicated cluster needs, each with a file that tells it is installed. */
const PACKAGES: [pkg: string, file: string][] = [
  ['patroni', '/usr/bin/patroni'],
  ['etcd-server', '/usr/bin/etcd'],
  ['postgresql-15', '/usr/lib/postgresql/15/bin/postgres'],
];
export const PG_BIN = '/usr/lib/postgresql/15/bin';

/**
 * Install what is missing (as `.ci/run` installs its other Debian tools);
 * an error that names the packages when that is not possible.
 */
export function ensurePatroniPackages(): void {
  const missing = PACKAGES.filter(([, file]) => !existsSync(file)).map(([pkg]) => pkg);
  if (missing.length === 0) return;
  if (userInfo().uid !== 0)
    throw new Error(`--db patroni needs the Debian packages ${missing.join(', ')}: install them (apt-get install ${missing.join(' ')})`);
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    execFileSync('apt-get', ['install', '-y', '-qq', ...missing], {
      stdio: 'ignore',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch (err) {
    throw new Error(`could not install ${missing.join(', ')} (${String(err)}); install them and try again`);
  }
}

export interface PatroniOptions {
  /** a fresh directory for etcd, the members and their logs */
  dir: string;
  /** PostgreSQL servers (default 2: a primary and its synchronous standby) */
  members?: number;
  /** Patroni's synchronous_mode (default true); false: asynchronous standbys */
  synchronous?: boolean;
  /** Patroni's leader-key TTL in seconds (default 10): how long a lost primary keeps its key */
  ttl?: number;
  /** Patroni's maximum_lag_on_failover in bytes (default 1 MB, as Patroni's) */
  maximumLagOnFailover?: number;
  /** Patroni's loop (default 1 s) */
  loopWait?: number;
  /** more PostgreSQL settings (every member) */
  settings?: Record<string, string | number>;
  /** progress lines */
  say?: (line: string) => void;
}

export interface PatroniMember {
  readonly name: string;
  readonly pgPort: number;
  readonly apiPort: number;
  readonly dataDir: string;
}

/** One member as Patroni's REST API reports it (`GET /cluster`). */
export interface MemberStatus {
  name: string;
  /** 'leader', 'sync_standby', 'replica', … */
  role: string;
  state: string;
  lag?: number | string;
  timeline?: number;
}

export interface PatroniCluster {
  readonly members: readonly PatroniMember[];
  /** the application database on every member, `target_session_attrs=read-write`: postgres.js finds the primary */
  readonly url: string;
  /** the same for the `postgres` maintenance database */
  readonly adminUrl: string;
  /** the members' state as a live member's Patroni reports it */
  status(): Promise<MemberStatus[]>;
  /** the primary, and a synchronous standby streaming from it (synchronous mode) or any replica streaming: `timeoutMs` to get there */
  waitHealthy(timeoutMs?: number): Promise<{ primary: PatroniMember; standbys: PatroniMember[] }>;
  /** a primary other than `except` (the lost one), once one is promoted: `timeoutMs` to get there */
  waitPrimary(except: PatroniMember | undefined, timeoutMs?: number): Promise<PatroniMember>;
  /** the machine of the primary is lost: SIGKILL its Patroni and its PostgreSQL; the member named */
  killPrimary(): Promise<PatroniMember>;
  /**
   * Stop the primary's WAL senders (SIGSTOP) for `ms`: what is committed
   * meanwhile stays on the primary's machine. (Stopping the standby's
   * receiver instead loses nothing: what was sent waits in its socket.)
   * With synchronous replication the primary's commits wait; with
   * asynchronous standbys they are acknowledged, and lost if the primary
   * is lost before `ms` is over (the harness's demonstration that its
   * check catches lost changes). Resolves when the pause starts; the
   * senders go on by themselves.
   */
  stallReplication(ms: number): Promise<void>;
  /** start a lost member again (its machine came back) */
  restart(member: PatroniMember): Promise<void>;
  stop(): Promise<void>;
}

const SUPERUSER = { username: 'postgres', password: 'volstate-patroni' };
const REPLICATION = { username: 'replicator', password: 'volstate-replication' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The uid and gid PostgreSQL runs as: the `postgres` user when we are root, else ourselves. */
function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!passwd) throw new Error('as root, PostgreSQL runs as the user postgres, and there is none: install postgresql-15');
  const [, , uid, gid] = passwd.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function ownedDir(path: string, owner: { uid: number; gid: number } | undefined, mode = 0o700): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  if (owner) chownSync(path, owner.uid, owner.gid);
  return path;
}

/** The postmaster's pid from its data directory (undefined: not running, or no file). */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The children of `parent` (/proc). */
function childrenOf(parent: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) found.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

const signal = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone already */
  }
};

/**
 * A PostgreSQL server dies as its machine would: every process at once.
 * The postmaster's children each lead a session of their own, so killing
 * the postmaster (or its group) leaves them running until they notice:
 * a stopped WAL sender, continued, would still ship what it had. So all
 * are frozen first (SIGSTOP), then killed.
 */
function killPostgres(postmaster: number): void {
  signal(postmaster, 'SIGSTOP');
  const all = [postmaster, ...childrenOf(postmaster)];
  for (const pid of all) signal(pid, 'SIGSTOP');
  for (const pid of all) signal(pid, 'SIGKILL');
}

/** The children of `parent` whose command line mentions `name` (PostgreSQL names its processes: `postgres: volstate: walreceiver`). */
function childrenNamed(parent: number, name: string): number[] {
  return childrenOf(parent).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(name);
    } catch {
      return false;
    }
  });
}

/** Patroni's health check of one member (`GET /primary`, `/sync`, `/replica`): 200 when it is that. */
async function is(m: PatroniMember, role: 'primary' | 'sync' | 'replica'): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${m.apiPort}/${role}`, { signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

/** etcd, one member, loopback only: Patroni's distributed configuration store. Resolves once it is healthy. */
async function startEtcd(dir: string): Promise<{ proc: ChildProcess; clientPort: number }> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${clientPort}`;
  const etcd = spawn(
    'etcd',
    [
      '--name',
      'etcd0',
      '--data-dir',
      join(dir, 'etcd'),
      '--listen-client-urls',
      etcdUrl,
      '--advertise-client-urls',
      etcdUrl,
      '--listen-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peerPort}`,
      '--initial-cluster',
      `etcd0=http://127.0.0.1:${peerPort}`,
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let etcdLog = '';
  etcd.stderr.on('data', (b: Buffer) => (etcdLog = (etcdLog + b.toString()).slice(-20_000)));
  for (let until = Date.now() + 30_000; ;) {
    const ok = await fetch(`${etcdUrl}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (etcd.exitCode !== null || Date.now() > until) {
      etcd.kill('SIGKILL');
      throw new Error(`etcd did not start:\n${etcdLog}`);
    }
    await sleep(100);
  }

  return { proc: etcd, clientPort };
}

/** One member's patroni.yml (as JSON, which is YAML). */
function patroniConfig(
  m: PatroniMember,
  ctx: { opts: PatroniOptions; dir: string; clientPort: number; ttl: number; loopWait: number },
): Record<string, unknown> {
  const { opts, dir, clientPort, ttl, loopWait } = ctx;
  const settings = {
    max_connections: 500,
    wal_log_hints: 'on', // pg_rewind: a lost primary comes back as a standby
    wal_keep_size: '256MB',
    max_wal_senders: 10,
    max_replication_slots: 10,
    hot_standby: 'on',
    ...opts.settings,
  };
  return {
    scope: 'volstate',
    name: m.name,
    log: { level: 'WARNING' },
    restapi: { listen: `127.0.0.1:${m.apiPort}`, connect_address: `127.0.0.1:${m.apiPort}` },
    etcd3: { hosts: [`127.0.0.1:${clientPort}`] },
    bootstrap: {
      dcs: {
        ttl,
        loop_wait: loopWait,
        retry_timeout: Math.max(1, Math.floor((ttl - loopWait) / 2)),
        // Patroni's default (1 MB): an asynchronous standby further behind is not promoted.
        maximum_lag_on_failover: opts.maximumLagOnFailover ?? 1024 * 1024,
        synchronous_mode: opts.synchronous ?? true,
        postgresql: { use_pg_rewind: true, use_slots: true, parameters: settings },
      },
      initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
    },
    postgresql: {
      listen: `127.0.0.1:${m.pgPort}`,
      connect_address: `127.0.0.1:${m.pgPort}`,
      data_dir: m.dataDir,
      bin_dir: PG_BIN,
      pgpass: join(dir, m.name, 'pgpass'),
      authentication: { superuser: SUPERUSER, replication: REPLICATION, rewind: SUPERUSER },
      parameters: { unix_socket_directories: join(dir, m.name) },
      pg_hba: [
        'local all all trust',
        `host replication ${REPLICATION.username} 127.0.0.1/32 scram-sha-256`,
        'host all all 127.0.0.1/32 scram-sha-256',
      ],
      remove_data_directory_on_rewind_failure: true,
      remove_data_directory_on_diverged_timelines: true,
    },
  };
}

/**
 * Start etcd and `members` Patroni-managed PostgreSQL servers on loopback;
 * resolves once a primary and a standby streaming from it report healthy.
 */
export async function startPatroni(opts: PatroniOptions): Promise<PatroniCluster> {
  ensurePatroniPackages();
  chmodSync(opts.dir, 0o755);
  const etcd = await startEtcd(opts.dir);
  const owner = runAs();
  const members: PatroniMember[] = [];
  for (let i = 0; i < (opts.members ?? 2); i++) {
    const name = `pg${i + 1}`;
    const home = ownedDir(join(opts.dir, name), owner);
    members.push({ name, pgPort: await freePort(), apiPort: await freePort(), dataDir: join(home, 'data') });
  }
  const cluster = new Cluster(opts, etcd, owner, members);
  try {
    await cluster.bootstrap();
    const { primary } = await cluster.waitHealthy();
    opts.say?.(
      `Patroni cluster up: primary ${primary.name} on port ${primary.pgPort}, ${members.length - 1} ${(opts.synchronous ?? true) ? 'synchronous' : 'asynchronous'} standby(s)`,
    );
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** The running cluster: its members' Patroni processes, their logs, and what a test or the harness does to them. */
class Cluster implements PatroniCluster {
  readonly url: string;
  readonly adminUrl: string;
  private readonly procs = new Map<string, ChildProcess>();
  private readonly logs = new Map<string, string>();
  /** set by stop(): a wait under way ends at once rather than poll a cluster that is gone */
  private stopped = false;

  constructor(
    private readonly opts: PatroniOptions,
    private readonly etcd: { proc: ChildProcess; clientPort: number },
    private readonly owner: { uid: number; gid: number } | undefined,
    readonly members: readonly PatroniMember[],
  ) {
    const hosts = members.map((m) => `127.0.0.1:${m.pgPort}`).join(',');
    const auth = `${SUPERUSER.username}:${SUPERUSER.password}`;
    this.url = `postgres://${auth}@${hosts}/volstate?target_session_attrs=read-write`;
    this.adminUrl = `postgres://${auth}@${hosts}/postgres?target_session_attrs=read-write`;
  }

  /** The first member bootstraps the cluster (initdb); the others then clone it. */
  async bootstrap(): Promise<void> {
    const first = this.members[0]!;
    this.startMember(first);
    for (let until = Date.now() + 60_000; ; await sleep(200)) {
      if ((await this.status()).some((s) => s.role === 'leader' && s.state === 'running')) break;
      if (this.procs.get(first.name)!.exitCode !== null || Date.now() > until)
        throw new Error(`Patroni did not bootstrap:\n${this.logs.get(first.name) ?? ''}`);
    }
    for (const m of this.members.slice(1)) this.startMember(m);
  }

  private startMember(m: PatroniMember): void {
    const { opts, owner } = this;
    const file = join(opts.dir, m.name, 'patroni.yml');
    const config = patroniConfig(m, {
      opts,
      dir: opts.dir,
      clientPort: this.etcd.clientPort,
      ttl: opts.ttl ?? 10,
      loopWait: opts.loopWait ?? 1,
    });
    writeFileSync(file, JSON.stringify(config, null, 2)); // JSON is YAML
    if (owner) chownSync(file, owner.uid, owner.gid);
    const proc = spawn('patroni', [file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: join(opts.dir, m.name),
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      env: { ...process.env, HOME: join(opts.dir, m.name), PATH: `${PG_BIN}:${process.env.PATH ?? ''}` },
    });
    const keep = (b: Buffer) => this.logs.set(m.name, ((this.logs.get(m.name) ?? '') + b.toString()).slice(-50_000));
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    this.procs.set(m.name, proc);
  }

  async status(): Promise<MemberStatus[]> {
    for (const m of this.members) {
      try {
        const r = await fetch(`http://127.0.0.1:${m.apiPort}/cluster`, { signal: AbortSignal.timeout(2000) });
        if (r.ok) return ((await r.json()) as { members: MemberStatus[] }).members;
      } catch {
        /* that member is down: ask the next */
      }
    }
    return [];
  }

  private async primary(): Promise<PatroniMember | undefined> {
    return (await Promise.all(this.members.map(async (m) => ((await is(m, 'primary')) ? m : undefined)))).find(Boolean);
  }

  async waitHealthy(timeoutMs = 60_000) {
    const until = Date.now() + timeoutMs;
    const role = (this.opts.synchronous ?? true) ? 'sync' : 'replica';
    let last: MemberStatus[] = [];
    while (Date.now() < until) {
      this.throwIfStopped();
      // Each member's own word (the load balancers' health checks), not
      // etcd's view, which keeps a lost leader until its key expires.
      const primary = await this.primary();
      const standbys = (await Promise.all(this.members.map(async (m) => (m !== primary && (await is(m, role)) ? m : undefined)))).filter(
        (m): m is PatroniMember => Boolean(m),
      );
      if (primary && standbys.length >= Math.min(1, this.members.length - 1)) return { primary, standbys };
      last = await this.status();
      await sleep(200);
    }
    const logTail = this.members.map((m) => `--- ${m.name}\n${(this.logs.get(m.name) ?? '').slice(-3000)}`).join('\n');
    throw new Error(`the Patroni cluster did not become healthy in ${timeoutMs} ms; members: ${JSON.stringify(last)}\n${logTail}`);
  }

  async waitPrimary(except: PatroniMember | undefined, timeoutMs = 60_000) {
    for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(100)) {
      this.throwIfStopped();
      for (const m of this.members) if (m !== except && (await is(m, 'primary'))) return m;
    }
    throw new Error(`no member became the primary in ${timeoutMs} ms: ${JSON.stringify(await this.status())}`);
  }

  async stallReplication(ms: number) {
    const primary = await this.waitPrimary(undefined, 10_000);
    const postmaster = postmasterPid(primary.dataDir);
    const receivers = postmaster ? childrenNamed(postmaster, 'walsender') : [];
    if (receivers.length === 0) throw new Error(`no WAL sender found on the primary ${primary.name}`);
    for (const pid of receivers) signal(pid, 'SIGSTOP');
    setTimeout(() => receivers.forEach((pid) => signal(pid, 'SIGCONT')), ms).unref();
  }

  async killPrimary() {
    const m = await this.primary();
    if (!m) throw new Error('no primary to kill: no member says it is the primary');
    const proc = this.procs.get(m.name);
    // The machine is lost: Patroni and PostgreSQL die at once, nothing shuts down cleanly.
    if (proc?.pid) signal(proc.pid, 'SIGKILL');
    const pid = postmasterPid(m.dataDir);
    if (pid) killPostgres(pid);
    if (proc && proc.exitCode === null) await new Promise((r) => proc.once('exit', r));
    return m;
  }

  private throwIfStopped() {
    if (this.stopped) throw new Error('the Patroni cluster was stopped');
  }

  async restart(m: PatroniMember) {
    this.throwIfStopped();
    // A postmaster of the lost member that is somehow still there would keep the port.
    const pid = postmasterPid(m.dataDir);
    if (pid) killPostgres(pid);
    this.startMember(m);
  }

  async stop() {
    this.stopped = true;
    for (const proc of this.procs.values()) if (proc.pid && proc.exitCode === null) proc.kill('SIGTERM');
    const deadline = Date.now() + 15_000;
    for (const proc of this.procs.values()) {
      while (proc.exitCode === null && proc.signalCode === null && Date.now() < deadline) await sleep(100);
      if (proc.exitCode === null && proc.signalCode === null && proc.pid) signal(proc.pid, 'SIGKILL');
    }
    for (const m of this.members) {
      const pid = postmasterPid(m.dataDir);
      if (pid) killPostgres(pid);
    }
    this.etcd.proc.kill('SIGKILL');
  }
}
