/**
 * GET /<collection> and /<collection>/detail, the same way for every
 * resource: Cinder's filters, sorting, limit/marker/offset pages with a
 * `<collection>_links` next link, and `with_count` (≥ 3.45).
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.ts';
import type { Caller } from '../services/caller.ts';
import type { ListQuery } from '../services/resources.ts';
import { viewContext, type ViewContext } from './context.ts';
import { parseBool, parseLimit, parseMarker, parseMetadataFilter, parseOffset, parseSort } from './parse.ts';
import { nextLink } from './views.ts';

export interface ListRoute<Rec extends { id: string }, Loaded = undefined> {
  collection: string;
  /** the collection takes `name` and `metadata` filters (resources a client names and describes) */
  named?: boolean;
  /** below this microversion the collection does not exist (404) */
  minVersion?: number;
  /** statuses a `status` filter may name (the machine's) */
  statuses: readonly string[];
  sortKeys: readonly string[];
  /** equality filters from the query; null: the filter matches nothing */
  filters?: (query: Record<string, string>) => Record<string, string> | null;
  list(query: ListQuery): Promise<{ rows: Rec[]; more: boolean; count?: number }>;
  /** what the detail views of a page need beyond the rows (one query for the page) */
  load?(rows: Rec[]): Promise<Loaded>;
  detail(record: Rec, ctx: ViewContext, loaded: Loaded): unknown;
  summary(record: Rec, ctx: ViewContext): unknown;
}

/**
 * `all_tenants`: every project's, for an admin; with it, `project_id` names
 * one project. Anybody else sees their own project, all_tenants or not: as
 * Cinder drops the filters a caller may not use, rather than refuse them
 * (the cinder CLI and OSC send all_tenants=1 for every name lookup).
 */
export function listScope(caller: Caller, query: Record<string, string>): string | undefined {
  const all = query.all_tenants !== undefined && parseBool(query.all_tenants, 'all_tenants');
  if (!all || !caller.isAdmin) return caller.projectId;
  return query.project_id || undefined;
}

/** The text of an inexact filter (3.34: `name~=abc`), under either spelling of the key. */
function inexact(q: Record<string, string>, key: string): string | undefined {
  return q[`${key}~`] ?? q[`display_${key}~`];
}

export function listHandler<Rec extends { id: string }, Loaded>(route: ListRoute<Rec, Loaded>, detail: boolean) {
  return async (req: FastifyRequest<{ Querystring: Record<string, string> }>) => {
    if (route.minVersion !== undefined && req.mv < route.minVersion) throw new ApiError('NotFound');
    const q = req.query;
    if (route.named === false && q.metadata !== undefined) {
      throw new ApiError('InvalidInput', { reason: `${route.collection} have no metadata to filter on: leave the metadata filter out.` });
    }
    // Every parameter is checked before any filter can decide the list is empty.
    const query = {
      projectId: listScope(req.caller, q),
      name: route.named === false ? undefined : (q.name ?? q.display_name),
      like: route.named === false ? undefined : { name: inexact(q, 'name'), description: inexact(q, 'description') },
      status: q.status,
      metadata: parseMetadataFilter(q.metadata),
      sort: parseSort(q, route.sortKeys),
      limit: parseLimit(q.limit),
      marker: parseMarker(q.marker),
      offset: parseOffset(q.offset),
      withCount: req.mv >= 45 && q.with_count !== undefined && parseBool(q.with_count, 'with_count'),
    };
    const filters = route.filters?.(q);
    // A status no resource can have matches nothing, as in Cinder (`status=null` is Tempest's probe).
    const nothing = filters === null || (q.status !== undefined && !route.statuses.includes(q.status));
    if (nothing) return { [route.collection]: [], ...(query.withCount ? { count: 0 } : {}) };
    const page = await route.list({ ...query, filters });
    const ctx = viewContext(req);
    const path = detail ? `${route.collection}/detail` : route.collection;
    const loaded = (detail && route.load ? await route.load(page.rows) : undefined) as Loaded;
    return {
      [route.collection]: page.rows.map((r) => (detail ? route.detail(r, ctx, loaded) : route.summary(r, ctx))),
      // A full page has a next link, as in Cinder (even when nothing follows:
      // a client learns that by asking); it names the page's last row, so an
      // empty page (limit=0) has none.
      ...((page.more || (q.limit !== undefined && page.rows.length === query.limit)) && page.rows.length > 0
        ? nextLink(ctx, route.collection, path, q, page.rows.at(-1)!.id)
        : {}),
      ...(page.count !== undefined ? { count: page.count } : {}),
    };
  };
}
