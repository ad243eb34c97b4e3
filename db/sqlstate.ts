/**
 * PostgreSQL error codes we act on, by name. Compare with `sqlState(err)`,
 * never inline strings. Drizzle wraps driver errors, so the code may sit on
 * `err.cause`.
 */
export const SQLSTATE = {
  UNIQUE_VIOLATION: '23505',
  FOREIGN_KEY_VIOLATION: '23503',
  CHECK_VIOLATION: '23514',
  NOT_NULL_VIOLATION: '23502',
  INVALID_TEXT_REPRESENTATION: '22P02',
  NUMERIC_VALUE_OUT_OF_RANGE: '22003',
  SERIALIZATION_FAILURE: '40001',
  DEADLOCK_DETECTED: '40P01',
  LOCK_NOT_AVAILABLE: '55P03',
  QUERY_CANCELED: '57014',
  ADMIN_SHUTDOWN: '57P01',
  CRASH_SHUTDOWN: '57P02',
  CANNOT_CONNECT_NOW: '57P03',
  DUPLICATE_DATABASE: '42P04',
  DUPLICATE_TABLE: '42P07',
  INVALID_CATALOG_NAME: '3D000',
} as const;
export type SqlState = (typeof SQLSTATE)[keyof typeof SQLSTATE];

/** The SQLSTATE of a driver error, looking through drizzle's wrapper. */
export function sqlState(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** Errors that mean "the connection or server went away": safe to retry a statement that did not commit. */
export function isConnectionError(err: unknown): boolean {
  const state = sqlState(err);
  if (state === SQLSTATE.ADMIN_SHUTDOWN || state === SQLSTATE.CRASH_SHUTDOWN || state === SQLSTATE.CANNOT_CONNECT_NOW) {
    return true;
  }
  // The server could not be reached at all: its Unix socket is gone (it is
  // stopped or restarting: a 500 until 2026-12-05), or no route to its host.
  if (neverConnected(err)) return true;
  const code = (err as { code?: unknown })?.code;
  return (
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'CONNECTION_CLOSED' ||
    code === 'CONNECTION_ENDED' ||
    code === 'CONNECTION_DESTROYED' ||
    code === 'CONNECT_TIMEOUT'
  );
}

/**
 * A connection error from before any session existed: the connect itself
 * failed (no socket, refused, no route). Nothing of the statement was sent,
 * so nothing of it can have been changed.
 */
export function neverConnected(err: unknown): boolean {
  const { code, syscall } = (err ?? {}) as { code?: unknown; syscall?: unknown };
  return (
    syscall === 'connect' &&
    typeof code === 'string' &&
    ['ENOENT', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'].includes(code)
  );
}

/**
 * A connection error that says the server's end of the session is over:
 * the server said it is terminating the session, or it closed the socket
 * (a backend closes it only as it exits; a killed one's kernel closes it).
 * Its transaction cannot commit any more. Not so for a connect or read
 * timeout, where the session may live on across a broken network.
 */
export function sessionEnded(err: unknown): boolean {
  const state = sqlState(err);
  if (state === SQLSTATE.ADMIN_SHUTDOWN || state === SQLSTATE.CRASH_SHUTDOWN) return true;
  const code = (err as { code?: unknown })?.code;
  return code === 'CONNECTION_CLOSED' || code === 'ECONNRESET' || code === 'EPIPE';
}
