/**
 * `GET /openapi`: the OpenAPI document as one page a person reads — every
 * operation by tag, with its parameters, request body and answers, each
 * schema folded under its answer, `$ref`s as links — rendered on the
 * server from the same document `GET /openapi.json` serves. No script and
 * nothing fetched from elsewhere, so it works where a cloud's control
 * network reaches no CDN (Swagger UI would need its 3 MB bundle served, and
 * the @fastify/swagger plugin it requires generates documents from route
 * schemas, which volstate's routes deliberately do not carry: see
 * document.ts).
 */

type Json = Record<string, unknown>;

const esc = (s: unknown) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const anchor = (s: string) => s.replace(/[^A-Za-z0-9_-]+/g, '-');

/** A schema as indented JSON, each `$ref` a link to its component. */
function schemaHtml(schema: unknown): string {
  const text = esc(JSON.stringify(schema, null, 2));
  return `<pre>${text.replace(
    /&quot;\$ref&quot;: &quot;#\/components\/schemas\/([^&]+)&quot;/g,
    (_, name: string) => `&quot;$ref&quot;: <a href="#schema-${anchor(name)}">${name}</a>`,
  )}</pre>`;
}

function operationHtml(method: string, path: string, op: Json): string {
  const params = (op.parameters as Json[] | undefined) ?? [];
  const body = (op.requestBody as { content?: Record<string, { schema?: unknown }> } | undefined)?.content;
  const responses = (op.responses as Record<string, Json | undefined>) ?? {};
  const out = [
    `<section class="op" id="${anchor(String(op.operationId))}">`,
    `<h3><span class="m ${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code> ${esc(op.summary ?? '')}</h3>`,
  ];
  if (op.description) out.push(`<p>${esc(op.description)}</p>`);
  if (params.length)
    out.push(
      '<table><tr><th>parameter</th><th>in</th><th>required</th></tr>',
      ...params.map((p) => `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${p.required ? 'yes' : 'no'}</td></tr>`),
      '</table>',
    );
  for (const [type, media] of Object.entries(body ?? {}))
    out.push(`<details><summary>request body (${esc(type)})</summary>${schemaHtml(media.schema ?? {})}</details>`);
  for (const [status, answer] of Object.entries(responses)) {
    const content = (answer?.content ?? {}) as Record<string, { schema?: unknown }>;
    const types = Object.entries(content);
    const head = `<b>${esc(status)}</b> ${esc(answer?.description ?? '')}${types.length ? ` <small>(${types.map(([t]) => esc(t)).join(', ')})</small>` : ''}`;
    const schemas = types.filter(([, m]) => m.schema !== undefined);
    out.push(
      schemas.length
        ? `<details><summary>${head}</summary>${schemas.map(([, m]) => schemaHtml(m.schema)).join('')}</details>`
        : `<p>${head}</p>`,
    );
  }
  out.push('</section>');
  return out.join('\n');
}

export function openApiPage(doc: Json): string {
  const info = doc.info as Json;
  const paths = doc.paths as Record<string, Record<string, Json>>;
  const byTag = new Map<string, [string, string, Json][]>();
  for (const [path, ops] of Object.entries(paths))
    for (const [method, op] of Object.entries(ops)) {
      const tag = ((op.tags as string[] | undefined) ?? ['Other'])[0]!;
      const list = byTag.get(tag);
      if (list) list.push([method, path, op]);
      else byTag.set(tag, [[method, path, op]]);
    }
  const tags = [...byTag.keys()].sort();
  const schemas = ((doc.components as Json | undefined)?.schemas ?? {}) as Record<string, unknown>;
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${esc(info.title)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222;max-width:70em}
h1{font-size:1.4em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd} h3{font-size:1em;margin:.2em 0}
.op{border-left:3px solid #ddd;padding:.3em .8em;margin:.8em 0} .m{font:bold 12px ui-monospace,monospace;padding:.1em .4em;border-radius:3px;background:#e9ecef}
.get{background:#d1ecf1} .post{background:#d4edda} .put{background:#fff3cd} .delete{background:#f8d7da}
pre{background:#f7f7f7;padding:.5em;overflow:auto;max-height:30em;font-size:12px} table{border-collapse:collapse;margin:.3em 0} td,th{border-bottom:1px solid #eee;padding:.1em .6em;text-align:left}
nav{columns:3} nav a{display:block}
</style></head><body>
<h1>${esc(info.title)} <small>(OpenAPI ${esc(doc.openapi)}, API ${esc(info.version)})</small></h1>
<p>${esc(info.description)}</p>
<p>The document itself: <a href="openapi.json">openapi.json</a>. ${Object.values(paths).reduce((n, ops) => n + Object.keys(ops).length, 0)} operations.</p>
<nav>${tags.map((t) => `<a href="#tag-${anchor(t)}">${esc(t)} (${byTag.get(t)!.length})</a>`).join('')}</nav>
${tags
  .map(
    (t) =>
      `<h2 id="tag-${anchor(t)}">${esc(t)}</h2>\n${byTag
        .get(t)!
        .map(([m, p, op]) => operationHtml(m, p, op))
        .join('\n')}`,
  )
  .join('\n')}
<h2 id="schemas">Schemas</h2>
${Object.entries(schemas)
  .map(([name, s]) => `<details id="schema-${anchor(name)}"><summary><code>${esc(name)}</code></summary>${schemaHtml(s)}</details>`)
  .join('\n')}
</body></html>
`;
}
