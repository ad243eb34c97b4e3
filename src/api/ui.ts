/**
 * The operator page, `GET /ui`: one HTML page with its script inline, no
 * build step. Each machine drawn as its generated diagram (/diagrams) with
 * the number of live resources in each state written on the state and
 * states holding resources outlined; each edge with how many times it was
 * taken in the last minute, on any node (counted by the page from the event
 * stream; refusals are counted per node, in /metrics); rows in a transient
 * state for longer than 10 × the usual time there (and at least 5 s) listed
 * as stuck (db/overview.ts); the workers with
 * their heartbeats and what each owns; the transitions as they happen
 * (/v3/events, from every node); and the history of any resource by id.
 *
 * `GET /ui/state` is the page's data as JSON. Both need no token in noauth
 * mode; with `tokens` auth the page is served but its data needs an admin
 * token, which a browser's EventSource cannot send: use noauth behind a
 * trusted network for the page, or /metrics.
 */
import type { FastifyPluginAsync } from 'fastify';
import { RESOURCE_TYPES } from '../../machines/index.ts';
import type { StatusService } from '../services/status.ts';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>volstate</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:1.5em}
.machine{overflow:auto;border:1px solid #ddd;margin:.5em 0;padding:.5em}
.machine svg{max-width:100%;height:auto}
g.node.held path,g.node.held polygon,g.node.held ellipse{stroke:#2463eb;stroke-width:3}
table{border-collapse:collapse} td,th{border-bottom:1px solid #eee;padding:.2em .6em;text-align:left;font-variant-numeric:tabular-nums}
.stuck{color:#b00} #log{font:12px ui-monospace,monospace;max-height:14em;overflow:auto;background:#f7f7f7;padding:.5em}
</style></head><body>
<h1>volstate</h1>
<p id="status">loading…</p>
<div id="machines"></div>
<h2>Stuck-looking rows</h2><table id="stuck"><tbody></tbody></table>
<h2>Workers</h2><table id="workers"><thead><tr><th>worker</th><th>heartbeat</th><th>owns</th></tr></thead><tbody></tbody></table>
<h2>Transitions as they happen</h2><div id="log"></div>
<h2>History of a resource</h2>
<form id="history"><input id="rid" size="40" placeholder="volume, snapshot or attachment id"> <button>show</button></form>
<table id="transitions"><tbody></tbody></table>
<script>
const MACHINES = ${JSON.stringify(RESOURCE_TYPES)};
const $ = (s) => document.querySelector(s);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
async function draw() {
  for (const m of MACHINES) {
    const div = document.createElement('div');
    div.className = 'machine'; div.id = 'machine-' + m;
    div.innerHTML = '<h2>' + m + '</h2>' + await (await fetch('diagrams/' + m + '.svg')).text();
    $('#machines').append(div);
    for (const g of div.querySelectorAll('g.node, g.edge')) {
      const text = g.querySelector('text');
      if (text) text.dataset.label = text.textContent;
    }
  }
}
async function refresh() {
  const s = await (await fetch('ui/state')).json();
  let total = 0;
  for (const m of MACHINES) {
    const counts = s.counts[m] || {};
    for (const g of document.querySelectorAll('#machine-' + m + ' g.node')) {
      const state = g.querySelector('title').textContent.replaceAll('_', '.');
      const text = g.querySelector('text');
      if (!text) continue;
      const n = counts[state] || counts[state.replaceAll('.', '_')] || 0;
      total += n;
      text.textContent = text.dataset.label + (n ? ' · ' + n : '');
      g.classList.toggle('held', n > 0);
      g.dataset.count = String(n);
    }
  }
  $('#status').textContent = total + ' live resources; ' + s.workers.length + ' workers; updated ' + new Date().toLocaleTimeString();
  $('#stuck tbody').innerHTML = s.stuck.map((r) => '<tr class="stuck"><td>' + esc(r.resource_type) + '</td><td>' + esc(r.resource_id) + '</td><td>' + esc(r.state) + '</td><td>for ' + r.for_s.toFixed(0) + ' s' + (r.usual_s != null ? ' (usually ' + r.usual_s.toFixed(1) + ' s)' : '') + '</td><td>' + esc(r.owner || 'no owner') + '</td></tr>').join('') || '<tr><td>none</td></tr>';
  $('#workers tbody').innerHTML = s.workers.map((w) => '<tr><td>' + esc(w.id) + '</td><td>' + w.heartbeat_age_s.toFixed(1) + ' s ago</td><td>' + w.owned + ' rows</td></tr>').join('');
}
// Transitions of the last minute by edge, from the event stream (every node's): machine|from|event|to → times.
const seenOnEdges = new Map();
const under = (s) => s.replaceAll('.', '_');
function annotateEdges() {
  const since = Date.now() - 60000;
  for (const m of MACHINES) {
    for (const g of document.querySelectorAll('#machine-' + m + ' g.edge')) {
      const text = g.querySelector('text');
      if (!text) continue;
      const [from, to] = g.querySelector('title').textContent.split('->');
      const event = text.dataset.label.split(' ')[0].split('[')[0];
      const times = (seenOnEdges.get(m + '|' + from + '|' + event + '|' + to) || []).filter((x) => x > since);
      text.textContent = text.dataset.label + (times.length ? ' · ' + times.length + '/min' : '');
      g.dataset.perMinute = String(times.length);
    }
  }
}
let pending;
const soon = () => { pending ??= setTimeout(() => { pending = undefined; refresh(); annotateEdges(); }, 300); };
function listen() {
  const es = new EventSource('v3/events?all_tenants=1');
  es.addEventListener('transition', (e) => {
    const t = JSON.parse(e.data);
    if (t.from) {
      const key = t.resource_type + '|' + under(t.from) + '|' + t.event + '|' + under(t.to);
      seenOnEdges.set(key, [...(seenOnEdges.get(key) || []), Date.now()].slice(-1000));
    }
    const line = document.createElement('div');
    line.textContent = t.at + ' ' + t.resource_type + ' ' + t.resource_id + ' ' + (t.from || '∅') + ' --' + t.event + '--> ' + t.to;
    $('#log').prepend(line);
    while ($('#log').childElementCount > 200) $('#log').lastChild.remove();
    soon();
  });
}
$('#history').addEventListener('submit', async (e) => {
  e.preventDefault();
  const id = $('#rid').value.trim();
  for (const c of ['volumes', 'snapshots', 'attachments']) {
    const r = await fetch('v3/' + c + '/' + encodeURIComponent(id) + '/transitions', { headers: { 'OpenStack-API-Version': 'volume 3.70' } });
    if (!r.ok) continue;
    const { transitions } = await r.json();
    $('#transitions tbody').innerHTML = transitions.map((t) => '<tr><td>v' + t.version + '</td><td>' + esc(t.from || '∅') + '</td><td>' + esc(t.event) + '</td><td>' + esc(t.to) + '</td><td>' + esc(t.actor) + '</td><td>' + esc(t.at) + '</td></tr>').join('');
    return;
  }
  $('#transitions tbody').innerHTML = '<tr><td>no volume, snapshot or attachment ' + esc(id) + '</td></tr>';
});
draw().then(refresh).then(listen);
</script></body></html>`;

/** A row is stuck-looking after this many times the usual time in its state. */
const STUCK_FACTOR = 10;

export const uiRoutes: FastifyPluginAsync<{ status: StatusService; stuckFloorS?: number }> = async (app, opts) => {
  app.get('/ui', async (_req, reply) => reply.type('text/html; charset=utf-8').send(PAGE));
  app.get('/ui/state', async () => opts.status.overview({ factor: STUCK_FACTOR, floorS: opts.stuckFloorS ?? 5 }));
};
