/**
 * User messages (db/schema.ts, `messages`): written in the transaction of
 * the transition that failed, so a failure and its message are one change.
 */
import { randomUUID } from 'node:crypto';
import type { MessageRow } from './schema.ts';
import type { Executor as Exec } from './connect.ts';

/** How long a message is kept (Cinder's message_ttl default: 30 days). */
export const MESSAGE_TTL_SECONDS = 30 * 24 * 3600;

/** Cinder's events volstate raises: `<resource>_<action>_<detail>` and the words a person reads. */
export const MESSAGE_EVENTS = {
  /** schedule allocate volume: no valid backend */
  scheduleFailed: { id: 'VOLUME_VOLUME_001_002', action: 'schedule allocate volume' },
} as const;

/**
 * Record a message about a volume for its project, naming the request that
 * created it (the first row of its history).
 */
export async function recordVolumeMessage(tx: Exec, volumeId: string, event: keyof typeof MESSAGE_EVENTS, detail: string): Promise<void> {
  const e = MESSAGE_EVENTS[event];
  await tx`
    INSERT INTO messages (id, project_id, request_id, resource_type, resource_uuid, event_id, message_level, user_message, expires_at)
    SELECT ${randomUUID()}, v.project_id,
      COALESCE((SELECT h.request_id FROM state_transitions h WHERE h.resource_type = 'volume' AND h.resource_id = v.id AND h.version = 1), ''),
      'VOLUME', v.id, ${e.id}, 'ERROR', ${`${e.action}:${detail}`}, now() + make_interval(secs => ${MESSAGE_TTL_SECONDS})
    FROM volumes v WHERE v.id = ${volumeId}`;
}

/** A project's messages (all projects: undefined), oldest first; expired ones are gone. */
export async function listMessages(sql: Exec, projectId: string | undefined, limit: number): Promise<MessageRow[]> {
  return sql<MessageRow[]>`
    SELECT * FROM messages WHERE expires_at > now() ${projectId === undefined ? sql`` : sql`AND project_id = ${projectId}`}
    ORDER BY created_at, id LIMIT ${limit}`;
}

export async function findMessage(sql: Exec, id: string, projectId: string | undefined): Promise<MessageRow | undefined> {
  const [row] = await sql<MessageRow[]>`
    SELECT * FROM messages WHERE id = ${id} AND expires_at > now() ${projectId === undefined ? sql`` : sql`AND project_id = ${projectId}`}`;
  return row;
}

export async function deleteMessage(sql: Exec, id: string, projectId: string | undefined): Promise<boolean> {
  const rows =
    await sql`DELETE FROM messages WHERE id = ${id} ${projectId === undefined ? sql`` : sql`AND project_id = ${projectId}`} RETURNING id`;
  return rows.length > 0;
}
