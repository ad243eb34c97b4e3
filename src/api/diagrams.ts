/**
 * The machines' diagrams, served: `GET /diagrams` (an index page),
 * `GET /diagrams/{machine}.svg|.mmd|.dot` and `/diagrams/recovery.md`.
 * They are the files of diagrams/, generated from machines/ and
 * drift-checked by a test, so what is served is what the code enforces.
 * No auth: they describe the product, not anybody's resources.
 */
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import { RESOURCE_TYPES } from '../../machines/index.ts';
import { ApiError } from '../errors.ts';

/** diagrams/ (src/diagrams.ts writes it; not imported here, to keep its renderer out of the server). */
const DIAGRAMS = fileURLToPath(new URL('../../diagrams', import.meta.url));

const TYPES: Record<string, string> = {
  svg: 'image/svg+xml',
  mmd: 'text/plain; charset=utf-8',
  dot: 'text/vnd.graphviz; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  json: 'application/json; charset=utf-8',
};

/**
 * The files a client may ask for: the generated files of diagrams/ as they
 * are when the server starts (each machine's overview, its operations'
 * steps, its table), by exact name; nothing else, whatever the path.
 */
const FILES = new Map<string, string>(
  readdirSync(DIAGRAMS).flatMap((name): [string, string][] => {
    const type = TYPES[name.slice(name.lastIndexOf('.') + 1)];
    return type ? [[name, type]] : [];
  }),
);

export const diagramRoutes: FastifyPluginAsync = async (app) => {
  app.get('/diagrams', async (_req, reply) => {
    const rows = RESOURCE_TYPES.map(
      (m) =>
        `<li><a href="diagrams/${m}.svg">${m}</a>: ${[...FILES.keys()]
          .filter((f) => f.startsWith(`${m}.`) && f.endsWith('.svg') && f !== `${m}.svg`)
          .map((f) => `<a href="diagrams/${f}">${f.slice(m.length + 1, -4)}</a>`)
          .join(
            ', ',
          )} (<a href="diagrams/${m}.md">with the table of events from many states</a>, <a href="diagrams/${m}.json">JSON</a>, <a href="diagrams/${m}.mmd">the whole machine in Mermaid</a>)</li>`,
    ).join('\n');
    return reply
      .type('text/html; charset=utf-8')
      .send(
        `<!doctype html><html><head><meta charset="utf-8"><title>volstate: state machines</title></head><body>` +
          `<h1>The state machines</h1><p>Generated from machines/: each machine's statuses and the requests between them, then the steps of each operation. Yellow: an operation is in flight.</p><ul>\n${rows}\n</ul>` +
          `<p><a href="diagrams/recovery.md">What recovery does with each transient state</a></p>` +
          `<p><a href="diagrams/notifications.md">Which transition sends which of Cinder's notifications</a></p></body></html>`,
      );
  });
  app.get<{ Params: { file: string } }>('/diagrams/:file', async (req, reply) => {
    const type = FILES.get(req.params.file);
    if (!type) throw new ApiError('NotFound');
    return reply.type(type).send(await readFile(join(DIAGRAMS, req.params.file)));
  });
};
