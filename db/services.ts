/**
 * Cinder's services view of volstate's workers. Every node that runs a
 * worker is, in Cinder's words, a `cinder-scheduler` on its host, a
 * `cinder-volume` on `host@backend` and a `cinder-backup` on its host (a
 * volstate worker schedules, runs backend steps and backup steps alike). Nodes that share a host name (VOLSTATE_HOST) are
 * one service, as Cinder's services are keyed by host and binary. A service
 * is up while one of its workers heartbeats; `updated_at` is the latest
 * heartbeat. Disabling the scheduler or the volume service of a host makes
 * its workers claim no new work (in-flight steps finish; recovery goes on),
 * which is how an operator drains a node; disabling its backup service,
 * no new backup-lane work (backups, restores: machines' meta.backupLane).
 */
import type { Executor as Exec } from './connect.ts';

export const BINARIES = ['cinder-backup', 'cinder-scheduler', 'cinder-volume'] as const;
export type Binary = (typeof BINARIES)[number];

export interface ServiceRow {
  /** the worker host, without the backend */
  host: string;
  binary: Binary;
  up: boolean;
  heartbeat_at: Date | null;
  disabled: boolean;
  disabled_reason: string | null;
}

/** Every service: the hosts of registered workers, and hosts an operator disabled, for both binaries. */
export async function listServices(sql: Exec, timeoutMs: number): Promise<ServiceRow[]> {
  return sql<ServiceRow[]>`
    WITH hosts AS (
      SELECT host, max(heartbeat_at) AS heartbeat_at,
             bool_or(heartbeat_at > now() - make_interval(secs => ${timeoutMs / 1000})) AS up
      FROM workers GROUP BY host
      UNION ALL
      SELECT DISTINCT s.host, NULL::timestamptz, false FROM services s WHERE NOT EXISTS (SELECT 1 FROM workers w WHERE w.host = s.host)
    )
    SELECT h.host, b."binary", h.up, COALESCE(h.heartbeat_at, s.updated_at) AS heartbeat_at,
           COALESCE(s.disabled, false) AS disabled, s.disabled_reason
    FROM hosts h
    CROSS JOIN unnest(${[...BINARIES]}::text[]) AS b("binary")
    LEFT JOIN services s ON s.host = h.host AND s."binary" = b."binary"
    ORDER BY h.host, b."binary"`;
}

/** Enable or disable a service; false when no worker ever ran on that host (Cinder: 404). */
export async function setServiceDisabled(
  sql: Exec,
  host: string,
  binary: Binary,
  disabled: boolean,
  reason: string | null,
): Promise<boolean> {
  const rows = await sql`
    INSERT INTO services (host, "binary", disabled, disabled_reason)
    SELECT ${host}, ${binary}, ${disabled}, ${reason}
    WHERE EXISTS (SELECT 1 FROM workers WHERE host = ${host}) OR EXISTS (SELECT 1 FROM services WHERE host = ${host})
    ON CONFLICT (host, "binary") DO UPDATE SET disabled = EXCLUDED.disabled, disabled_reason = EXCLUDED.disabled_reason, updated_at = now()
    RETURNING host`;
  return rows.length > 0;
}
