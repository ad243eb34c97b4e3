/**
 * Another commit's volstate, for the benchmarks' `--compare <commit>`: a git
 * worktree under node_modules/.cache/volstate/compare-<sha>, with its own
 * dependencies (`npm ci` there once, then kept), whose server is started
 * through its own tsx from its own directory.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');

export interface Target {
  name: string;
  dir: string;
  /** this tree's server takes the socket URL; an older one may not */
  socket: boolean;
  /** the server's entry point, run as `<entry> serve --port N` (src/cli.ts) */
  entry?: string;
}

export function git(args: string[], cwd = ROOT): string {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

/** This working tree: HEAD's short hash, `+` when tracked files differ from it. */
export function here(): Target {
  return {
    name: `${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', '--untracked-files=no']) ? '+' : ''}`,
    dir: ROOT,
    socket: true,
  };
}

/** A worktree of `commit` with its own dependencies, made once and kept. */
export function checkout(commit: string, who: string): Target {
  const sha = git(['rev-parse', '--short', `${commit}^{commit}`]);
  const dir = join(ROOT, 'node_modules', '.cache', 'volstate', `compare-${sha}`);
  if (!existsSync(join(dir, 'node_modules', '.bin', 'tsx'))) {
    rmSync(dir, { recursive: true, force: true });
    spawnSync('git', ['worktree', 'prune'], { cwd: ROOT });
    git(['worktree', 'add', '--detach', dir, sha]);
    console.error(`${who}: npm ci in ${dir} (once)`);
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`npm ci for ${sha} failed`);
  }
  return { name: sha, dir, socket: false };
}
