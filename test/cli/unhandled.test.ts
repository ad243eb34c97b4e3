/**
 * A serving node survives a lost database connection that reaches no
 * caller, and still stops on any other unhandled rejection (a bug).
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SERVER = resolve(import.meta.dirname, '../../src/server.ts');

function child(rejection: string): Promise<{ code: number | null; stderr: string }> {
  const script = `
    const { surviveLostConnections } = await import(${JSON.stringify(SERVER)});
    surviveLostConnections();
    Promise.reject(${rejection});
    setTimeout(() => { console.error('still running'); process.exit(0); }, 200); // wait-ok: the child's own deadline, in its script: it must have died of the rejection before`;
  return new Promise((done) =>
    execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], (err, _out, stderr) =>
      done({ code: err ? (err.code as number) : 0, stderr }),
    ),
  );
}

describe('unhandled rejections in a serving process', () => {
  it('logs a lost connection and keeps running', async () => {
    const r = await child(`Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })`);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('lost database connection');
    expect(r.stderr).toContain('still running');
  });

  it('stops on anything else', async () => {
    const r = await child(`new TypeError('a bug')`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('a bug');
    expect(r.stderr).not.toContain('still running');
  });
});
