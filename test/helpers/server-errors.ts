/**
 * Every 5xx names its cause in the test output. An answer of 500 says
 * "unexpected error" to the client (the message is masked, src/api/errors.ts)
 * and the cause goes only to the server's log, which tests run without: so
 * a 500 seen once in a loaded run was never explained (the storm test's
 * attach 500, issue 18). Here the app logs at `warn` into memory, and when a
 * request is answered with a 5xx, what the server logged for that request —
 * the error with its stack — is printed at once and kept in `errors`, for a
 * test's assertion message.
 *
 * `VOLSTATE_TEST_LOG=<level>` still shows the whole log while debugging.
 */
import type { FastifyInstance, FastifyServerOptions } from 'fastify';

interface LogRecord {
  level: number;
  reqId?: string;
  msg?: string;
  err?: { type?: string; message?: string; stack?: string; code?: string };
  fault?: string;
}

export interface ServerErrors {
  /** the logger option for `build()` */
  readonly logger: NonNullable<FastifyServerOptions['logger']>;
  /** one text per 5xx answered: the request, the status, what the server logged for it */
  readonly errors: string[];
  /** install the hook that reports a 5xx (before the app is ready) */
  watch(app: FastifyInstance): void;
}

const WARN = 40;
const SHOWN = 10;

export function captureServerErrors(): ServerErrors {
  const shown = process.env.VOLSTATE_TEST_LOG;
  const byRequest = new Map<string, LogRecord[]>();
  const errors: string[] = [];
  const stream = {
    write(line: string) {
      if (shown) process.stdout.write(line);
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        return;
      }
      if (record.level < WARN || !record.reqId) return;
      byRequest.set(record.reqId, [...(byRequest.get(record.reqId) ?? []), record]);
    },
  };
  const describe = (r: LogRecord) =>
    r.err
      ? `${r.msg ?? ''}: ${r.err.stack ?? `${r.err.type ?? 'Error'}: ${r.err.message ?? ''}`}${r.err.code ? ` (code ${r.err.code})` : ''}`
      : `${r.msg ?? ''}${r.fault ? ` — ${r.fault}` : ''}`;
  return {
    logger: { level: shown ?? 'warn', stream },
    errors,
    watch(app) {
      app.addHook('onResponse', async (req, reply) => {
        const records = byRequest.get(req.id) ?? [];
        byRequest.delete(req.id);
        if (reply.statusCode < 500) return;
        const text = `${req.method} ${req.url} → ${reply.statusCode} (${req.id})\n${records.map(describe).join('\n') || '(the server logged nothing for it)'}`;
        errors.push(text);
        // A test that causes many on purpose (lost connections) shows the first few.
        if (errors.length <= SHOWN) console.error(`[server answered a 5xx] ${text}`);
        else if (errors.length === SHOWN + 1) console.error(`[server answered a 5xx] … more than ${SHOWN}; the rest are kept, not shown`);
      });
    },
  };
}
