// The six guards scripts/patch-postgres.mjs adds to postgres.js 3.4.9 (why
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

/** [anchor in postgres.js, what replaces it] */
export const GUARDS = [
  [ANCHOR, GUARD],
  [CLOSE_ANCHOR, CLOSE_GUARD],
  [TYPES_ANCHOR, TYPES_GUARD],
  [RESET_ANCHOR, RESET_GUARD],
  [READ_WRITE_ANCHOR, READ_WRITE_GUARD],
  [STALE_ANCHOR, STALE_GUARD],
];
