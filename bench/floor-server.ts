/**
 * The floor under `bench:control` (`--floor`): the least a server can do
 * and still answer the benchmark's clients with a state kept in PostgreSQL,
 * each change one compare-and-swap statement that writes its history. It is
 * not volstate and serves nothing else; it exists to measure, on the same
 * machine in the same run, how many lifecycles the machine itself allows.
 *
 * What it leaves out, each a part of what volstate does for a user: Fastify
 * and request validation, Keystone's context, Cinder's views (a GET answers
 * three fields), quotas, types and backends, scheduling, the worker's claim
 * and fences (a step runs in the process right after the request's commit,
 * and is lost if the process dies), waiters, metrics, notifications. A
 * lifecycle is six transitions (volstate's is eight: scheduling is two
 * steps), each one statement on its own, autocommitted:
 *
 *   CREATE → creating → CREATED → available → EXTEND → extending →
 *   EXTENDED → available → DELETE → deleting → DELETED → deleted
 *
 * The history has the columns and the index `state_transitions` has, so
 * the benchmark reads its latencies the same way.
 *
 * `tsx bench/floor-server.ts serve --port N` with DATABASE_URL; it says
 * what volstate's `serve` says when it is ready.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { sqlClient } from '../db/connect.ts';

const { values } = parseArgs({ options: { port: { type: 'string' } }, allowPositionals: true });
const sql = sqlClient(process.env.DATABASE_URL!, { max: 10, onnotice: () => {} });

await sql`CREATE TABLE IF NOT EXISTS floor_volumes (
  id uuid PRIMARY KEY, project text NOT NULL, state text NOT NULL, size int NOT NULL, version int NOT NULL)`;
await sql`CREATE TABLE IF NOT EXISTS state_transitions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, resource_type text NOT NULL, resource_id uuid NOT NULL,
  from_state text, event text NOT NULL, to_state text NOT NULL, version int NOT NULL, at timestamptz NOT NULL DEFAULT now())`;
await sql`CREATE INDEX IF NOT EXISTS floor_history ON state_transitions (resource_type, resource_id, version)`;

/** One transition: the row moves from `from` to `to` and its history is written, or nothing happens. */
async function move(id: string, event: string, from: string, to: string, size?: number): Promise<boolean> {
  const rows = await sql`
    WITH moved AS (
      UPDATE floor_volumes SET state = ${to}, size = COALESCE(${size ?? null}::int, size), version = version + 1
      WHERE id = ${id} AND state = ${from} RETURNING id, version)
    INSERT INTO state_transitions (resource_type, resource_id, from_state, event, to_state, version)
    SELECT 'volume', id, ${from}, ${event}, ${to}, version FROM moved RETURNING version`;
  return rows.length === 1;
}

/** The backend's step, run once the request's statement has committed. */
function step(id: string, event: string, from: string, to: string, size?: number) {
  setImmediate(() => void move(id, event, from, to, size).catch((err: Error) => console.error(err.message)));
}

function reply(res: ServerResponse, status: number, body?: unknown) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function handle(req: IncomingMessage, res: ServerResponse, body: string) {
  const project = String(req.headers['x-auth-token'] ?? '').split(':')[1] ?? '';
  const path = (req.url ?? '').replace(/^\/v3/, '');
  const one = /^\/volumes\/([0-9a-f-]{36})(\/action)?$/.exec(path);
  if (req.method === 'POST' && path === '/volumes') {
    const size = Number((JSON.parse(body) as { volume: { size: number } }).volume.size);
    const id = randomUUID();
    await sql`
      WITH created AS (INSERT INTO floor_volumes VALUES (${id}, ${project}, 'creating', ${size}, 1) RETURNING id)
      INSERT INTO state_transitions (resource_type, resource_id, from_state, event, to_state, version)
      SELECT 'volume', id, NULL, 'CREATE', 'creating', 1 FROM created`;
    step(id, 'CREATED', 'creating', 'available');
    return reply(res, 202, { volume: { id, status: 'creating', size } });
  }
  if (!one) return reply(res, 404, { itemNotFound: { code: 404, message: 'no such path' } });
  const id = one[1]!;
  if (req.method === 'GET' && !one[2]) {
    const [row] = await sql<{ state: string; size: number }[]>`
      SELECT state, size FROM floor_volumes WHERE id = ${id} AND project = ${project} AND state <> 'deleted'`;
    if (!row) return reply(res, 404, { itemNotFound: { code: 404, message: `volume ${id} not found` } });
    return reply(res, 200, { volume: { id, status: row.state, size: row.size } });
  }
  if (req.method === 'POST' && one[2]) {
    const newSize = Number((JSON.parse(body) as { 'os-extend': { new_size: number } })['os-extend'].new_size);
    if (!(await move(id, 'EXTEND', 'available', 'extending')))
      return reply(res, 400, { badRequest: { code: 400, message: 'not available' } });
    step(id, 'EXTENDED', 'extending', 'available', newSize);
    return reply(res, 202);
  }
  if (req.method === 'DELETE' && !one[2]) {
    if (!(await move(id, 'DELETE', 'available', 'deleting')))
      return reply(res, 400, { badRequest: { code: 400, message: 'not available' } });
    step(id, 'DELETED', 'deleting', 'deleted');
    return reply(res, 202);
  }
  return reply(res, 405, { badRequest: { code: 405, message: 'no such method' } });
}

const server = createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => (body += c));
  req.on('end', () => {
    handle(req, res, body).catch((err: Error) => reply(res, 500, { computeFault: { code: 500, message: err.message } }));
  });
});
server.listen(Number(values.port ?? 0), '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  console.error(`volstate: serving the Cinder v3 API at http://127.0.0.1:${port}/v3 (the floor)`);
  console.error(`volstate: worker floor running (the floor)`);
});
process.on('SIGTERM', () => {
  server.close();
  void sql.end().then(() => process.exit(0));
});
