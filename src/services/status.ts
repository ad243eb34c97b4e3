/**
 * What operators and orchestrators read about the deployment itself,
 * independent of HTTP (db/health.ts, db/overview.ts hold the statements):
 * readiness facts for /readyz and the live overview behind /ui.
 */
import type { Sql } from '../../db/connect.ts';
import { appliedMigrations, heartbeatAge, shippedMigrations } from '../../db/health.ts';
import { overview, type Overview } from '../../db/overview.ts';

export type { Overview };

export class StatusService {
  /** how many migrations this code ships (and expects applied) */
  readonly shippedMigrations = shippedMigrations();

  constructor(private readonly sql: Sql) {}

  /** How many migrations the database has applied (a query: it fails when the database is unreachable). */
  appliedMigrations(): Promise<number> {
    return appliedMigrations(this.sql);
  }

  /** Seconds since the worker's last heartbeat; undefined if it has no heartbeat row. */
  heartbeatAge(workerId: string): Promise<number | undefined> {
    return heartbeatAge(this.sql, workerId);
  }

  /** Live rows per state, the stuck-looking ones, the workers (stuck: `factor` × the usual time in a state, at least `floorS`). */
  overview(stuck: { factor: number; floorS: number }): Promise<Overview> {
    return overview(this.sql, stuck);
  }
}
