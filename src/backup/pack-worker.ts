/** A pack pool thread (src/backup/pool.ts): packs the chunks it is sent. */
import { parentPort } from 'node:worker_threads';
import { pack, type PackJob } from './pack.ts';

parentPort!.on('message', (m: { id: number; job: PackJob }) => {
  try {
    const packed = pack(m.job);
    parentPort!.postMessage({ id: m.id, packed });
  } catch (e) {
    parentPort!.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
  }
});
