/**
 * `npm run bench:rally`: volstate measured the way OpenStack measures
 * Cinder — Rally (Debian's `rally` with `python3-rally-openstack`, installed
 * when missing) running rally-openstack's CinderVolumes scenarios that need
 * no Nova or Glance (bench/rally/task.yaml): create_and_delete_volume,
 * create_and_extend_volume, create_and_list_volume and
 * create_and_delete_snapshot, against a `volstate serve` (fake driver, its
 * own embedded PostgreSQL) behind a real Keystone, registered in its
 * catalogue as Cinder is (test/tempest/server.ts). Rally creates its own
 * projects and users through Keystone, as it does in a cloud.
 *
 * Rally polls a volume's status every 2 s by default, after waiting 2 s
 * before the first poll: that would hide everything the server does. Here
 * both are 0.05 s (rally.conf), so what Rally reports is the server's time
 * plus the clients' own (cinderclient, keystoneauth: Python, on the same
 * 2 cores).
 *
 * Options: --times N (iterations per scenario, default 40), --concurrency
 * N (default 8), --out FILE (where Rally's JSON report is written; default
 * bench/rally/report.json, kept in the repository as the last run's).
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDebianPackages, KEYSTONE_PACKAGES, startKeystone, type Keystone } from '../test/helpers/keystone.ts';
import { startServer, type Server } from '../test/tempest/server.ts';

const HERE = import.meta.dirname;
const { values } = parseArgs({
  options: {
    times: { type: 'string', default: '40' },
    concurrency: { type: 'string', default: '8' },
    out: { type: 'string', default: join(HERE, 'rally', 'report.json') },
  },
});

const RALLY_PACKAGES: Record<string, string> = {
  rally: '/usr/bin/rally',
  'python3-rally-openstack': '/usr/lib/python3/dist-packages/rally_openstack/__init__.py',
};

/** What Rally's JSON report says of one action's timings (seconds). */
interface Stat {
  iteration_count: number;
  median: number | 'n/a';
  '95%ile': number | 'n/a';
  avg: number | 'n/a';
  success: string;
}

interface Report {
  tasks: {
    subtasks: {
      title: string;
      workloads: {
        load_duration: number;
        statistics: { durations: { atomics: { name: string; data: Stat }[]; total: { data: Stat } } };
      }[];
    }[];
  }[];
}

/**
 * Run rally and collect its output. Asynchronously: Keystone and volstate
 * write their logs to pipes this process reads, and a spawnSync would stop
 * the reading — Keystone then blocks on a full stderr, mid-request.
 */
function rally(home: string, conf: string, args: string[], opts: { live?: boolean } = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((done, fail) => {
    const p = spawn('rally', ['--config-file', conf, ...args], { env: { ...process.env, HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (b: Buffer) => {
      out += b.toString();
      if (opts.live) process.stderr.write(b);
    };
    p.stdout.on('data', take);
    p.stderr.on('data', take);
    p.on('error', fail);
    p.on('close', (code) => done({ code, out }));
  });
}

async function mustRally(home: string, conf: string, args: string[]): Promise<string> {
  const r = await rally(home, conf, args);
  if (r.code !== 0) throw new Error(`rally ${args.join(' ')} failed (${r.code}):\n${r.out.slice(-4000)}`);
  return r.out;
}

const ms = (s: number | 'n/a') => (typeof s === 'number' ? `${(s * 1000).toFixed(0)} ms` : s);

async function main(): Promise<void> {
  ensureDebianPackages({ ...KEYSTONE_PACKAGES, ...RALLY_PACKAGES });
  const work = mkdtempSync(join(tmpdir(), 'volstate-rally-'));
  chmodSync(work, 0o755); // the embedded PostgreSQL runs as user postgres under root
  let keystone: Keystone | undefined;
  let server: Server | undefined;
  try {
    keystone = await startKeystone();
    server = await startServer(keystone, 'keystone', work);
    const conf = join(work, 'rally.conf');
    writeFileSync(
      conf,
      [
        '[database]',
        `connection = sqlite:///${join(work, 'rally.db')}`,
        '[openstack]',
        'cinder_volume_create_prepoll_delay = 0.05',
        'cinder_volume_create_poll_interval = 0.05',
        'cinder_volume_delete_poll_interval = 0.05',
        // Keystone here is one uwsgi process of one thread (test/helpers/keystone.ts): Rally's 20
        // cleanup threads would queue behind each other there past volstate's validation timeout.
        '[cleanup]',
        'cleanup_threads = 2',
        '',
      ].join('\n'),
    );
    await mustRally(work, conf, ['db', 'create']);
    const spec = join(work, 'env.json');
    writeFileSync(
      spec,
      JSON.stringify({
        openstack: {
          auth_url: keystone.url,
          region_name: 'RegionOne',
          admin: {
            username: 'admin',
            password: keystone.adminPassword,
            project_name: 'admin',
            user_domain_name: 'Default',
            project_domain_name: 'Default',
          },
        },
      }),
    );
    await mustRally(work, conf, ['env', 'create', '--name', 'volstate', '--spec', spec]);
    console.log(
      `bench:rally: Keystone at ${keystone.url}, volstate at ${server.url}; ${values.times} iterations per scenario, concurrency ${values.concurrency}`,
    );
    const started = Date.now();
    const args = JSON.stringify({ times: Number(values.times), concurrency: Number(values.concurrency) });
    // Rally's own progress to stderr as it goes; a failed iteration is in the report (its success
    // rate), not a reason to stop, so only a task that did not finish is.
    await rally(work, conf, ['task', 'start', '--task', join(HERE, 'rally', 'task.yaml'), '--task-args', args], { live: true });
    const status = await mustRally(work, conf, ['task', 'status']);
    if (!/finished/.test(status)) throw new Error(`rally's task did not finish: ${status.trim()}`);
    const out = resolve(values.out);
    await mustRally(work, conf, ['task', 'report', '--json', '--out', out]);
    const report = JSON.parse(readFileSync(out, 'utf8')) as Report;
    console.log(`rally: ${((Date.now() - started) / 1000).toFixed(0)} s; report ${out}\n`);
    console.log('| scenario | action | median | 95%ile | mean | success | iterations/s |');
    console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
    for (const subtask of report.tasks[0]!.subtasks) {
      for (const w of subtask.workloads) {
        const { atomics, total } = w.statistics.durations;
        const rate = (total.data.iteration_count / w.load_duration).toFixed(1);
        for (const a of [...atomics, { name: 'total', data: total.data }]) {
          console.log(
            `| ${subtask.title} | ${a.name} | ${ms(a.data.median)} | ${ms(a.data['95%ile'])} | ${ms(a.data.avg)} | ${a.data.success} | ${a.name === 'total' ? rate : ''} |`,
          );
        }
      }
    }
  } finally {
    await server?.stop();
    await keystone?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench:rally: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
});
