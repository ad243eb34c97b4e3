// A worker thread's entry: TypeScript through tsx (as `npm start` and the
// tests run), then the module named in workerData.entry.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
