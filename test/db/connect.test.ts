/**
 * db/connect.ts reads libpq's `host` parameter (a Unix socket's directory),
 * which postgres.js does not: the embedded server's URLs name its socket,
 * and a multi-host URL (Patroni's) is no WHATWG URL and must pass untouched.
 */
import { describe, expect, it } from 'vitest';
import { sqlClient, tcpUrl } from '../../db/connect.ts';
import { useTestDatabase } from '../helpers/db.ts';

const db = useTestDatabase();

describe('database URLs', () => {
  it('drops the socket parameter for TCP, wherever it stands, and leaves every other URL as it is', () => {
    expect(tcpUrl('postgres://u:p@127.0.0.1:5555/db?host=%2Ftmp%2Fx')).toBe('postgres://u:p@127.0.0.1:5555/db');
    expect(tcpUrl('postgres://u:p@127.0.0.1:5555/db?host=%2Ftmp%2Fx&sslmode=disable')).toBe('postgres://u:p@127.0.0.1:5555/db?sslmode=disable');
    expect(tcpUrl('postgres://u:p@127.0.0.1:5555/db?sslmode=disable&host=%2Ftmp%2Fx')).toBe('postgres://u:p@127.0.0.1:5555/db?sslmode=disable');
    const multi = 'postgres://u@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=read-write';
    expect(tcpUrl(multi)).toBe(multi);
  });

  it("connects over the embedded server's Unix socket when its URL names one, and over TCP without it", async () => {
    const where = async (url: string) => {
      const sql = sqlClient(url, { max: 1, onnotice: () => {} });
      try {
        const [row] = await sql`SELECT client_addr FROM pg_stat_activity WHERE pid = pg_backend_pid()`;
        return row!.client_addr === null ? 'socket' : 'tcp';
      } finally {
        await sql.end();
      }
    };
    if (!db.url.includes('host=')) return; // DATABASE_URL of a server without a socket in its URL: TCP only, nothing to tell apart
    expect(await where(db.url)).toBe('socket');
    expect(await where(tcpUrl(db.url))).toBe('tcp');
  });
});
