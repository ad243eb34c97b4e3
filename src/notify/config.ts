/**
 * Where the notification relay publishes (src/notify/relay.ts), from
 * VOLSTATE_NOTIFY_* (src/config.ts): oslo.messaging's settings by their own names.
 */

/** Where and how to publish: oslo.messaging's transport_url, control_exchange, notification topics. */
export interface NotifyConfig {
  /** `amqp://user:pass@host:port/vhost` each, tried in turn (from `rabbit://…` with several hosts) */
  urls: string[];
  /** control_exchange (Cinder: `cinder`) */
  exchange: string;
  /** notification topics (default `notifications`); each message goes to `<topic>.<priority>` */
  topics: string[];
  /** amqp_durable_queues: the exchange and queues survive a broker restart, messages are persistent */
  durable: boolean;
  /** the host in `publisher_id` (`volume.<host>`) */
  host: string;
}

/**
 * oslo.messaging's transport_url, `rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost`,
 * as the AMQP URLs to try in turn. A host without its own credentials takes the first host's.
 */
export function transportUrls(raw: string): string[] {
  const m = /^(rabbit|amqp):\/\/([^/]*)(\/.*)?$/.exec(raw.trim());
  if (!m) throw new Error(`expected rabbit://user:password@host:port/ (oslo's transport_url), got ${JSON.stringify(raw.slice(0, 200))}`);
  const vhost = (m[3] ?? '/').split('?')[0]!;
  const hosts = m[2]!.split(',').filter(Boolean);
  if (hosts.length === 0) throw new Error(`${raw.slice(0, 200)}: no host`);
  let credentials = '';
  return hosts.map((h) => {
    const at = h.lastIndexOf('@');
    if (at >= 0) credentials = h.slice(0, at + 1);
    const host = at >= 0 ? h.slice(at + 1) : h;
    if (!host) throw new Error(`${raw.slice(0, 200)}: a host is empty`);
    return `amqp://${at >= 0 ? h.slice(0, at + 1) : credentials}${host}${vhost === '/' ? '' : vhost}`;
  });
}
