/**
 * What no field of any request may hold, checked once for the whole
 * request before any route reads it: the JSON body, the query string and
 * the path parameters.
 *
 * - NUL (U+0000): PostgreSQL's text and jsonb cannot store it, so it would
 *   fail in the database as a 500 instead of as the client's error.
 * - A lone UTF-16 surrogate (`"\ud800"` in JSON): it has no UTF-8 form, so
 *   it cannot be stored or compared either.
 * - JSON nested deeper than MAX_DEPTH: no Cinder body comes near it, and
 *   walking a value thousands of levels deep overflows the stack of any
 *   recursive code that touches it (validation, logging, serialisation).
 *
 * Each is a 400 naming where it was found. The walk is iterative, so the
 * check itself cannot overflow.
 */
import { ApiError } from '../errors.ts';

/** Deepest nesting a body may have: a volume's `{"volume": {"metadata": {...}}}` is 3, a connector 4 or 5. */
export const MAX_DEPTH = 32;

// eslint-disable-next-line no-control-regex
const NUL = /\u0000/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why `s` cannot be stored, or undefined when it can. */
export function unstorable(s: string): string | undefined {
  if (NUL.test(s)) return 'it contains a NUL character (\\u0000), which cannot be stored';
  if (LONE_SURROGATE.test(s)) return 'it contains a lone UTF-16 surrogate, which is not a character';
  return undefined;
}

function where(path: readonly (string | number)[]): string {
  return path.length === 0
    ? 'the body'
    : path
        .map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`))
        .join('')
        .replace(/^\./, '');
}

/** A parsed JSON body: throws a 400 at the first thing in it that no field may hold. */
export function checkBody(body: unknown): void {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value: body, path: [] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (typeof value === 'string') {
      const why = unstorable(value);
      if (why) throw new ApiError('MalformedBody', { reason: `the value at ${where(path)} is refused: ${why}` });
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (path.length >= MAX_DEPTH)
      throw new ApiError('MalformedBody', { reason: `it is nested deeper than ${MAX_DEPTH} levels (at ${where(path.slice(0, 4))}…)` });
    const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    for (const [k, v] of entries) {
      if (typeof k === 'string') {
        const why = unstorable(k);
        if (why) throw new ApiError('MalformedBody', { reason: `a key in ${where(path)} is refused: ${why}` });
      }
      stack.push({ value: v, path: [...path, k] });
    }
  }
}

/** Query parameters and path parameters: every key and value storable. */
export function checkParameters(what: 'query parameter' | 'path', values: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(values)) {
    const vs: unknown[] = Array.isArray(v) ? v : [v];
    for (const s of [k, ...vs]) {
      if (typeof s !== 'string') continue;
      const why = unstorable(s);
      if (why)
        throw new ApiError('InvalidInput', {
          reason: what === 'path' ? `the ${k} in the request path is refused: ${why}.` : `the query parameter ${k} is refused: ${why}.`,
        });
    }
  }
}
