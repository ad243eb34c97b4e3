/**
 * How a node logs. One line per request, written when it is answered:
 * method, path, status, time, and for a refusal or an error its fault's
 * message (so a refusal's reason is in the log, not only in the answer).
 *
 * Two formats of the same records: `json` (pino's, one object a line, for
 * log shippers) and `pretty` (one human line each, for a person at a
 * terminal). `VOLSTATE_LOG_FORMAT` chooses; by default a terminal gets
 * `pretty` and anything else `json`.
 */
import type { FastifyInstance, FastifyServerOptions } from 'fastify';

export type LogFormat = 'json' | 'pretty';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** pino's level names by value: a line at a level below the logger's is not built */
const LEVEL_VALUES: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
/** pino's own fields, which the pretty line says in its own way or leaves out */
const PLAIN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'reqId', 'v']);

/** A pino record as one line a person reads: `07:55:11 INFO  GET /v3/volumes 200 3.1ms  req-…`. */
export function prettyLine(record: Record<string, unknown>): string {
  const time = new Date(typeof record.time === 'number' ? record.time : Date.now()).toISOString().slice(11, 19);
  const level = (LEVELS[record.level as number] ?? String(record.level)).padEnd(5);
  const extra = Object.entries(record)
    .filter(([k]) => !PLAIN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  const err = record.err as { stack?: string } | undefined;
  const text = (v: unknown) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));
  const tail = record.reqId ? `  ${text(record.reqId)}` : '';
  return `${time} ${level} ${text(record.msg)}${extra.length && !err ? `  ${extra.join(' ')}` : ''}${tail}${err?.stack ? `\n${err.stack}` : ''}\n`;
}

/** The logger options of the app: level, and a stream that writes pretty lines when asked for. */
export function loggerOptions(level: string, format: LogFormat): NonNullable<Exclude<FastifyServerOptions['logger'], boolean>> {
  if (format === 'json') return { level };
  return {
    level,
    stream: {
      write(line: string) {
        try {
          process.stdout.write(prettyLine(JSON.parse(line) as Record<string, unknown>));
        } catch {
          process.stdout.write(line);
        }
      },
    },
  };
}

export function defaultLogFormat(): LogFormat {
  return process.stdout.isTTY ? 'pretty' : 'json';
}

/** The one line per request (Fastify's own two are turned off in app.ts). */
export function requestLog(app: FastifyInstance): void {
  app.addHook('onResponse', async (req, reply) => {
    // Nodes run at LOG_LEVEL=error under load: build nothing a disabled level would drop.
    if ((LEVEL_VALUES[req.log.level] ?? 0) > (reply.statusCode >= 500 ? 50 : 30)) return;
    const ms = reply.elapsedTime.toFixed(1);
    const line = `${req.method} ${req.url} ${reply.statusCode} ${ms}ms`;
    const fault = reply.statusCode >= 400 ? req.faultMessage : undefined;
    if (reply.statusCode >= 500) req.log.error({ fault }, line);
    else if (fault) req.log.info({ fault }, line);
    else req.log.info(line);
  });
}
