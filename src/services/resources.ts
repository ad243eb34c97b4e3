/**
 * What every resource service does the same way: scoped reads, lists,
 * data updates, sending one event through the enforcer (a refusal becomes
 * the API error the client sees), and the history.
 */
import type { Sql } from '../../db/connect.ts';
import { historyOf, type TransitionRecord } from '../../db/history.ts';
import { MarkerNotFound } from '../../db/listing.ts';
import type { ListQuery, ResourceTable, WithState } from '../../db/resources.ts';
import type { EventMap, ResourceType } from '../../machines/index.ts';
import type { Applied, Enforcer } from '../enforcer.ts';
import { ApiError, type ErrorCode } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';

export type { ListQuery, TransitionRecord };

export class ResourceService<T extends ResourceType, Row extends { id: string }, New extends object> {
  constructor(
    protected readonly sql: Sql,
    protected readonly enforcer: Enforcer,
    protected readonly type: T,
    protected readonly table: ResourceTable<Row, New>,
    private readonly notFound: ErrorCode,
  ) {}

  /** The keys a list may be sorted by. */
  get sortKeys(): readonly string[] {
    return this.table.sortKeys;
  }

  async get(caller: Caller, id: string): Promise<WithState<Row>> {
    const found = await this.table.find(this.sql, id, scopeOf(caller));
    if (!found) throw new ApiError(this.notFound, { id });
    return found;
  }

  async list(query: ListQuery) {
    try {
      return await this.table.list(this.sql, query);
    } catch (err) {
      if (err instanceof MarkerNotFound) throw new ApiError('MarkerNotFound', { marker: err.marker });
      throw err;
    }
  }

  async update(caller: Caller, id: string, patch: Partial<Row>): Promise<WithState<Row>> {
    const updated = await this.table.update(this.sql, id, patch, scopeOf(caller));
    if (!updated) throw new ApiError(this.notFound, { id });
    return updated;
  }

  /**
   * Send one event to a resource the caller may see. Admins act by id on
   * any project (as in Cinder), so for them the CAS itself finds the row;
   * for others a scoped read first turns another project's resource into
   * 404.
   */
  async send(caller: Caller, id: string, event: EventMap[T], ifMatch?: number): Promise<Applied> {
    if (!caller.isAdmin) await this.get(caller, id);
    return this.sendSeen(caller, id, event, ifMatch);
  }

  /** `send` to a resource the caller has just been shown it may see (its scoped read done). */
  protected async sendSeen(caller: Caller, id: string, event: EventMap[T], ifMatch?: number): Promise<Applied> {
    const outcome = await this.enforcer.apply(this.sql, { type: this.type, id }, event, {
      actor: actorOf(caller),
      requestId: caller.requestId,
      version: ifMatch,
    });
    if (!outcome.ok) throw refusalError(outcome, ifMatch);
    return outcome;
  }

  /** Count, size and metadata values of the live resources of a project (undefined: all). */
  summary(projectId: string | undefined) {
    return this.table.summary(this.sql, projectId);
  }

  /** The metadata of a resource the caller may see. */
  async metadata(caller: Caller, id: string): Promise<Record<string, string>> {
    const metadata = await this.table.metadataOf(this.sql, id, scopeOf(caller));
    if (metadata === undefined) throw new ApiError(this.notFound, { id });
    return metadata;
  }

  /** Change its metadata (see ResourceTable.changeMetadata); a key to remove that it lacks is 404 MetadataNotFound. */
  async changeMetadata(
    caller: Caller,
    id: string,
    change: Parameters<ResourceTable<Row, New>['changeMetadata']>[2],
  ): Promise<Record<string, string>> {
    const out = await this.table.changeMetadata(this.sql, id, change, scopeOf(caller));
    if (out === undefined) throw new ApiError(this.notFound, { id });
    if (out === null) throw new ApiError('MetadataNotFound', { id, key: 'remove' in change ? change.remove : '' });
    return out;
  }

  /** Every transition of the resource, also once it is deleted (its history stays until purged). */
  async history(caller: Caller, id: string): Promise<TransitionRecord[]> {
    if (!(await this.table.existed(this.sql, id, scopeOf(caller)))) throw new ApiError(this.notFound, { id });
    return historyOf(this.sql, this.type, id);
  }
}
