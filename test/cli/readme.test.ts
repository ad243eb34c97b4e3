/**
 * The README's tour runs as written: the shell blocks between
 * `<!-- tour:start -->` and `<!-- tour:end -->`, in order, against a real
 * `volstate serve` (file driver, its own database), with the real curl, jq
 * and cinder CLI. The only change made to the text is the port: the server
 * listens where the test found room (PORT, which the tour reads), not necessarily on 8776. Each block's
 * `# comment` after a command is what it must print.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../helpers/db.ts';

function tour(): string[] {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('<!-- tour:start -->'), readme.indexOf('<!-- tour:end -->'));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** What each command's trailing comment says it prints: `| jq … # 3.70` → "3.70". */
function expectations(block: string): string[] {
  // Only a command that prints (its output piped to jq): a comment on an assignment says what it is.
  const printing = block
    .split('\n')
    .filter((line) => line.includes('| jq'))
    .join('\n');
  return [...printing.matchAll(/#\s+([^\s(][^(\n]*?)\s*(?:\(.*\))?$/gm)].map((m) => m[1]!.trim());
}

const tools = ['curl', 'jq', 'cinder'].filter((tool) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`]);
    return false;
  } catch {
    return true;
  }
});

describe('the README tour', () => {
  let child: ChildProcess | undefined;
  let port = 0;
  const dir = mkdtempSync(join(tmpdir(), 'volstate-tour-'));
  chmodSync(dir, 0o755);

  beforeAll(async () => {
    if (tools.length) return;
    const url = await createTestDatabase();
    // The bin itself, not through npx: npx does not pass SIGTERM on, and the server would outlive the test.
    child = spawn(process.execPath, ['bin/volstate.js', 'serve', '--port', '0'], {
      env: { ...process.env, DATABASE_URL: url, VOLSTATE_DATA_DIR: dir, VOLSTATE_DRIVER: 'file' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    port = await new Promise<number>((resolve, reject) => {
      child!.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /serving the Cinder v3 API at http:\/\/127\.0\.0\.1:(\d+)\/v3/.exec(err);
        if (m) resolve(Number(m[1]));
      });
      child!.on('exit', (code) => reject(new Error(`volstate exited ${code}: ${err}`)));
    });
  }, 60_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('has blocks to run', () => {
    expect(tour().length).toBeGreaterThanOrEqual(2);
    expect(tour().flatMap(expectations)).toEqual(['3.70', 'creating', 'ok']);
  });

  it('runs every block as written, in order, and each prints what its comments say', () => {
    if (tools.length) {
      throw new Error(
        `the README tour needs ${tools.join(', ')}: apt-get install -y ${tools.map((t) => (t === 'cinder' ? 'python3-cinderclient' : t)).join(' ')} (.ci/run does)`,
      );
    }
    // The tour reads the port as a user who moved it would: from PORT (8776 unset).
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
    for (const block of tour()) {
      expect(block, 'the tour names no fixed port: it reads PORT').not.toMatch(/127\.0\.0\.1:8776/);
      const script = block;
      // One shell for the block, which may export for its own later lines.
      const out = execFileSync('bash', ['-euo', 'pipefail', '-c', script], { env, encoding: 'utf8', timeout: 60_000 });
      for (const expected of expectations(block)) expect(out, `block:\n${block}`).toContain(expected);
      if (block.includes('cinder ')) {
        const rows = out.split('\n').filter((l) => l.startsWith('|') && /\b(first|second)\b/.test(l));
        expect(
          rows.some((l) => /\bsecond\b.*\|\s*2\s*\|/.test(l)),
          out,
        ).toBe(true);
        expect(
          rows.some((l) => /\bfirst\b/.test(l)),
          out,
        ).toBe(true);
      }
    }
  }, 120_000);
});
