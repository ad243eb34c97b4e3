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
 * Cinder's backup messages (cinder/message/message_field.py: resource
 * VOLUME_BACKUP, actions 013–015, details 020, 025, 026), word for word:
 * the backup's `fail_reason` (or the volume's state) says what went wrong;
 * the message tells the project that it did, as Cinder's does.
 */
export const BACKUP_MESSAGE_EVENTS = {
  createFailed: { id: 'VOLUME_VOLUME_BACKUP_013_020', text: 'create backup:Backup driver failed to create backup.' },
  deleteFailed: { id: 'VOLUME_VOLUME_BACKUP_014_025', text: 'delete backup:Backup driver failed to delete backup.' },
  restoreFailed: { id: 'VOLUME_VOLUME_BACKUP_015_026', text: 'restore backup:Backup driver failed to restore backup.' },
} as const;

/**
 * Record a message about a backup for its project, in the transaction of
 * the failure. The request named: the one that started the operation (a
 * restore: the volume's RESTORE_BACKUP, or the create of a volume from the
 * backup; otherwise the backup's own first).
 */
export async function recordBackupMessage(
  tx: Exec,
  backupId: string,
  event: keyof typeof BACKUP_MESSAGE_EVENTS,
  restoredVolumeId?: string,
): Promise<void> {
  const e = BACKUP_MESSAGE_EVENTS[event];
  const request = restoredVolumeId
    ? tx`(SELECT h.request_id FROM state_transitions h WHERE h.resource_type = 'volume' AND h.resource_id = ${restoredVolumeId}
          AND h.event IN ('RESTORE_BACKUP', 'CREATE') ORDER BY h.version DESC LIMIT 1)`
    : // The latest creation: an imported backup may reuse the id of one deleted before, whose history stays.
      tx`(SELECT h.request_id FROM state_transitions h WHERE h.resource_type = 'backup' AND h.resource_id = b.id AND h.version = 1
          ORDER BY h.at DESC LIMIT 1)`;
  await tx`
    INSERT INTO messages (id, project_id, request_id, resource_type, resource_uuid, event_id, message_level, user_message, expires_at)
    SELECT ${randomUUID()}, b.project_id, COALESCE(${request}, ''), 'VOLUME_BACKUP', b.id, ${e.id}, 'ERROR', ${e.text},
      now() + make_interval(secs => ${MESSAGE_TTL_SECONDS})
    FROM backups b WHERE b.id = ${backupId}`;
}

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
