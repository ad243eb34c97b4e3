/**
 * Checks an answer against volstate's OpenAPI document, as Tempest checks
 * Cinder's answers against its schemas: the operation is found by the
 * request's method and path, the response by its status (a refusal by the
 * `default`, Cinder's fault shape), and a JSON body must validate against
 * that response's schema. Ajv with JSON Schema 2020-12, which OpenAPI 3.1
 * uses; the formats Tempest's schemas name are checked as Tempest checks
 * them.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';

type Doc = { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>> };

/** oslo/iso8601's parse_date: a date and time, fraction and zone optional. */
const ISO8601 = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;

const pointer = (...parts: string[]) => parts.map((p) => encodeURIComponent(p.replaceAll('~', '~0').replaceAll('/', '~1'))).join('/');

export class ContractCheck {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly templates: { path: string; re: RegExp; statics: number }[];
  private readonly validators = new Map<string, ReturnType<Ajv2020['compile']>>();
  /** the operations checked so far: `GET /v3/{project_id}/volumes/{id}` */
  readonly seen = new Set<string>();

  constructor(private readonly doc: Doc) {
    // Tempest's draft-4 format checker does not check uuid (Keystone's ids are 32 hex digits, noauth's
    // user ids are names): an annotation, as there. uri and iso8601-date-time it checks.
    this.ajv.addFormat('uuid', () => true);
    this.ajv.addFormat('uri', (s: string) => URL.canParse(s));
    this.ajv.addFormat('iso8601-date-time', (s: string) => ISO8601.test(s));
    this.ajv.addSchema(doc, 'doc');
    this.templates = Object.keys(doc.paths)
      .flatMap((path) => {
        const segments = path.split('/');
        const re = (p: string) => new RegExp(`^${p.replace(/\{\w+\}/g, '[^/]+')}$`);
        const statics = segments.filter((s) => !s.startsWith('{')).length;
        const out = [{ path, re: re(path), statics }];
        // The project-less twin: /v3/volumes answers as /v3/{project_id}/volumes.
        if (path.startsWith('/v3/{project_id}/')) out.push({ path, re: re(path.replace('/{project_id}', '')), statics: statics + 1 });
        return out;
      })
      .sort((a, b) => b.statics - a.statics); // /volumes/detail before /volumes/{id}
  }

  /** What is wrong with this answer, or undefined when it keeps the contract. */
  check(method: string, url: string, status: number, body: unknown, contentType: string | undefined): string | undefined {
    const path = url.split('?')[0]!;
    const template = this.templates.find((t) => t.re.test(path))?.path;
    const op = template ? this.doc.paths[template]![method.toLowerCase()] : undefined;
    if (!template || !op)
      return status === 404 || status === 405 ? undefined : `${method} ${path}: not in the document (answered ${status})`;
    this.seen.add(`${method.toUpperCase()} ${template}`);
    const key = String(status) in op.responses ? String(status) : status >= 400 ? 'default' : undefined;
    if (!key)
      return `${method} ${template}: answered ${status}, which the document does not list (${Object.keys(op.responses).join(', ')})`;
    const media = contentType?.split(';')[0]?.trim();
    if (media !== 'application/json' || !op.responses[key]!.content?.['application/json']) return undefined;
    const id = `doc#/${pointer('paths', template, method.toLowerCase(), 'responses', key, 'content', 'application/json', 'schema')}`;
    let validate = this.validators.get(id);
    if (!validate) {
      validate = this.ajv.compile({ $ref: id });
      this.validators.set(id, validate);
    }
    if (validate(body)) return undefined;
    const errors = (validate.errors ?? [])
      .slice(0, 5)
      .map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
    return `${method} ${path} → ${status}: the answer does not match ${template} ${key}:\n  ${errors.join('\n  ')}`;
  }
}
