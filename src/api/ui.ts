/**
 * The operator page, `GET /ui`: one HTML page with its script inline, no
 * build step. Each machine drawn as its generated overview (/diagrams: the
 * statuses and the requests between them), zoomed with the wheel or the
 * buttons and panned by dragging, with the number of live resources in each
 * status written on it and statuses holding resources outlined; each edge
 * with how many times it was taken in the last minute, on any node (counted
 * by the page from the event stream; refusals are counted per node, in
 * /metrics); beside it the events from many states, as a table with their
 * rates. A click on a status lists its transitions in and out with their
 * rates, and draws the steps of its operation (diagrams/<machine>.<status>.svg).
 * Rows in a transient
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
body{font:14px system-ui,sans-serif;margin:.8em 1.5em;color:#222}
h1{font-size:1.2em;margin:.2em 0;display:inline-block} #status{display:inline-block;margin-left:1em;color:#555}
h2{font-size:1.1em;margin:1em 0 .3em} h3{font-size:1em;margin:.6em 0 .2em}
.viewer{position:relative;overflow:hidden;border:1px solid #ddd;cursor:grab;touch-action:none;background:#fff}
.viewer.dragging{cursor:grabbing} .stage{transform-origin:0 0;position:absolute;left:0;top:0}
.zoom{position:absolute;right:.4em;top:.4em;z-index:1} .zoom button{font:13px system-ui;min-width:2em}
g.node{cursor:pointer} g.node.held path,g.node.held polygon,g.node.held ellipse{stroke:#2463eb;stroke-width:3}
g.node.selected path,g.node.selected polygon,g.node.selected ellipse{stroke:#d63384;stroke-width:3}
.below{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1.5em}
table{border-collapse:collapse} td,th{border-bottom:1px solid #eee;padding:.2em .6em;text-align:left;vertical-align:top;font-variant-numeric:tabular-nums}
.many td:nth-child(3),.many td:nth-child(4){max-width:22em}
.stuck{color:#b00} #log{font:12px ui-monospace,monospace;max-height:14em;overflow:auto;background:#f7f7f7;padding:.5em}
</style></head><body>
<h1>volstate</h1><p id="status">loading…</p>
<div id="machines"></div>
<h2>Stuck-looking rows</h2><table id="stuck"><tbody></tbody></table>
<h2>Workers</h2><table id="workers"><thead><tr><th>worker</th><th>heartbeat</th><th>owns</th></tr></thead><tbody></tbody></table>
<h2>Transitions as they happen</h2><div id="log"></div>
<h2>History of a resource</h2>
<form id="history"><input id="rid" size="40" placeholder="volume, snapshot or attachment id"> <button>show</button></form>
<table id="transitions"><tbody></tbody></table>
<script>
const MACHINES = ${JSON.stringify(RESOURCE_TYPES)};
const $ = (s, root = document) => root.querySelector(s);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const statusOf = (path) => path.split('.')[0]; // (not "top": that is window.top)
const spec = {};      // machine → diagrams/<machine>.json
let counts = {};      // machine → state → live resources (from /ui/state)
// Transitions of the last minute, from the event stream (every node's): machine|from status|event|to status → times.
const seen = new Map();
const perMinute = (m, from, event, to) => {
  const since = Date.now() - 60000;
  return (seen.get(m + '|' + from + '|' + event + '|' + to) || []).filter((x) => x > since).length;
};

/** A diagram in a box that zooms (wheel, buttons) and pans (drag); it starts fitted to the box's width. */
function viewer(svgText) {
  const box = document.createElement('div');
  box.className = 'viewer';
  box.innerHTML = '<div class="zoom"><button data-z="1.25" title="zoom in">+</button><button data-z="0.8" title="zoom out">−</button><button data-z="fit" title="fit the width">fit</button></div><div class="stage">' + svgText + '</div>';
  const stage = $('.stage', box);
  const svg = $('svg', box);
  const [, , w, h] = svg.getAttribute('viewBox').split(' ').map(Number);
  svg.setAttribute('width', w); svg.setAttribute('height', h); // one unit of the drawing is one CSS pixel
  let k = 1, x = 0, y = 0;
  const apply = () => { stage.style.transform = 'translate(' + x + 'px,' + y + 'px) scale(' + k + ')'; box.dataset.scale = String(k); };
  const fit = () => { k = Math.min(1.25, box.clientWidth / w); x = 0; y = 0; box.style.height = Math.ceil(h * k) + 'px'; apply(); };
  const zoomAt = (f, px, py) => { const k2 = Math.max(0.2, Math.min(6, k * f)); x = px - ((px - x) * k2) / k; y = py - ((py - y) * k2) / k; k = k2; apply(); };
  box.addEventListener('wheel', (e) => { e.preventDefault(); const r = box.getBoundingClientRect(); zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top); }, { passive: false });
  for (const b of box.querySelectorAll('.zoom button')) b.addEventListener('click', () => (b.dataset.z === 'fit' ? fit() : zoomAt(Number(b.dataset.z), box.clientWidth / 2, box.clientHeight / 2)));
  let drag = null;
  box.addEventListener('pointerdown', (e) => { if (e.target.closest('.zoom')) return; drag = { sx: e.clientX, sy: e.clientY, x, y, moved: false }; });
  box.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.sx, dy = e.clientY - drag.sy;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true; box.classList.add('dragging'); box.setPointerCapture(e.pointerId);
    x = drag.x + dx; y = drag.y + dy; apply();
  });
  const end = (e) => { if (drag?.moved) { e.stopPropagation(); box.dataset.dragged = '1'; } drag = null; box.classList.remove('dragging'); };
  box.addEventListener('pointerup', end);
  box.addEventListener('click', (e) => { if (box.dataset.dragged) { e.stopPropagation(); e.preventDefault(); delete box.dataset.dragged; } }, true);
  box.fit = fit;
  return box;
}

async function draw() {
  for (const m of MACHINES) {
    spec[m] = await (await fetch('diagrams/' + m + '.json')).json();
    const div = document.createElement('div');
    div.className = 'machine'; div.id = 'machine-' + m;
    div.innerHTML = '<h2>' + m + ' <small>(click a status: its transitions, their rate, its steps; wheel or +/− to zoom, drag to pan)</small></h2>';
    const box = viewer(await (await fetch('diagrams/' + m + '.svg')).text());
    div.append(box);
    const below = document.createElement('div');
    below.className = 'below';
    below.innerHTML = '<div><h3>Events from many states</h3><table class="many"><thead><tr><th>event</th><th>by</th><th>from</th><th>to</th><th>last min</th></tr></thead><tbody></tbody></table></div><div class="detail"><h3>Click a status</h3></div>';
    div.append(below);
    $('#machines').append(div);
    box.fit();
    for (const g of div.querySelectorAll('g.node, g.edge')) {
      const text = g.querySelector('text');
      if (text) text.dataset.label = text.textContent;
    }
    for (const g of box.querySelectorAll('g.node')) {
      const status = g.querySelector('title').textContent;
      if (!spec[m].statuses.some((s) => s.name === status) && status !== 'parked') continue;
      g.addEventListener('click', () => select(m, status));
    }
  }
}

/** The transitions in and out of a status, at the status level, with their rate in the last minute. */
function transitionsOf(m, status) {
  const rows = new Map();
  for (const t of spec[m].transitions) {
    if (t.to === null) continue;
    const from = t.from === '' ? '*' : statusOf(t.from), to = statusOf(t.to);
    if (from === to || (from !== status && to !== status && from !== '*')) continue;
    if (from === '*' && to === status) continue;
    const dir = to === status ? 'in' : 'out';
    const key = dir + '|' + t.event + '|' + (dir === 'in' ? to : from === '*' ? status : from);
    const row = rows.get(key) || { dir, event: t.event, others: new Set(), n: 0 };
    const other = dir === 'in' ? from : to;
    if (!row.others.has(other)) { row.others.add(other); row.n += dir === 'in' ? perMinute(m, other, t.event, status) : perMinute(m, status, t.event, other); }
    rows.set(key, row);
  }
  return [...rows.values()];
}

const selected = {};
function select(m, status) {
  selected[m] = status;
  const div = $('#machine-' + m);
  for (const g of div.querySelectorAll('.viewer g.node')) g.classList.toggle('selected', g.querySelector('title').textContent === status);
  renderDetail(m, true);
}

async function renderDetail(m, fresh) {
  const status = selected[m];
  if (!status) return;
  const div = $('#machine-' + m);
  const detail = $('.detail', div);
  const s = spec[m].statuses.find((x) => x.name === status);
  const live = Object.entries(counts[m] || {}).filter(([k]) => (status === 'parked' ? spec[m].statuses.some((p) => p.parked && p.name === statusOf(k)) : statusOf(k) === status)).reduce((a, [, n]) => a + n, 0);
  const list = (dir) => transitionsOf(m, status).filter((r) => r.dir === dir).map((r) => {
    const others = [...r.others];
    const names = others.length > 3 ? others.length + ' statuses' : others.join(', ');
    return '<tr><td>' + esc(r.event) + '</td><td>' + (dir === 'in' ? 'from ' : 'to ') + esc(names) + '</td><td data-rate>' + r.n + '/min</td></tr>';
  }).join('') || '<tr><td>none</td></tr>';
  const html = '<h3>' + esc(status) + ': ' + live + ' live' + (s?.doc ? ' <small>(' + esc(s.doc) + ')</small>' : '') + '</h3>' +
    '<table class="in"><thead><tr><th colspan="3">in</th></tr></thead><tbody>' + list('in') + '</tbody></table>' +
    '<table class="out"><thead><tr><th colspan="3">out</th></tr></thead><tbody>' + list('out') + '</tbody></table>';
  if (fresh) {
    detail.innerHTML = html;
    $('.steps', div)?.remove();
    if (s?.steps.length) {
      const steps = document.createElement('div');
      steps.className = 'steps';
      steps.innerHTML = '<h3>' + esc(status) + ': the steps of its operation</h3>';
      const box = viewer(await (await fetch('diagrams/' + m + '.' + status + '.svg')).text());
      steps.append(box);
      div.append(steps);
      box.fit();
    }
  } else {
    detail.querySelector('h3').outerHTML = html.slice(0, html.indexOf('</h3>') + 5);
    for (const dir of ['in', 'out']) detail.querySelector('table.' + dir + ' tbody').innerHTML = list(dir);
  }
}

let lastEventId;  // the newest transition the first counts include: the stream starts after it
async function refresh() {
  const s = await (await fetch('ui/state')).json();
  lastEventId ??= s.last_event_id;
  counts = s.counts;
  let total = 0;
  for (const m of MACHINES) {
    const byStatus = {};
    for (const [state, n] of Object.entries(counts[m] || {})) {
      const status = statusOf(state);
      const parked = spec[m].statuses.find((x) => x.name === status)?.parked;
      byStatus[parked ? 'parked' : status] = (byStatus[parked ? 'parked' : status] || 0) + n;
      total += n;
    }
    for (const g of document.querySelectorAll('#machine-' + m + ' .viewer g.node')) {
      const name = g.querySelector('title').textContent;
      const text = g.querySelector('text');
      if (!text || !text.dataset.label) continue;
      const n = byStatus[name] || 0;
      text.textContent = text.dataset.label + (n ? ' · ' + n : '');
      g.classList.toggle('held', n > 0);
      g.dataset.count = String(n);
    }
  }
  $('#status').textContent = total + ' live resources; ' + s.workers.length + ' workers; updated ' + new Date().toLocaleTimeString();
  $('#stuck tbody').innerHTML = s.stuck.map((r) => '<tr class="stuck"><td>' + esc(r.resource_type) + '</td><td>' + esc(r.resource_id) + '</td><td>' + esc(r.state) + '</td><td>for ' + r.for_s.toFixed(0) + ' s' + (r.usual_s != null ? ' (usually ' + r.usual_s.toFixed(1) + ' s)' : '') + '</td><td>' + esc(r.owner || 'no owner') + '</td></tr>').join('') || '<tr><td>none</td></tr>';
  $('#workers tbody').innerHTML = s.workers.map((w) => '<tr><td>' + esc(w.id) + '</td><td>' + w.heartbeat_age_s.toFixed(1) + ' s ago</td><td>' + w.owned + ' rows</td></tr>').join('');
}

/** Each overview edge and each many-state event with its rate in the last minute. */
function annotateEdges() {
  for (const m of MACHINES) {
    const { edges, groups, rest, table } = spec[m];
    const rate = new Map();
    for (const e of edges) rate.set(m + ':' + e.id, e.events.reduce((a, ev) => a + perMinute(m, e.from, ev, e.to), 0));
    for (const g of groups) {
      rate.set(m + ':' + rest + '->' + g.event, g.statuses.reduce((a, s) => a + perMinute(m, rest, g.event, s), 0));
      rate.set(m + ':' + g.event + '->' + rest, g.statuses.reduce((a, s) => a + perMinute(m, s, g.event, rest), 0));
    }
    for (const g of document.querySelectorAll('#machine-' + m + ' .viewer g.edge')) {
      const n = rate.get(g.id);
      if (n === undefined) continue;
      const text = g.querySelector('text');
      if (text) text.textContent = text.dataset.label + (n ? ' · ' + n + '/min' : '');
      g.dataset.perMinute = String(n);
    }
    const since = Date.now() - 60000;
    $('#machine-' + m + ' table.many tbody').innerHTML = table.map((r) => {
      let n = 0;
      for (const [k, times] of seen) if (k.startsWith(m + '|') && k.split('|')[2] === r.event) n += times.filter((x) => x > since).length;
      return '<tr><td>' + esc(r.event) + '</td><td>' + esc(r.by === 'api' ? 'client' : r.by) + (r.request ? ': ' + esc(r.request) : '') + '</td><td>' + esc(r.from.join(', ')) + '</td><td>' + esc(r.to.join(', ')) + '</td><td>' + n + '/min</td></tr>';
    }).join('');
    renderDetail(m, false);
  }
}
let pending;
const soon = () => { pending ??= setTimeout(() => { pending = undefined; refresh().then(annotateEdges); }, 300); };
function listen() {
  // From the counts' snapshot on, not from when the stream happens to connect: nothing between is lost.
  const es = new EventSource('v3/events?all_tenants=1' + (lastEventId === undefined ? '' : '&last_event_id=' + lastEventId));
  es.addEventListener('transition', (e) => {
    const t = JSON.parse(e.data);
    if (t.from) {
      const key = t.resource_type + '|' + statusOf(t.from) + '|' + t.event + '|' + statusOf(t.to);
      seen.set(key, [...(seen.get(key) || []), Date.now()].slice(-1000));
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
window.addEventListener('resize', () => { for (const b of document.querySelectorAll('.viewer')) b.fit(); });
draw().then(refresh).then(annotateEdges).then(listen).then(() => { document.body.dataset.ready = '1'; });
</script></body></html>`;

/** A row is stuck-looking after this many times the usual time in its state. */
const STUCK_FACTOR = 10;

export const uiRoutes: FastifyPluginAsync<{ status: StatusService; stuckFloorS?: number }> = async (app, opts) => {
  app.get('/ui', async (_req, reply) => reply.type('text/html; charset=utf-8').send(PAGE));
  app.get('/ui/state', async () => opts.status.overview({ factor: STUCK_FACTOR, floorS: opts.stuckFloorS ?? 5 }));
};
