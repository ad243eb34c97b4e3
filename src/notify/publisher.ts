/**
 * Publishing notifications to RabbitMQ with publisher confirms, as
 * oslo.messaging's notifier does it: a topic exchange (`control_exchange`),
 * and before the first message to a routing key (`<topic>.<priority>`) a
 * queue of that name bound to it, so what is sent before any consumer
 * listens waits for one. `publish` resolves once the broker confirmed every
 * message (a nack or a closed channel rejects; the next call connects
 * again, trying each host of the transport URL in turn).
 */
import { connect as amqpConnect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { NotifyConfig } from './config.ts';
import { osloBody, type Notification } from './message.ts';

export class AmqpPublisher {
  private connection: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private readonly declared = new Set<string>();
  private urlIndex = 0;

  constructor(private readonly config: NotifyConfig) {}

  /** Publish every message and wait for the broker to confirm them all (a nack or a closed channel throws). */
  async publish(messages: Notification[]): Promise<void> {
    const channel = await this.connected();
    const { exchange, topics, durable } = this.config;
    for (const n of messages) {
      for (const topic of topics) {
        const key = `${topic}.${n.priority.toLowerCase()}`;
        if (!this.declared.has(key)) {
          // As oslo's notifier does: the queue named after the routing key exists before the first message,
          // so what is sent before any consumer listens waits for it.
          await channel.assertQueue(key, { durable, autoDelete: false });
          await channel.bindQueue(key, exchange, key);
          this.declared.add(key);
        }
        const ok = channel.publish(exchange, key, osloBody(n), {
          contentType: 'application/json',
          contentEncoding: 'utf-8',
          messageId: n.message_id,
          persistent: durable,
        });
        if (!ok)
          await new Promise<void>((resolve, reject) => {
            channel.once('drain', resolve);
            channel.once('close', () => reject(new Error('the channel closed while its buffer was full')));
          });
      }
    }
    await channel.waitForConfirms();
  }

  private async connected(): Promise<ConfirmChannel> {
    if (this.channel) return this.channel;
    const { urls, exchange, durable } = this.config;
    let lastError: unknown;
    for (let i = 0; i < urls.length; i++) {
      const url = urls[(this.urlIndex + i) % urls.length]!;
      try {
        const connection = await amqpConnect(url, { timeout: 5000 });
        connection.on('error', () => undefined); // a close follows; the next round reconnects
        connection.on('close', () => {
          if (this.connection === connection) {
            this.connection = undefined;
            this.channel = undefined;
          }
        });
        const channel = await connection.createConfirmChannel();
        channel.on('error', () => undefined);
        await channel.assertExchange(exchange, 'topic', { durable, autoDelete: false });
        this.urlIndex = (this.urlIndex + i) % urls.length;
        this.connection = connection;
        this.channel = channel;
        this.declared.clear();
        return channel;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  }

  async disconnect(): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    this.channel = undefined;
    await connection?.close().catch(() => undefined);
  }
}
