#!/usr/bin/env node
// postinstall: two guards for postgres.js 3.4.9 on a connection that dies
// (PostgreSQL restarted, a backend terminated), both found by volstate's
// restart-under-load test:
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
//
// Idempotent; fails loudly if postgres.js changed shape (then look at
// whether the guards are still needed).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'postgres');
const MARK = '/* volstate: guard closed socket (porsager/postgres#1208) */';
const ANCHOR = '  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)';
const GUARD = `  function nextWrite(fn) {
    ${MARK}
    if (!socket) {
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`;

const CLOSE_ANCHOR = "    !hadError && (query || sent.length) && error(Errors.connection('CONNECTION_CLOSED', options, socket))";
const CLOSE_GUARD = `    ${MARK}\n    ;(query || sent.length) && error(Errors.connection('CONNECTION_CLOSED', options, socket))`;

if (!existsSync(root)) process.exit(0); // not installed (yet): nothing to patch
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
for (const build of ['src', 'cjs/src', 'cf/src']) {
  const file = join(root, build, 'connection.js');
  if (!existsSync(file)) continue;
  const text = readFileSync(file, 'utf8');
  if (text.includes(MARK)) continue;
  if (!text.includes(ANCHOR) || !text.includes(CLOSE_ANCHOR)) {
    console.error(`patch-postgres: postgres ${version} ${build}/connection.js is not as expected; check whether porsager/postgres#1208 is fixed and update scripts/patch-postgres.mjs`);
    process.exit(1);
  }
  writeFileSync(file, text.replace(ANCHOR, GUARD).replace(CLOSE_ANCHOR, CLOSE_GUARD));
  console.error(`patch-postgres: guarded postgres ${version} ${build}/connection.js`);
}
