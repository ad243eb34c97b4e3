/**
 * The error registry and the error table of docs/api.md say the same thing,
 * and every registry error renders as a Cinder fault body.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiError, ERRORS, faultName, type ErrorCode } from '../../src/errors.ts';

const README = readFileSync(resolve(import.meta.dirname, '../../docs/api.md'), 'utf8');

function documented(): Map<string, { status: number; fault: string; message: string }> {
  const block = README.split('<!-- errors:start -->')[1]?.split('<!-- errors:end -->')[0] ?? '';
  const rows = new Map<string, { status: number; fault: string; message: string }>();
  for (const line of block.split('\n')) {
    const m = /^\| `(\w+)` \| (\d{3}) \| (\w+) \| (.*) \|$/.exec(line.trim());
    if (m) rows.set(m[1]!, { status: Number(m[2]), fault: m[3]!, message: m[4]!.replaceAll('\\|', '|') });
  }
  return rows;
}

describe('error registry', () => {
  it('matches the table in docs/api.md, code by code', () => {
    const docs = documented();
    expect([...docs.keys()].sort()).toEqual(Object.keys(ERRORS).sort());
    for (const [code, e] of Object.entries(ERRORS)) {
      expect(docs.get(code), code).toEqual({ status: e.status, fault: faultName(e.status), message: e.message });
    }
  });

  it('renders every code as a one-key Cinder fault body', () => {
    for (const code of Object.keys(ERRORS) as ErrorCode[]) {
      const err = new ApiError(code, {
        id: 'x',
        reason: 'r',
        field: 'f',
        value: 'v',
        action: 'a',
        version: '3.99',
        min: '3.0',
        max: '3.70',
      });
      const body = err.body();
      expect(Object.keys(body)).toEqual([faultName(err.status)]);
      expect(body[faultName(err.status)]).toMatchObject({ code: err.status, message: expect.any(String) });
      expect(err.message).not.toMatch(/\{(id|reason|field|value|action|version|min|max)\}/);
    }
  });
});
