// The guards scripts/patch-postgres.mjs adds to postgres.js 3.4.9 (why
// each is needed is told there), as data: the patch applies them at
// install, and the server checks at start that each is in place
// (db/postgres-guards.ts), refusing to run without them.
export const MARK = '/* volstate: guard closed socket (porsager/postgres#1208) */';
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

const RESET_ANCHOR = '  async function closed(hadError) {\n';
const RESET_GUARD = `  async function closed(hadError) {\n    ${MARK}\n    rows = 0\n    result = new Result()\n`;

const TYPES_ANCHOR = '        return fetchArrayTypes()\n';
const TYPES_GUARD = `        ${MARK}\n        return fetchArrayTypes().catch(() => {})\n`;

const READ_WRITE_ANCHOR = "      (x === 'read-write' && xs.default_transaction_read_only === 'on') ||\n";
const READ_WRITE_GUARD =
  "      /* volstate: read-write is libpq's: no hot standby either */\n" +
  "      (x === 'read-write' && (xs.default_transaction_read_only === 'on' || xs.in_hot_standby === 'on')) ||\n";

const STALE_ANCHOR = '  async function connect() {\n    terminated = false\n    backendParameters = {}\n';
const STALE_GUARD =
  '  async function connect() {\n    terminated = false\n    backendParameters = {}\n' +
  '    /* volstate: a new connection carries no query of the last one */\n    query = errorResponse = null\n';

const FORGET = '    /* volstate: a cancelled write is forgotten (LanternOps/breeze#3225) */\n    chunk = nextWriteTimer = null\n';
const CLOSED_WRITE_ANCHOR = "    clearImmediate(nextWriteTimer)\n    socket.removeListener('data', data)\n";
const CLOSED_WRITE_GUARD = `    clearImmediate(nextWriteTimer)\n${FORGET}    socket.removeListener('data', data)\n`;
const TERMINATE_WRITE_ANCHOR = '    clearImmediate(nextWriteTimer)\n    if (socket) {\n';
const TERMINATE_WRITE_GUARD = `    clearImmediate(nextWriteTimer)\n${FORGET}    if (socket) {\n`;

// 9, 10. The pool's queues (queue.js): `shift` leaves a hole at the head
//    and empties the array only when the last item is shifted; `remove`
//    searches the whole array, holes included. A busy connection is taken
//    with `shift` and put back with `move`, whose `remove` misses it (it
//    was shifted out) and so scans everything. Under load that never lets
//    the queue drain, the array grows by one per query, without bound, and
//    every query scans it: measured in a 20 s GET load on a node, 2,049
//    items scanned per query on average and an array of 15,950, 8 % of the
//    node's CPU, growing with the time since the pool was last idle.
//    Guarded: `remove` searches the live part only, and `shift` drops the
//    shifted-out head once it is most of the array.
const REMOVE_ANCHOR = `    remove: (x) => {
      const index = xs.indexOf(x)
      return index === -1
        ? null
        : (xs.splice(index, 1), x)
    },`;
const REMOVE_GUARD = `    remove: (x) => {
      /* volstate: only the live part (from index) is searched */
      const at = xs.indexOf(x, index)
      return at === -1
        ? null
        : (xs.splice(at, 1), x)
    },`;
const SHIFT_ANCHOR = `      } else {
        xs[index - 1] = undefined
      }`;
const SHIFT_GUARD = `      } else {
        xs[index - 1] = undefined
        /* volstate: the shifted-out head goes once it is most of the array */
        if (index >= 64 && index * 2 >= xs.length) {
          xs = xs.slice(index)
          index = 0
        }
      }`;

/** [file of postgres.js's src/, anchor in it, what replaces it] */
export const GUARDS = [
  ['connection.js', ANCHOR, GUARD],
  ['connection.js', CLOSE_ANCHOR, CLOSE_GUARD],
  ['connection.js', TYPES_ANCHOR, TYPES_GUARD],
  ['connection.js', RESET_ANCHOR, RESET_GUARD],
  ['connection.js', READ_WRITE_ANCHOR, READ_WRITE_GUARD],
  ['connection.js', STALE_ANCHOR, STALE_GUARD],
  ['connection.js', CLOSED_WRITE_ANCHOR, CLOSED_WRITE_GUARD],
  ['connection.js', TERMINATE_WRITE_ANCHOR, TERMINATE_WRITE_GUARD],
  ['queue.js', REMOVE_ANCHOR, REMOVE_GUARD],
  ['queue.js', SHIFT_ANCHOR, SHIFT_GUARD],
];
