/**
 * The README and docs/ link to each other by relative paths and anchors;
 * every such link must land: the file exists, and an anchor names a
 * heading of it (GitHub's slugs: lower case, punctuation dropped, spaces
 * to hyphens). A section renamed or moved without its links fails here.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const pages = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** GitHub's anchor of a heading. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8');
  const out = new Set<string>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.*)$/.exec(line);
    if (m) out.add(slug(m[1]!));
  }
  return out;
}

describe('the documentation links', () => {
  it('finds the pages: the README and docs/', () => {
    expect(pages.length).toBeGreaterThan(5);
  });

  it('slugs headings as GitHub does', () => {
    expect(slug('Where volstate does better than Cinder, on purpose')).toBe('where-volstate-does-better-than-cinder-on-purpose');
    expect(slug('Waiting instead of failing: `Prefer: wait=N`')).toBe('waiting-instead-of-failing-prefer-waitn');
  });

  for (const page of pages) {
    it(`${page}: every relative link lands on a file and, if it names one, a heading`, () => {
      const text = readFileSync(join(ROOT, page), 'utf8').replace(/```[\s\S]*?```/g, '');
      const broken: string[] = [];
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue; // http:, https:, mailto:
        const [path, anchor] = target!.split('#') as [string, string | undefined];
        const file = path ? resolve(dirname(join(ROOT, page)), path) : join(ROOT, page);
        if (!existsSync(file)) broken.push(`${target} (no ${relative(ROOT, file)})`);
        else if (anchor && file.endsWith('.md') && !anchorsOf(file).has(anchor)) broken.push(`${target} (no such heading)`);
      }
      expect(broken).toEqual([]);
    });
  }
});
