/**
 * User messages, independent of HTTP (db/messages.ts holds the
 * statements): why an asynchronous operation failed, written by the
 * workers in the transaction that records the failure.
 */
import type { Sql } from '../../db/connect.ts';
import { deleteMessage, findMessage, listMessages } from '../../db/messages.ts';
import type { MessageRow } from '../../db/schema.ts';
import { ApiError } from '../errors.ts';
import { scopeOf, type Caller } from './caller.ts';

export type { MessageRow };

export class MessageService {
  constructor(private readonly sql: Sql) {}

  /** The caller's project's messages (an admin's too: any project's only by id, as Cinder's policy has it). */
  list(caller: Caller, limit: number): Promise<MessageRow[]> {
    return listMessages(this.sql, caller.projectId, limit);
  }

  /** By id (a UUID, lower case) among those the caller may see, else MessageNotFound. */
  async get(caller: Caller, id: string): Promise<MessageRow> {
    const m = await findMessage(this.sql, id, scopeOf(caller));
    if (!m) throw new ApiError('MessageNotFound', { id });
    return m;
  }

  async delete(caller: Caller, id: string): Promise<void> {
    if (!(await deleteMessage(this.sql, id, scopeOf(caller)))) throw new ApiError('MessageNotFound', { id });
  }
}
