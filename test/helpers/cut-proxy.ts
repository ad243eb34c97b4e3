/**
 * A TCP proxy between the app and PostgreSQL that, when armed, loses a
 * connection at the worst moment for the client: right after the server
 * committed a transaction and before the client reads that it did (the
 * server's CommandComplete for COMMIT is dropped, and both sockets closed).
 *
 * Terminating backends at random moments makes that outcome only by
 * chance — once in hundreds of requests, and on a busy machine not once in
 * 150 s (test/api/lost-connection.test.ts under npm run test:stress). This
 * makes it on demand.
 *
 * It reads only the server's side of the protocol (every message after the
 * startup is a type byte and a length); the client's side is passed as is.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { tcpUrl } from '../../db/connect.ts';

export interface CutProxy {
  /** the database URL through the proxy */
  readonly url: string;
  /** connections cut after a COMMIT so far */
  readonly cuts: number;
  /** cut the next connection that reports a COMMIT */
  arm(): void;
  close(): Promise<void>;
}

const COMMIT = Buffer.from('COMMIT\0');

export async function startCutProxy(databaseUrl: string): Promise<CutProxy> {
  const target = new URL(databaseUrl);
  let armed = 0;
  let cuts = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      let forward = 0;
      while (pending.length - forward >= 5) {
        const length = pending.readInt32BE(forward + 1);
        if (pending.length - forward < 1 + length) break;
        const type = pending[forward]!;
        const body = pending.subarray(forward + 5, forward + 1 + length);
        if (armed > 0 && type === 0x43 /* 'C' CommandComplete */ && body.equals(COMMIT)) {
          armed--;
          cuts++;
          client.write(pending.subarray(0, forward));
          end();
          return;
        }
        forward += 1 + length;
      }
      client.write(pending.subarray(0, forward));
      pending = pending.subarray(forward);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const through = new URL(tcpUrl(databaseUrl)); // through the proxy, not the server's Unix socket
  through.hostname = '127.0.0.1';
  through.port = String((server.address() as { port: number }).port);
  return {
    url: through.toString(),
    get cuts() {
      return cuts;
    },
    arm() {
      armed = 1;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
