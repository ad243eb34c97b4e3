/**
 * Transactions that change several rows (a snapshot and its volume, an
 * attachment and its volume, a volume and its snapshots). Each row changes
 * by its own CAS, so the transaction never needs a stronger isolation; but
 * two of them can take the same rows' locks in opposite orders (a cascade
 * delete locks the volume then its snapshots, a snapshot's completion the
 * snapshot then its volume). PostgreSQL detects the deadlock and aborts one
 * side; that side is retried here, from the start, a few times.
 */
import type postgres from 'postgres';
import { SQLSTATE, sqlState } from './sqlstate.ts';

const RETRYABLE = new Set<string>([SQLSTATE.DEADLOCK_DETECTED, SQLSTATE.SERIALIZATION_FAILURE]);

export async function transaction<T>(sql: postgres.Sql, fn: (tx: postgres.TransactionSql) => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await sql.begin(fn)) as T;
    } catch (err) {
      const state = sqlState(err);
      if (!state || !RETRYABLE.has(state) || attempt >= attempts) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
    }
  }
}
