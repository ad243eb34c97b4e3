// The eight guards scripts/patch-postgres.mjs adds to postgres.js 3.4.9 (why
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

/** [anchor in postgres.js, what replaces it] */
export const GUARDS = [
  [ANCHOR, GUARD],
  [CLOSE_ANCHOR, CLOSE_GUARD],
  [TYPES_ANCHOR, TYPES_GUARD],
  [RESET_ANCHOR, RESET_GUARD],
  [READ_WRITE_ANCHOR, READ_WRITE_GUARD],
  [STALE_ANCHOR, STALE_GUARD],
  [CLOSED_WRITE_ANCHOR, CLOSED_WRITE_GUARD],
  [TERMINATE_WRITE_ANCHOR, TERMINATE_WRITE_GUARD],
];
