/**
 * How volstate starts another volstate process (the harness's nodes, the
 * tests' children): `node <bundle> serve …`, where the bundle is
 * `src/cli.ts` and every source file it imports, built by esbuild into one
 * module, with node_modules left to Node.
 *
 * Why not `node --import tsx src/cli.ts`, as `npm start` runs: under tsx
 * every module passes through loader hooks that run on another thread,
 * node_modules' too (typebox alone is 700 files), so such a process spends
 * about 1.5 s (2.3 s of CPU) before it serves; the bundle starts in a
 * fraction of that (measured in the commit that added this file). The
 * harness restarts a SIGKILLed node every few seconds, and `npm test` starts
 * about forty of them, on two cores.
 *
 * The bundle is built once per process (about 0.2 s), from the sources as
 * they are now, so it is never stale, and written under node_modules/.cache
 * named by its hash (so that Node finds the packages it imports). Each
 * source file keeps its own `import.meta.url` and `import.meta.dirname`,
 * which locate the migrations, the diagrams and the scenarios beside it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');
const ENTRY = join(ROOT, 'src', 'cli.ts');

let bundle: Promise<string | undefined> | undefined;

/** The arguments to give `process.execPath` to run `volstate <args…>`. */
export async function volstateArgs(...args: string[]): Promise<string[]> {
  bundle ??= buildBundle().catch((err: unknown) => {
    // A read-only install (no node_modules/.cache to write): the sources through tsx, slower to start.
    process.stderr.write(`volstate: starting children through tsx, not a bundle: ${(err as Error).message}\n`);
    return undefined;
  });
  const file = await bundle;
  return file ? ['--enable-source-maps', file, ...args] : ['--import', 'tsx', ENTRY, ...args];
}

async function buildBundle(): Promise<string> {
  const out = await build({
    entryPoints: [ENTRY],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'inline',
    write: false,
    logLevel: 'silent',
    plugins: [ownImportMeta],
  });
  const code = out.outputFiles[0]!.contents;
  const dir = join(ROOT, 'node_modules', '.cache', 'volstate');
  const file = join(dir, `cli-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const partial = `${file}.${process.pid}`;
    writeFileSync(partial, code);
    renameSync(partial, file); // whole or absent, for a process that builds the same at once
  }
  return file;
}

/** Gives each of our source files its own import.meta.url/dirname/filename, not the bundle's. */
const ownImportMeta: Plugin = {
  name: 'own-import-meta',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      if (args.path.includes('/node_modules/')) return undefined;
      const source = readFileSync(args.path, 'utf8');
      const meta: Record<string, string> = { url: pathToFileURL(args.path).href, dirname: dirname(args.path), filename: args.path };
      const contents = source.replace(/\bimport\.meta\.(url|dirname|filename)\b/g, (_, key: string) => JSON.stringify(meta[key]));
      return { contents, loader: 'ts' };
    });
  },
};
