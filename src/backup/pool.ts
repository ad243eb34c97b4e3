/**
 * The pack pool: worker threads that hash and compress backup chunks
 * (src/backup/pack.ts), one per core by default. A backup's chunks are read
 * into shared memory and packed here, several at once, so a backup uses
 * every core and the node's event loop keeps answering requests meanwhile.
 * Threads start on first use and stop after IDLE_MS without work (an idle
 * thread would keep the process from exiting: tsx's loader in it holds a
 * port open, unref or not).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Packed, PackJob } from './pack.ts';

const IDLE_MS = 2000;

interface Pending {
  resolve: (p: Packed) => void;
  reject: (e: Error) => void;
}

export class PackPool {
  readonly size: number;
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { id: number; job: PackJob }[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly busy = new Map<Worker, number>();
  private nextId = 0;
  private reaper: NodeJS.Timeout | undefined;

  constructor(size = availableParallelism()) {
    this.size = Math.max(1, size);
  }

  pack(job: PackJob): Promise<Packed> {
    const id = ++this.nextId;
    const done = new Promise<Packed>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.queue.push({ id, job });
    this.dispatch();
    return done;
  }

  private reapLater(): void {
    clearTimeout(this.reaper);
    this.reaper = setTimeout(() => {
      if (this.busy.size === 0 && this.queue.length === 0) void this.close();
    }, IDLE_MS);
    this.reaper.unref();
  }

  private dispatch(): void {
    while (this.queue.length) {
      const worker = this.idle.pop() ?? (this.workers.length < this.size ? this.spawn() : undefined);
      if (!worker) return;
      const m = this.queue.shift()!;
      this.busy.set(worker, m.id);
      worker.postMessage(m);
    }
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./boot.mjs', import.meta.url), {
      workerData: { entry: new URL('./pack-worker.ts', import.meta.url).href },
    });
    worker.unref();
    worker.on('message', (m: { id: number; packed?: Packed; error?: string }) => {
      this.busy.delete(worker);
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error !== undefined) p?.reject(new Error(m.error));
      else p?.resolve(m.packed!);
      this.idle.push(worker);
      this.dispatch();
      if (this.busy.size === 0) this.reapLater();
    });
    // A thread that dies fails the job it held; the next job starts a new one.
    worker.on('error', (e) => this.lost(worker, e));
    worker.on('exit', (code) => this.lost(worker, new Error(`a pack thread exited (${code})`)));
    this.workers.push(worker);
    return worker;
  }

  private lost(worker: Worker, e: Error): void {
    const i = this.workers.indexOf(worker);
    if (i < 0) return;
    this.workers.splice(i, 1);
    const j = this.idle.indexOf(worker);
    if (j >= 0) this.idle.splice(j, 1);
    const id = this.busy.get(worker);
    this.busy.delete(worker);
    if (id !== undefined) {
      this.pending.get(id)?.reject(e);
      this.pending.delete(id);
    }
    this.dispatch();
  }

  async close(): Promise<void> {
    clearTimeout(this.reaper);
    const all = this.workers.splice(0);
    this.idle.length = 0;
    await Promise.all(all.map((w) => w.terminate()));
  }
}
