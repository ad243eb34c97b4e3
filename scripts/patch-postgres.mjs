#!/usr/bin/env node
// postinstall: ten guards for postgres.js 3.4.9, six on a connection that
// dies (PostgreSQL restarted, a backend terminated), found by volstate's
// restart-under-load and lost-connection tests, two on finding the
// primary among several hosts, found by the failover harness, and two on
// the pool's queues, whose cost grew with time under load (9 and 10,
// told in scripts/postgres-guards.mjs):
//
// 1. A small write is deferred with setImmediate; when the connection
//    closes first, the deferred write dereferences a null socket and throws
//    from the immediate: an uncaught exception that kills the process
//    (porsager/postgres#1154, #1208; a fix is proposed in #1209). Guarded:
//    the pending queries are settled with a catchable CONNECTION_CLOSED.
// 2. When the socket errors (ECONNRESET) while idle, then a query is sent,
//    then 'close' comes with hadError, that query is neither rejected nor
//    re-sent: it waits forever. Guarded: 'close' rejects whatever is in
//    flight, whether or not an error came first (settling twice is a no-op).
// 3. A new connection first fetches the array types; when it dies during
//    that query, the query's rejection is awaited by nobody: an unhandled
//    rejection (a crash under Node's default). Guarded: caught; the queries
//    waiting for the connection are settled by the close as usual, and the
//    next connection fetches the types again.
// 4. A connection that closes in the middle of a result (rows received, no
//    CommandComplete) keeps its row counter: the first query after the
//    reconnect stores its rows after that many holes, so `const [row] =`
//    reads undefined (an existing resource answered 404). Guarded: the row
//    counter and the result are reset when the socket closes.
// 5. `target_session_attrs=read-write` accepts a hot standby: postgres.js
//    asks only whether `default_transaction_read_only` is on, which it is
//    not on a standby (PostgreSQL 14+ reports `in_hot_standby` instead).
//    libpq's read-write is "not in hot standby, and not read-only by
//    default". With Patroni's multi-host URL the pool then sat on the
//    standby, every write failing with 25006, until the promotion.
//    Guarded: read-write also passes over a server in hot standby.
// 6. A connection that closed in the middle of a query keeps that query as
//    its current one (it is rejected, not forgotten). When the connection
//    is made again (to the next host), an error the new server sends
//    before it is ready is taken for that stale query's answer, and its
//    handling also rejects the new connection's first query, which is the
//    one that carries the target_session_attrs check: the check is
//    skipped and the connection opens on whatever server it reached. Seen
//    in the failover harness: every node's pool opened connections on the
//    standby, and writes failed with 25006 until the promotion.
//    Guarded: a new connection starts with no current query or error.
// 7, 8. A connection that closes (or is terminated) while a small write
//    waits for its setImmediate cancels the immediate but keeps
//    `nextWriteTimer` set and the bytes queued: `write()` schedules a
//    flush only when no timer is set, so nothing is ever written on that
//    connection again. Its next connect never sends the startup message
//    and fails with CONNECT_TIMEOUT after connect_timeout (10 s), and the
//    server waits for that message as long, which held an embedded
//    PostgreSQL's fast shutdown for 10 s in the harness's restarts
//    (LanternOps/breeze#3225; porsager/postgres#1209 proposes the same).
//    Guarded: the cancelled write is forgotten, in closed() and terminate().
//
// Idempotent; fails loudly if postgres.js changed shape (then look at
// whether the guards are still needed).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GUARDS } from './postgres-guards.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'postgres');

if (!existsSync(root)) process.exit(0); // not installed (yet): nothing to patch
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const files = [...new Set(GUARDS.map(([file]) => file))];
for (const build of ['src', 'cjs/src', 'cf/src']) {
  for (const name of files) {
    const file = join(root, build, name);
    if (!existsSync(file)) continue;
    let text = readFileSync(file, 'utf8');
    let applied = 0;
    for (const [, anchor, guard] of GUARDS.filter(([f]) => f === name)) {
      if (text.includes(guard)) continue;
      if (!text.includes(anchor)) {
        console.error(
          `patch-postgres: postgres ${version} ${build}/${name} is not as expected; check whether the guards of scripts/postgres-guards.mjs are still needed and update them`,
        );
        process.exit(1);
      }
      text = text.replace(anchor, guard);
      applied++;
    }
    if (applied === 0) continue;
    writeFileSync(file, text);
    console.error(`patch-postgres: ${applied} guard(s) added to postgres ${version} ${build}/${name}`);
  }
}
