/**
 * The harness's notification consumer (`--notify`): it reads the queues an
 * oslo.messaging consumer reads (`notifications.info`, `notifications.error`
 * on the `cinder` exchange, durable), records each notification's message
 * id, event type and resource, and acknowledges it only after recording
 * it. A broker restart closes its connection; it connects again (what it
 * had not acknowledged is delivered again: a duplicate with the same id).
 * The checker (src/check/notifications.ts) compares what it recorded with
 * the history.
 */
import { connect, type ChannelModel } from 'amqplib';

export interface ReceivedNotification {
  message_id: string;
  event_type: string;
  /** `<type>:<id>`, from the payload's id field */
  resource: string | undefined;
  /** the notification's timestamp (when the transition happened), ms since the epoch */
  happenedAt?: number | undefined;
  /** when it arrived here, ms since the epoch */
  receivedAt?: number | undefined;
}

const ID_FIELDS: [field: string, type: string][] = [
  ['attachment_id', 'attachment'],
  ['snapshot_id', 'snapshot'],
  ['backup_id', 'backup'],
  ['group_snapshot_id', 'group_snapshot'],
  ['group_id', 'group'],
  ['volume_id', 'volume'],
];

/** The resource a notification is about, as its publisher and payload say it. */
function resourceOf(publisher: string, payload: Record<string, unknown>): string | undefined {
  const kind = publisher.split('.')[0];
  const own = ID_FIELDS.find(([, type]) => type === kind);
  const id = (field: string) => (typeof payload[field] === 'string' ? payload[field] : undefined);
  if (id('attachment_id')) return `attachment:${id('attachment_id')}`;
  if (own && id(own[0])) return `${own[1]}:${id(own[0])}`;
  return undefined;
}

export class NotificationConsumer {
  readonly received: ReceivedNotification[] = [];
  /** when the last notification came (ms since the epoch; bench:notify times the drain by it) */
  lastAt = 0;
  reconnects = 0;
  private connection: ChannelModel | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly url: string,
    private readonly opts: { exchange: string; topic: string; say?: (line: string) => void },
  ) {}

  /** Resolves once it listens; fails (and stops) if it could not in `withinMs`. */
  async start(withinMs = 60_000): Promise<void> {
    let first: (() => void) | undefined;
    const listening = new Promise<void>((resolve) => (first = resolve));
    this.running = this.loop(() => first?.());
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the notification consumer could not listen on ${this.url} in ${withinMs} ms`)), withinMs);
    });
    try {
      await Promise.race([listening, late]);
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.connection?.close().catch(() => undefined);
    await this.running;
  }

  private async loop(listening: () => void): Promise<void> {
    while (!this.stopped) {
      try {
        const connection = await connect(this.url, { timeout: 5000 });
        this.connection = connection;
        const closed = new Promise<void>((resolve) => {
          connection.on('close', () => resolve());
          connection.on('error', () => undefined);
        });
        const channel = await connection.createChannel();
        channel.on('error', () => undefined);
        await channel.prefetch(500);
        await channel.assertExchange(this.opts.exchange, 'topic', { durable: true, autoDelete: false });
        for (const priority of ['info', 'error']) {
          const queue = `${this.opts.topic}.${priority}`;
          await channel.assertQueue(queue, { durable: true, autoDelete: false });
          await channel.bindQueue(queue, this.opts.exchange, queue);
          await channel.consume(queue, (msg) => {
            if (!msg) return;
            try {
              const envelope = JSON.parse(msg.content.toString()) as { 'oslo.message': string };
              const m = JSON.parse(envelope['oslo.message']) as {
                message_id: string;
                event_type: string;
                publisher_id: string;
                payload: Record<string, unknown>;
                timestamp: string;
              };
              this.received.push({
                message_id: m.message_id,
                event_type: m.event_type,
                resource: resourceOf(m.publisher_id, m.payload),
                happenedAt: Date.parse(`${m.timestamp.replace(' ', 'T').slice(0, 23)}Z`),
                receivedAt: Date.now(),
              });
              this.lastAt = Date.now();
            } catch {
              this.received.push({ message_id: `unparsable:${msg.properties.messageId ?? '?'}`, event_type: '?', resource: undefined });
            }
            channel.ack(msg);
          });
        }
        listening();
        await closed;
      } catch (err) {
        if (this.stopped) return;
        this.opts.say?.(`notification consumer: ${String(err)}; connecting again`);
      }
      if (this.stopped) return;
      this.reconnects++;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
