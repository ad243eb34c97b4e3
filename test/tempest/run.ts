/**
 * `npm run test:tempest`: OpenStack's own conformance suite against volstate.
 *
 * Brings up a real Keystone (Debian's package, SQLite, loopback; installed
 * when missing), registers a volstate it starts in keystone mode (its own
 * embedded PostgreSQL, fake driver) as the `volumev3` and `block-storage`
 * services, runs Tempest's `tempest.api.volume` and cinder-tempest-plugin's
 * `cinder_tempest_plugin.api.volume` with the feature flags volstate can
 * honestly claim, and compares with the expected passes kept beside this
 * file (expected-pass.txt):
 *
 *   - a test on the list that does not pass fails the run (a regression);
 *   - a test that passes and is not on the list is reported, so the list
 *     can grow (`--update` rewrites it from this run).
 *
 * Options: --auth noauth|keystone (default keystone), --regex R (a subset),
 * --concurrency N (default 2), --update, --keep (leave the workspace).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDebianPackages, KEYSTONE_PACKAGES, startKeystone, type Keystone } from '../helpers/keystone.ts';
import { startServer, type Server } from './server.ts';

const HERE = import.meta.dirname;
const EXPECTED = join(HERE, 'expected-pass.txt');
const SUITES = ['tempest.api.volume', 'cinder_tempest_plugin.api.volume'];

const TEMPEST_PACKAGES: Record<string, string> = {
  tempest: '/usr/bin/tempest',
  'cinder-tempest-plugin': '/usr/lib/python3/dist-packages/cinder_tempest_plugin/plugin.py',
  'python3-subunit': '/usr/bin/subunit2csv',
};

const { values } = parseArgs({
  options: {
    auth: { type: 'string', default: 'keystone' },
    regex: { type: 'string' },
    concurrency: { type: 'string', default: '2' },
    update: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
if (values.auth !== 'keystone' && values.auth !== 'noauth') throw new Error(`--auth ${values.auth}: expected keystone or noauth`);

function say(line: string) {
  console.log(`tempest: ${line}`);
}

/**
 * Tempest's configuration: the services volstate is not are unavailable;
 * the volume features are the ones volstate has (snapshots, clones, revert,
 * extend of a detached volume); the rest are off.
 */
function tempestConf(keystone: Keystone, logFile: string): string {
  return `[DEFAULT]
log_file = ${logFile}
use_stderr = false

[auth]
use_dynamic_credentials = true
admin_username = admin
admin_password = ${keystone.adminPassword}
admin_project_name = admin
admin_domain_name = Default
tempest_roles = member

[identity]
uri_v3 = ${keystone.url}
auth_version = v3
region = RegionOne
disable_ssl_certificate_validation = true

[identity-feature-enabled]
api_v2 = false

[service_available]
cinder = true
nova = false
glance = false
neutron = false
swift = false
horizon = false
barbican = false

[volume]
catalog_type = volumev3
endpoint_type = publicURL
region = RegionOne
build_interval = 1
build_timeout = 60
min_microversion = 3.0
max_microversion = 3.70
# what the server's backend reports (the fake driver's): types made with
# these as extra specs must find a backend that satisfies them
storage_protocol = fake
vendor_name = volstate

[volume-feature-enabled]
backup = true
snapshot = true
clone = true
manage_volume = false
manage_snapshot = false
multi_backend = false
extend_attached_volume = false
consistency_group = true
volume_revert = true
api_extensions = all
`;
}

/** 'success', 'fail', 'skip', … as subunit2csv writes them */
type Outcome = string;

/** subunit2csv's rows: test id (tags stripped) → outcome. */
function readResults(subunit: string): Map<string, Outcome> {
  const r = spawnSync('subunit2csv', [], { input: readFileSync(subunit), maxBuffer: 64 << 20 });
  // subunit2csv exits 1 when a test failed: only no output is its own failure.
  if (r.stdout === null || r.stdout.length === 0) throw new Error(`subunit2csv failed (${r.status}): ${r.stderr.toString()}`);
  const out = new Map<string, Outcome>();
  for (const line of r.stdout.toString().split('\n').slice(1)) {
    // The first field is quoted when the id's tags hold a comma: "x[id-1,smoke]",success,…
    const m = /^(?:"((?:[^"]|"")*)"|([^,]*)),([^,]*)/.exec(line);
    const test = m?.[1] ?? m?.[2];
    const status = m?.[3];
    if (!test || !status) continue;
    out.set(test.replace(/\[.*$/, ''), status);
  }
  return out;
}

/** Every test id the regex selects (tags stripped). */
function listTests(ws: string, conf: string, regex: string): string[] {
  const r = spawnSync('tempest', ['run', '--config-file', conf, '--regex', regex, '--list-tests'], {
    cwd: ws,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`tempest run --list-tests: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .map((l) => l.trim().replace(/\[.*$/, ''))
    .filter((id) => SUITES.some((s) => id.startsWith(`${s}.`)));
}

/**
 * A class whose setUpClass failed or skipped reports that once, under
 * `setUpClass (module.Class)`, and none of its tests: each of them gets the
 * class's outcome, so the counts are per test.
 */
function withClassOutcomes(results: Map<string, Outcome>, selected: string[]): Map<string, Outcome> {
  const classOutcome = new Map<string, Outcome>();
  for (const [id, outcome] of results) {
    const m = /^setUpClass \((.+)\)$/.exec(id);
    if (m) classOutcome.set(m[1]!, outcome);
  }
  const out = new Map([...results].filter(([id]) => SUITES.some((s) => id.startsWith(`${s}.`))));
  for (const id of selected) {
    if (out.has(id)) continue;
    const cls = id.slice(0, id.lastIndexOf('.'));
    out.set(id, classOutcome.get(cls) ?? 'not run');
  }
  return out;
}

function readExpected(): Set<string> {
  return new Set(
    readFileSync(EXPECTED, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
}

function table(results: Map<string, Outcome>): string {
  const rows = SUITES.map((suite) => {
    const mine = [...results].filter(([id]) => id.startsWith(`${suite}.`));
    const count = (s: string) => mine.filter(([, o]) => o === s).length;
    return `| \`${suite}\` | ${mine.length} | ${count('success')} | ${mine.length - count('success') - count('skip')} | ${count('skip')} |`;
  });
  return ['| suite | selected | passed | failed | skipped |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

async function main(): Promise<number> {
  ensureDebianPackages({ ...KEYSTONE_PACKAGES, ...TEMPEST_PACKAGES });
  const work = mkdtempSync(join(tmpdir(), 'volstate-tempest-'));
  chmodSync(work, 0o755); // the embedded PostgreSQL runs as user postgres under root
  const started = Date.now();
  let keystone: Keystone | undefined;
  let server: Server | undefined;
  try {
    say('starting Keystone');
    keystone = await startKeystone();
    say(`Keystone at ${keystone.url}; starting volstate (auth ${values.auth})`);
    server = await startServer(keystone, values.auth as 'keystone' | 'noauth', work);
    say(`volstate at ${server.url}; registered as volumev3 and block-storage`);

    const ws = join(work, 'workspace');
    // Its own workspace registry, so nothing is added to ~/.tempest.
    const init = spawnSync(
      'tempest',
      ['init', '--name', `volstate-${process.pid}`, '--workspace-path', join(work, 'workspaces.yaml'), ws],
      { encoding: 'utf8' },
    );
    if (init.status !== 0) throw new Error(`tempest init failed (${init.status}): ${init.stdout}${init.stderr}`);
    const conf = join(ws, 'etc', 'tempest.conf');
    writeFileSync(conf, tempestConf(keystone, join(ws, 'tempest.log')));

    const regex = values.regex ?? `^(${SUITES.map((s) => s.replaceAll('.', '\\.')).join('|')})\\.`;
    const subunit = join(work, 'results.subunit');
    say(`running ${regex} with concurrency ${values.concurrency}`);
    const code = await new Promise<number | null>((done) => {
      const p = spawn('tempest', ['run', '--config-file', conf, '--regex', regex, '--concurrency', values.concurrency, '--subunit'], {
        cwd: ws,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      p.stdout.pipe(createWriteStream(subunit));
      p.on('exit', done);
    });
    const results = withClassOutcomes(readResults(subunit), listTests(ws, conf, regex));
    if (results.size === 0) throw new Error(`tempest ran no test (exit ${code}); see ${ws}`);

    const passed = new Set([...results].filter(([, o]) => o === 'success').map(([id]) => id));
    const expected = readExpected();
    const regressed = [...expected].filter((id) => results.has(id) && !passed.has(id)).sort();
    const absent = values.regex ? [] : [...expected].filter((id) => !results.has(id)).sort();
    const fresh = [...passed].filter((id) => !expected.has(id)).sort();
    const failed = [...results]
      .filter(([, o]) => o !== 'success' && o !== 'skip')
      .map(([id]) => id)
      .sort();

    console.log(`\n${table(results)}\n`);
    say(`${failed.length} failing tests (expected: the features volstate does not have yet, see docs/tempest.md):`);
    for (const id of failed) console.log(`  ${expected.has(id) ? 'REGRESSED ' : ''}${id}`);
    if (fresh.length) {
      say(`${fresh.length} tests pass that expected-pass.txt does not list (run with --update to add them):`);
      for (const id of fresh) console.log(`  + ${id}`);
    }
    for (const id of absent) console.log(`  missing from the run: ${id}`);
    if (values.update) {
      const header = readFileSync(EXPECTED, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('#'));
      writeFileSync(
        EXPECTED,
        [...header, ...[...new Set([...expected].filter((id) => !results.has(id) || passed.has(id)).concat([...passed]))].sort(), ''].join(
          '\n',
        ),
      );
      say(`expected-pass.txt rewritten: ${passed.size} passes`);
    }
    say(`took ${Math.round((Date.now() - started) / 1000)} s; workspace ${values.keep ? ws : '(removed)'}`);
    const bad = regressed.length + absent.length;
    console.log(`${passed.size} passed, ${bad} regressed`);
    return bad === 0 ? 0 : 1;
  } finally {
    await server?.stop();
    await keystone?.stop();
    if (!values.keep) rmSync(work, { recursive: true, force: true });
  }
}

process.exitCode = await main().catch((err: unknown) => {
  console.error(`tempest: ${(err as Error).stack ?? String(err)}`);
  return 1;
});
