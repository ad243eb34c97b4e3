/**
 * The services and hosts Cinder's admin APIs show, independent of HTTP
 * (db/services.ts, db/resources.ts hold the statements): the workers as
 * Cinder services, a host's usage per project, the GiB allocated per
 * backend.
 */
import type { Sql } from '../../db/connect.ts';
import { snapshotTable, volumeGbByBackend, volumeTable } from '../../db/resources.ts';
import { BINARIES, listServices, setServiceDisabled, type Binary, type ServiceRow } from '../../db/services.ts';

export { BINARIES, type Binary, type ServiceRow };

export interface ProjectUsage {
  project_id: string;
  count: number;
  gb: number;
}

export class HostService {
  constructor(
    private readonly sql: Sql,
    /** a worker silent this long is down */
    private readonly heartbeatTimeoutMs: number,
  ) {}

  /** Every service (a scheduler and a volume service per worker host), up or down by its heartbeat. */
  services(): Promise<ServiceRow[]> {
    return listServices(this.sql, this.heartbeatTimeoutMs);
  }

  /** Disable (with a reason, or none) or enable a host's service; false if the host has no such service. */
  setDisabled(host: string, binary: Binary, disabled: boolean, reason: string | null): Promise<boolean> {
    return setServiceDisabled(this.sql, host, binary, disabled, reason);
  }

  /** Live volumes and snapshots per project: count and GiB. */
  async usageByProject(): Promise<{ volumes: ProjectUsage[]; snapshots: ProjectUsage[] }> {
    const [volumes, snapshots] = await Promise.all([volumeTable.usageByProject(this.sql), snapshotTable.usageByProject(this.sql)]);
    return { volumes, snapshots };
  }

  /** GiB of live volumes by backend name (`defaultBackend` for volumes that name none). */
  async allocatedGb(defaultBackend: string): Promise<Map<string, number>> {
    const by = new Map<string, number>();
    for (const r of await volumeGbByBackend(this.sql)) {
      const name = r.backend ?? defaultBackend;
      by.set(name, (by.get(name) ?? 0) + r.gb);
    }
    return by;
  }
}
