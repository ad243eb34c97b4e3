/**
 * Input parsing as Cinder does it, lenient where real clients are (sizes
 * as digit strings, booleans as "True"), strict everywhere else, and
 * always failing with a 400 whose message names the field and the value.
 */
import { ApiError, echo } from '../errors.ts';
import { unstorable } from './hostile.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** The value as a message repeats it: JSON for what is not a string, bounded (src/errors.ts echo). */
export const show = (value: unknown): string => echo(typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value)));

export function invalid(field: string, value: unknown, reason: string): ApiError {
  return new ApiError('InvalidField', { field, value: show(value), reason });
}

const TRUE = new Set(['1', 't', 'true', 'on', 'y', 'yes']);
const FALSE = new Set(['0', 'f', 'false', 'off', 'n', 'no']);

/** oslo's strict bool_from_string: true/false, or one of its strings in any case. */
export function parseBool(value: unknown, field: string): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase();
    if (TRUE.has(v)) return true;
    if (FALSE.has(v)) return false;
  }
  throw invalid(field, value, `'${show(value)}' is not a boolean: use true or false.`);
}

/** A size in GiB: an integer ≥ 1, or a string of digits. */
export function parseSize(value: unknown, field = 'size'): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw invalid(field, value, `${value} is not an integer number of GiB.`);
    if (value < 1) throw invalid(field, value, `${value} is less than the minimum of 1.`);
    if (value > 2 ** 31 - 1) throw invalid(field, value, `${value} is greater than the maximum of ${2 ** 31 - 1}.`);
    return value;
  }
  if (typeof value === 'string') {
    if (!/^[0-9]+$/.test(value)) throw invalid(field, value, `'${show(value)}' does not match '^[0-9]+$'.`);
    return parseSize(Number(value), field);
  }
  throw invalid(field, value, `${show(value)} is not of type 'integer', 'string'.`);
}

/** name, description: a string of at most 255 characters, or null. */
export function parseText(value: unknown, field: string, max = 255): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string') throw invalid(field, value, `${show(value)} is not of type 'string', 'null'.`);
  if (value.length > max) throw invalid(field, value, `it is longer than ${max} characters.`);
  return value;
}

/** Metadata: an object of string keys (1–255 characters) to string values (≤ 255). */
export function parseMetadata(value: unknown, field = 'metadata'): Record<string, string> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(field, value, `${show(value)} is not of type 'object'.`);
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(value)) {
    if (k.length < 1 || k.length > 255) throw invalid(field, value, `key '${show(k)}' must be 1 to 255 characters long.`);
    if (typeof v !== 'string') throw invalid(field, value, `the value of '${show(k)}' is not a string.`);
    if (v.length > 255) throw invalid(field, value, `the value of '${show(k)}' is longer than 255 characters.`);
    out.push([k, v]);
  }
  // fromEntries defines own properties: a key named __proto__ is kept as data, not taken as the prototype.
  return Object.fromEntries(out);
}

/** The wrapped object of a request body: `{"volume": {...}}` → `{...}`. */
export function unwrap(body: unknown, key: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError('MalformedBody', { reason: `expected a JSON object with a "${key}" object` });
  }
  const inner = (body as Record<string, unknown>)[key];
  if (inner === undefined) throw new ApiError('MalformedBody', { reason: `missing required element '${show(key)}' in request body` });
  if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) {
    throw invalid(key, inner, `${show(inner)} is not of type 'object'.`);
  }
  return inner as Record<string, unknown>;
}

/** ≥ 3.53 (strict schemas): no keys but the known ones. */
export function rejectUnknown(obj: Record<string, unknown>, field: string, known: readonly string[]): void {
  const extra = Object.keys(obj).filter((k) => !known.includes(k));
  if (extra.length) {
    throw invalid(
      field,
      obj,
      `Additional properties are not allowed (${extra.map((k) => `'${show(k)}'`).join(', ')} ${extra.length > 1 ? 'were' : 'was'} unexpected).`,
    );
  }
}

export interface SortKey<K extends string> {
  key: K;
  dir: 'asc' | 'desc';
}

/**
 * Cinder's sort parameters: `sort=key[:dir][,key[:dir]...]`, or the older
 * `sort_key` / `sort_dir`. Default: newest first.
 */
export function parseSort<K extends string>(query: Record<string, unknown>, allowed: readonly K[]): SortKey<K>[] {
  const dirOf = (d: string | undefined, fallback: 'asc' | 'desc') => {
    if (d === undefined || d === '') return fallback;
    const v = d.toLowerCase();
    if (v !== 'asc' && v !== 'desc')
      throw new ApiError('InvalidInput', { reason: `Unknown sort direction '${show(d)}', must be 'desc' or 'asc'.` });
    return v;
  };
  const keyOf = (k: string) => {
    if (!(allowed as readonly string[]).includes(k)) {
      throw new ApiError('InvalidInput', { reason: `Invalid sort key '${show(k)}': sort by one of ${allowed.join(', ')}.` });
    }
    return k as K;
  };
  if (typeof query.sort === 'string' && query.sort !== '') {
    if (query.sort_key !== undefined || query.sort_dir !== undefined) {
      throw new ApiError('InvalidInput', { reason: 'The sort parameter cannot be used with sort_key or sort_dir.' });
    }
    return query.sort.split(',').map((part) => {
      const [k, d] = part.trim().split(':');
      return { key: keyOf(k!.trim()), dir: dirOf(d?.trim(), 'desc') };
    });
  }
  if (typeof query.sort_key === 'string' && query.sort_key !== '') {
    return [{ key: keyOf(query.sort_key), dir: dirOf(typeof query.sort_dir === 'string' ? query.sort_dir : undefined, 'desc') }];
  }
  return [{ key: keyOf('created_at'), dir: dirOf(typeof query.sort_dir === 'string' ? query.sort_dir : undefined, 'desc') }];
}

export const MAX_LIMIT = 1000;

export function parseLimit(value: unknown): number {
  if (value === undefined || value === '') return MAX_LIMIT;
  const n = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0)
    throw new ApiError('InvalidInput', { reason: `limit must be a non-negative integer, not '${show(value)}'.` });
  return Math.min(n, MAX_LIMIT);
}

/** Largest offset: a page that far on is empty in any case, and PostgreSQL's OFFSET is a bigint. */
export const MAX_OFFSET = 2 ** 31 - 1;

export function parseOffset(value: unknown): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n)) throw new ApiError('InvalidInput', { reason: `offset must be a non-negative integer, not '${show(value)}'.` });
  if (n > MAX_OFFSET) throw new ApiError('InvalidInput', { reason: `offset ${show(value)} is larger than the maximum of ${MAX_OFFSET}.` });
  return n;
}

/** A page marker: the id of a resource of the list, as a UUID (braces and other spellings PostgreSQL would take are refused). */
export function parseMarker(value: unknown): string | undefined {
  if (value === undefined || value === '') return undefined;
  // Not a UUID: it names nothing, as an unknown id does (404, as Cinder).
  if (!isUuid(value)) throw new ApiError('MarkerNotFound', { marker: show(value) });
  return value.toLowerCase();
}

/** `metadata` filter: JSON, or the Python dict literal cinderclient sends (`{'k': 'v'}`). */
export function parseMetadataFilter(value: unknown): Record<string, string> | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new ApiError('InvalidInput', { reason: 'metadata filter must be a dict such as {"key": "value"}.' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    try {
      parsed = JSON.parse(value.replaceAll("'", '"'));
    } catch {
      throw new ApiError('InvalidInput', { reason: `metadata filter '${show(value)}' is not a dict such as {"key": "value"}.` });
    }
  }
  const metadata = parseMetadata(parsed, 'metadata');
  for (const [k, v] of Object.entries(metadata)) {
    const why = unstorable(k) ?? unstorable(v);
    if (why) throw new ApiError('InvalidInput', { reason: `the metadata filter is refused at key '${show(k)}': ${why}.` });
  }
  return metadata;
}

/** If-Match: a version number, optionally quoted, as our ETag gives it. */
export function parseIfMatch(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const raw = (Array.isArray(value) ? value[0]! : value)
    .trim()
    .replace(/^W\//, '')
    .replace(/^"(.*)"$/, '$1');
  // A version is a PostgreSQL integer: anything larger names no version a resource can have.
  if (!/^[0-9]+$/.test(raw) || Number(raw) > 2 ** 31 - 1) {
    throw new ApiError('InvalidInput', {
      reason: `If-Match must be a version as the ETag header gives it, e.g. "3" (at most ${2 ** 31 - 1}); got ${String(value)}.`,
    });
  }
  return Number(raw);
}

/**
 * The name / description / metadata of a PUT body (with the v1 names
 * display_name, display_description): only the keys present are changed.
 */
export function describedPatch(body: Record<string, unknown>): {
  name?: string | null;
  description?: string | null;
  metadata?: Record<string, string>;
} {
  const has = (k: string) => k in body;
  return {
    name: has('name') || has('display_name') ? parseText(body.name ?? body.display_name, 'name') : undefined,
    description:
      has('description') || has('display_description') ? parseText(body.description ?? body.display_description, 'description') : undefined,
    metadata: has('metadata') ? parseMetadata(body.metadata) : undefined,
  };
}

/** An id given in a body: a string (whether it names anything is the lookup's to say). */
export function textId(value: unknown, field: string): string {
  if (typeof value !== 'string') throw invalid(field, value, 'it must be an id.');
  return value;
}
