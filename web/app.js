// The dashboard's script: pages drawn from the REST API and kept live by the
// event stream. Everything the cluster says goes into the page as text
// (textContent, setAttribute), never as markup.
'use strict';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

// An element: attrs (class, aria-*, on* handlers as functions) and children
// (nodes, or strings that become text).
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  return fill(e, attrs, kids);
}
function s(tag, attrs, ...kids) {
  return fill(document.createElementNS(SVG, tag), attrs, kids);
}
// Replace el's children with kids, leaving out the absent ones (null, false).
function put(el, ...kids) {
  el.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
}
function fill(e, attrs, kids) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class' && !(e instanceof SVGElement)) e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

// ---- formatting (times in the browser's own zone) ----

const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleString() : '—');
const fmtShortTime = (t, span) => new Date(t * 1000).toLocaleString(undefined,
  span > 2 * 86400 ? { month: 'short', day: 'numeric' } : { hour: '2-digit', minute: '2-digit' });
function fmtBytes(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i && Math.abs(n) < 10 ? n.toFixed(1) : Math.round(n)) + ' ' + u[i];
}
const fmtRate = (n) => fmtBytes(n) + '/s';
const fmtPct = (x) => (typeof x === 'number' && isFinite(x) ? (x * 100).toFixed(x < 0.1 ? 1 : 0) + ' %' : '—');
function fmtUptime(sec) {
  if (typeof sec !== 'number' || sec <= 0) return '—';
  const d = Math.floor(sec / 86400), hh = Math.floor((sec % 86400) / 3600), m = Math.floor((sec % 3600) / 60);
  return d ? `${d} d ${hh} h` : hh ? `${hh} h ${m} min` : `${m} min`;
}
const num = (x) => (typeof x === 'number' && isFinite(x) ? x : null);

// ---- the API ----

const state = { busy: 0, redrawing: false, session: null, guests: new Map(), cluster: null, es: null, lastEvent: 0, runEvents: [], charts: new Map() };

class ApiError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (opts.method && opts.method !== 'GET' && state.session && state.session.csrf)
    headers['X-CSRF-Token'] = state.session.csrf;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method: opts.method || 'GET', headers, credentials: 'same-origin',
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (r.status === 401) { showLogin('Your session has ended: log in again.'); throw new ApiError(401, 'not logged in'); }
  if (!r.ok) throw new ApiError(r.status, (body && body.error && body.error.message) || `${r.status} ${r.statusText}`);
  return body;
}

const can = (role) => {
  const order = { viewer: 1, operator: 2, admin: 3 };
  return state.session && order[state.session.role] >= order[role];
};

// ---- login ----

function showLogin(msg) {
  state.session = null;
  if (state.es) { state.es.close(); state.es = null; }
  $('nav').hidden = true;
  $('who').hidden = true;
  put($('app'));
  $('login').hidden = false;
  $('login-error').textContent = msg || '';
  banner(null);
  $('token').focus();
}

async function login(ev) {
  ev.preventDefault();
  const tok = $('token').value.trim();
  $('login-error').textContent = '';
  const r = await fetch('/ui/login', { method: 'POST', credentials: 'same-origin', headers: { Authorization: 'Bearer ' + tok } });
  $('token').value = '';
  if (!r.ok) {
    let m = `${r.status} ${r.statusText}`;
    try { m = (await r.json()).error.message; } catch (e) { /* keep the status */ }
    $('login-error').textContent = 'Login failed: ' + m;
    return;
  }
  started(await r.json());
}

async function logout() {
  try { await api('/ui/logout', { method: 'POST' }); } catch (e) { /* ended anyway */ }
  showLogin('Logged out.');
}

function started(session) {
  state.session = session;
  $('login').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  $('who-name').textContent = `${session.name} (${session.role})`;
  document.body.dataset.role = session.role;
  connect();
  route();
}

// ---- the event stream: live figures, a banner while it is lost ----

function banner(text, kind) {
  const b = $('banner');
  b.hidden = !text;
  b.textContent = text || '';
  b.className = 'banner ' + (kind || '');
}

// Draw the page again after news from the stream; not while someone types in
// one of its fields or answers a confirmation (that would wipe what they did).
let refreshTimer = null;
const userBusy = () => state.busy || $('confirm').open ||
  (document.activeElement && document.activeElement.matches('#app input, #app select, #app textarea'));
// A redraw that finds the user busy when its answers arrive gives way (page()
// throws it): what they typed stays.
class Deferred extends Error {}
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    if (!state.session) return;
    if (userBusy()) {
      refreshSoon();
      return;
    }
    route(true);
  }, 300);
}

function connect() {
  if (state.es) state.es.close();
  // the browser sends Last-Event-ID itself when it reconnects this stream
  const es = new EventSource('/api/v1/events');
  state.es = es;
  let lost = false;
  es.onopen = () => { if (lost) { banner(null); refreshSoon(); } lost = false; };
  es.onerror = () => {
    lost = true;
    banner('Connection to pvelab lost — reconnecting…', 'warn');
    if (es.readyState === EventSource.CLOSED) {
      // a refused stream (the session ended?): start over after a pause
      setTimeout(async () => {
        try { await api('/ui/session'); if (state.es === es) connect(); } catch (e) { /* login shown */ }
      }, 3000);
    }
  };
  const on = (type, fn) => es.addEventListener(type, (e) => {
    state.lastEvent = Number(e.lastEventId) || state.lastEvent;
    let d = null;
    try { d = JSON.parse(e.data); } catch (err) { return; }
    fn(d);
  });
  on('guest', (d) => {
    const g = state.guests.get(d.vmid);
    if (g && d.seen === 'status') {
      for (const k of ['name', 'node', 'status', 'lock']) if (k in d) g[k] = d[k];
      updateGuest(g);
    } else {
      refreshSoon();
    }
    activity(d);
  });
  on('sync', (d) => { if (d.state === 'ok') refreshSoon(); });
  on('status', (d) => {
    if (d.state === 'failed') banner('The cluster does not answer: ' + (d.error || '?'), 'warn');
    else banner(null);
  });
  on('action', (d) => { actionDone(d); });
  on('run', (d) => {
    // kept, so that a run's page opened after its first steps shows them too
    state.runEvents.push(d);
    if (state.runEvents.length > 1000) state.runEvents.splice(0, 500);
    if (window.onRun) window.onRun(d);
  });
  on('reset', () => refreshSoon());
  // the pages that show them follow the server's planning and the checks
  const on_page = (...names) => names.some((n) => (location.hash || '#/overview').startsWith(`#/${n}`));
  on('drift', () => { if (on_page('overview')) refreshSoon(); });
  on('check', () => { if (on_page('checks', 'check/')) refreshSoon(); });
  on('alert', () => { if (on_page('checks')) refreshSoon(); });
}

// Guest rows and badges on the page follow the stream without a reload.
function updateGuest(g) {
  for (const row of document.querySelectorAll(`[data-vmid="${CSS.escape(String(g.vmid))}"]`)) {
    const st = row.querySelector('.status');
    if (st) st.replaceWith(statusBadge(g.status, g.lock));
    const nd = row.querySelector('.node');
    if (nd) nd.textContent = g.node || '';
  }
  const gs = document.querySelector('#guests-table');
  if (gs) applyFilters();
  const counts = document.querySelector('#state-counts');
  if (counts) counts.replaceWith(stateCounts());
}

const recent = [];
function activity(d) {
  recent.unshift({ at: Date.now() / 1000, d });
  recent.length = Math.min(recent.length, 20);
  const list = $('activity');
  if (list) list.replaceWith(activityList());
}

function activityList() {
  if (!recent.length) return h('p', { id: 'activity', class: 'muted' }, 'No change seen since this page opened.');
  return h('ul', { id: 'activity', class: 'activity' }, recent.map(({ at, d }) => h('li', {},
    h('time', { datetime: new Date(at * 1000).toISOString() }, new Date(at * 1000).toLocaleTimeString()), ' ',
    h('a', { href: `#/guest/${d.vmid}` }, d.name || String(d.vmid)), ' ',
    d.seen === 'status' ? `is ${d.status || '?'}${d.lock ? ' (locked: ' + d.lock + ')' : ''}` : `${d.kind || 'changed'} (sync run ${d.run_id || '?'})`)));
}

// ---- shared pieces ----

function statusBadge(status, lock) {
  const st = status || 'unknown';
  return h('span', { class: `status badge st-${st.replace(/[^a-z]/g, '')}` }, st, lock ? ` · ${lock}` : '');
}

// Tags get a colour from their name, as PVE gives them by default; its hue
// only, so that the text on it stays readable in both themes (app.css).
function tagChip(tag) {
  let hash = 0;
  for (const c of tag) hash = ((hash << 5) - hash + c.codePointAt(0)) | 0;
  const e = h('span', { class: 'tag' }, tag);
  e.style.setProperty('--hue', String(Math.abs(hash) % 360));
  return e;
}
const tagsOf = (g) => (g.tags ? String(g.tags).split(/[;, ]+/).filter(Boolean) : []);

function bar(used, max, label) {
  const frac = num(used) !== null && num(max) ? Math.min(1, used / max) : 0;
  const wrap = h('div', { class: 'bar', role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(frac * 100) });
  const fillEl = h('div', { class: 'fill' + (frac > 0.9 ? ' hot' : frac > 0.75 ? ' warm' : '') });
  fillEl.style.width = (frac * 100).toFixed(1) + '%';
  wrap.append(fillEl);
  return wrap;
}

function table(caption, cols, rows, attrs) {
  return h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', attrs || {},
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows)));
}

function section(title, ...kids) {
  const id = 'h-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...kids);
}

function page(title, ...kids) {
  if (state.redrawing && userBusy()) throw new Deferred();
  document.title = `${title} · pvelab`;
  for (const a of document.querySelectorAll('#nav a'))
    a.toggleAttribute('aria-current', location.hash.startsWith(a.getAttribute('href')));
  put($('app'), h('h1', {}, title), ...kids);
}

function failure(e) {
  if (e instanceof ApiError && e.status === 401) return;
  put($('app'), h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, e.message));
}

async function loadGuests() {
  const list = await api('/api/v1/guests');
  state.guests = new Map(list.map((g) => [g.vmid, g]));
  return list;
}

// ---- charts: inline SVG from PVE's round-robin data ----

const TIMEFRAMES = ['hour', 'day', 'week', 'month', 'year'];
const CHART_W = 640, CHART_H = 170, PAD_L = 64, PAD_B = 24, PAD_T = 8, PAD_R = 10;

function chart(title, series, points, fmt, fixedMax) {
  const xs = points.map((p) => p.time);
  let max = fixedMax || 0;
  for (const sr of series) for (const p of points) { const v = num(sr.get(p)); if (v !== null && v > max) max = v; }
  if (!max) max = 1;
  const t0 = xs[0], t1 = xs[xs.length - 1], span = Math.max(1, t1 - t0);
  const X = (t) => PAD_L + ((t - t0) / span) * (CHART_W - PAD_L - PAD_R);
  const Y = (v) => CHART_H - PAD_B - (v / max) * (CHART_H - PAD_B - PAD_T);
  const last = series.map((sr) => { for (let i = points.length - 1; i >= 0; i--) { const v = num(sr.get(points[i])); if (v !== null) return v; } return null; });
  const summary = `${title}: ` + series.map((sr, i) => `${sr.name} now ${last[i] === null ? 'unknown' : fmt(last[i])}`).join(', ') + `; peak ${fmt(max)}.`;
  const svg = s('svg', { viewBox: `0 0 ${CHART_W} ${CHART_H}`, role: 'img', 'aria-label': summary, class: 'chart', preserveAspectRatio: 'none' },
    s('title', {}, summary));
  for (const f of [0, 0.5, 1]) {
    const y = Y(max * f);
    svg.append(s('line', { x1: PAD_L, x2: CHART_W - PAD_R, y1: y, y2: y, class: 'grid' }),
      s('text', { x: PAD_L - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, fmt(max * f)));
  }
  if (points.length) {
    svg.append(s('text', { x: PAD_L, y: CHART_H - 6, class: 'axis' }, fmtShortTime(t0, span)),
      s('text', { x: CHART_W - PAD_R, y: CHART_H - 6, 'text-anchor': 'end', class: 'axis' }, fmtShortTime(t1, span)));
  }
  series.forEach((sr, i) => {
    // a gap where PVE has no value (the guest was off)
    let d = '', pen = false;
    for (const p of points) {
      const v = num(sr.get(p));
      if (v === null) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${X(p.time).toFixed(1)},${Y(v).toFixed(1)}`;
      pen = true;
    }
    if (d) svg.append(s('path', { d, class: `line c${i}` }));
  });
  return h('figure', { class: 'chart-box' }, h('figcaption', {}, h('strong', {}, title), ' ',
    series.map((sr, i) => h('span', { class: `legend c${i}` }, `${sr.name} ${last[i] === null ? '—' : fmt(last[i])}`))), svg);
}

async function charts(kind, id, box, tf) {
  const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': 'Timeframe' },
    TIMEFRAMES.map((t) => h('button', { type: 'button', class: 'secondary', 'aria-pressed': String(t === tf), onclick: () => charts(kind, id, box, t) }, t)));
  // the charts drawn last stay while the new ones load (the page is drawn
  // again on every sync; no flicker)
  const key = `${kind}/${id}/${tf}`;
  put(box, tabs, state.charts.get(key) || h('p', { class: 'muted' }, 'Loading charts…'));
  let d;
  try {
    d = await api(`/api/v1/${kind}/${encodeURIComponent(id)}/rrddata?timeframe=${tf}`);
  } catch (e) {
    put(box, tabs, h('p', { class: 'error' }, 'Charts: ' + e.message));
    return;
  }
  const pts = (Array.isArray(d.series) ? d.series : []).filter((p) => p && num(p.time) !== null);
  const node = kind === 'nodes';
  const memUsed = node ? (p) => p.memused ?? p.mem : (p) => p.mem;
  const memMax = node ? (p) => p.memtotal ?? p.maxmem : (p) => p.maxmem;
  let memTop = 0;
  for (const p of pts) memTop = Math.max(memTop, num(memMax(p)) || 0);
  const grid = h('div', { class: 'charts' },
    chart('CPU', [{ name: 'cpu', get: (p) => (num(p.cpu) === null ? null : p.cpu) }], pts, fmtPct, 0),
    chart('Memory', [{ name: 'used', get: memUsed }], pts, fmtBytes, memTop),
    chart('Network', [{ name: 'in', get: (p) => p.netin }, { name: 'out', get: (p) => p.netout }], pts, fmtRate, 0),
    node ? chart('Load', [{ name: 'load', get: (p) => p.loadavg }, { name: 'iowait', get: (p) => (num(p.iowait) === null ? null : p.iowait * 100) }], pts, (v) => v.toFixed(2), 0)
      : chart('Disk I/O', [{ name: 'read', get: (p) => p.diskread }, { name: 'write', get: (p) => p.diskwrite }], pts, fmtRate, 0));
  const drawn = h('div', {}, grid, h('p', { class: 'muted small' }, `From PVE's round-robin data, read ${fmtTime(d.fetched)}.`));
  state.charts.clear();
  state.charts.set(key, drawn);
  put(box, tabs, drawn);
}

// ---- pages ----

function stateCounts() {
  const by = {};
  for (const g of state.guests.values()) {
    if (g.template) continue;
    by[g.status || 'unknown'] = (by[g.status || 'unknown'] || 0) + 1;
  }
  return h('ul', { id: 'state-counts', class: 'counts' }, Object.keys(by).sort().map((k) =>
    h('li', {}, statusBadge(k), h('span', { class: 'count', 'data-state': k }, String(by[k])))));
}

// A run in a few words: a sync's counts, an apply's changes.
function runSummary(r) {
  const x = r.result || r.summary || {};
  const parts = [];
  if (typeof x.added === 'number') parts.push(`+${x.added} ~${x.changed || 0} -${x.removed || 0}`);
  if (Array.isArray(x.changes)) parts.push(`${x.changes.length} change${x.changes.length === 1 ? '' : 's'}`);
  if (r.project) parts.push(`project ${r.project}`);
  return parts.join(' · ');
}

// Managed guests whose live config differs from pvelab.yaml and the reboots
// pending: the server plans after every sync (GET /api/v1/drift).
function driftSummary(d) {
  if (!d.config) return h('div', { id: 'drift' }, h('p', { class: 'muted' }, 'No guests declared in pvelab.yaml: nothing to drift from.'));
  if (d.planned_at === null) {
    return h('div', { id: 'drift' }, h('p', { class: d.error ? 'error' : 'muted' },
      d.error ? 'No plan could be made: ' + d.error : 'The server plans after its next sync.'));
  }
  const ch = d.changes || [];
  const upd = ch.filter((c) => c.action === 'update' || c.action === 'replace');
  const pending = ch.filter((c) => c.class === 'reboot').length + (d.pending || []).length;
  return h('div', { id: 'drift' },
    h('p', {}, h('span', { class: 'count' }, String(d.differ)), d.differ === 1 ? ' managed guest differs' : ' managed guests differ', ' from the config, ',
      h('span', { class: 'count' }, String(pending)), pending === 1 ? ' needs a reboot, ' : ' need a reboot, ', h('span', { class: 'count' }, String(ch.length - upd.length)), ' other changes.'),
    upd.length ? h('ul', {}, upd.map((c) => h('li', {}, h('a', { href: `#/guest/${c.vmid}` }, c.guest), ' ', h('span', { class: 'small' }, c.action), ' ', classBadge(c.class)))) : null,
    (d.pending || []).length ? h('ul', {}, d.pending.map((x) => h('li', {}, h('a', { href: `#/guest/${x.vmid}` }, x.guest), ` ${x.keys} key${x.keys === 1 ? '' : 's'} pending a reboot`))) : null,
    d.error ? h('p', { class: 'error' }, 'The last plan failed: ' + d.error) : null,
    h('p', { class: 'small' }, `As planned by the server ${fmtTime(d.planned_at)}. `, h('a', { href: '#/plan' }, 'Plan & apply')));
}

// A node's API certificate: days left, warning under 30, failing under 7.
function certCell(certs) {
  if (!certs.length) return h('td', { class: 'muted' }, '—');
  const c = certs.reduce((a, b) => (b.notafter < a.notafter ? b : a));
  const st = { ok: 'ok', warning: 'paused', critical: 'failed', expired: 'failed' }[c.state] || 'unknown';
  return h('td', { class: 'cert', 'data-days': c.days_left },
    h('span', { class: `badge st-${st}` }, c.state === 'expired' ? 'expired' : `${c.days_left} d`), ' ',
    h('span', { class: 'small' }, new Date(c.notafter * 1000).toLocaleDateString()));
}

// Storage usage: one compact meter per storage of each node.
function storageList(list) {
  return h('ul', { class: 'storages', id: 'storage-list' }, list.map((st) => h('li', { 'data-storage': `${st.node}/${st.storage}` },
    h('div', {}, h('strong', {}, st.storage), h('span', { class: 'small muted' }, ` on ${st.node} · ${st.plugintype || '?'}${st.shared ? ' · shared' : ''}`)),
    st.maxdisk ? bar(st.disk, st.maxdisk, `${st.storage} on ${st.node}`) : null,
    h('span', { class: 'small usage' }, st.maxdisk ? `${fmtBytes(st.disk)} / ${fmtBytes(st.maxdisk)} (${fmtPct(st.used_fraction)})` : (st.status || '—')))));
}

function historyRow(r) {
  const who = r.vmid ? h('a', { href: `#/guest/${r.vmid}` }, r.name || String(r.vmid)) : h('span', {}, r.guest);
  return h('tr', { 'data-history': r.id },
    h('td', {}, h('time', { datetime: new Date(r.ts * 1000).toISOString() }, fmtTime(r.ts))),
    h('th', { scope: 'row', class: 'who' }, who, r.vmid ? h('span', { class: 'small muted' }, ` ${r.vmid}`) : null),
    h('td', {}, r.node || '—'),
    h('td', {}, h('span', { class: `badge kind-${r.kind}` }, r.kind)),
    h('td', {}, r.run ? h('a', { href: `#/run/${r.run}` }, String(r.run)) : '—'),
    h('td', {}, changesDetails(r.changes) || h('span', { class: 'muted' }, 'no change')));
}
const HISTORY_COLS = ['When', 'Guest', 'Node', 'Kind', 'Run', 'Changes'];

async function overview() {
  const [cl, , runs, certs, stores, drift, hist] = await Promise.all([api('/api/v1/cluster'), loadGuests(), api('/api/v1/runs?limit=8'),
    api('/api/v1/certificates'), api('/api/v1/storages'), api('/api/v1/drift'), api('/api/v1/history?limit=6')]);
  state.cluster = cl;
  const nodes = cl.nodes || [];
  const gq = (cl.guests && cl.guests.qemu) || {}, gl = (cl.guests && cl.guests.lxc) || {};
  const sum = (o) => Object.values(o).reduce((a, b) => a + (num(b) || 0), 0);
  const online = nodes.filter((n) => n.status === 'online').length;
  const tiles = h('ul', { class: 'tiles' },
    h('li', {}, h('span', { class: 'big', id: 'tile-nodes' }, `${online}/${nodes.length}`), 'nodes online'),
    h('li', {}, h('span', { class: 'big', id: 'tile-guests' }, String(cl.guests ? cl.guests.total : 0)), 'guests'),
    h('li', {}, h('span', { class: 'big' }, String(sum(gq))), 'VMs'),
    h('li', {}, h('span', { class: 'big' }, String(sum(gl))), 'containers'),
    h('li', {}, h('span', { class: 'big small' }, cl.last_sync ? fmtTime(cl.last_sync.finished || cl.last_sync.started) : 'never'), 'last sync'));
  const nodeRows = nodes.map((n) => h('tr', { 'data-node': n.node },
    h('th', { scope: 'row' }, h('a', { href: `#/node/${encodeURIComponent(n.node)}` }, n.node)),
    h('td', {}, statusBadge(n.status)),
    h('td', {}, bar(n.cpu, 1, `CPU of ${n.node}`), h('span', { class: 'small' }, `${fmtPct(n.cpu)} of ${n.maxcpu || '?'} CPUs`)),
    h('td', {}, bar(n.mem, n.maxmem, `memory of ${n.node}`), h('span', { class: 'small' }, `${fmtBytes(n.mem)} / ${fmtBytes(n.maxmem)}`)),
    h('td', {}, bar(n.disk, n.maxdisk, `root disk of ${n.node}`), h('span', { class: 'small' }, `${fmtBytes(n.disk)} / ${fmtBytes(n.maxdisk)}`)),
    h('td', {}, fmtUptime(n.uptime)),
    certCell(certs.certificates.filter((c) => c.node === n.node)),
    h('td', { class: 'small' }, n.pveversion || '—')));
  const runRows = (runs || []).map((r) => h('tr', {},
    h('td', {}, h('a', { href: `#/run/${r.id}` }, String(r.id))), h('td', {}, r.kind), h('td', {}, statusBadge(r.status)),
    h('td', {}, fmtTime(r.started)),
    h('td', { class: 'small' }, runSummary(r))));
  page('Overview',
    tiles,
    section('Nodes', table('Nodes', ['Node', 'Status', 'CPU', 'Memory', 'Root disk', 'Uptime', 'Certificate', 'Version'], nodeRows, { id: 'nodes-table' })),
    h('div', { class: 'cols' },
      section('Guests by state', stateCounts(), h('p', {}, h('a', { href: '#/guests' }, 'All guests'))),
      section('Activity', activityList()),
      section('Drift', driftSummary(drift))),
    section('Storage', stores.length ? storageList(stores) : h('p', { class: 'muted' }, 'No storage seen yet.')),
    section('Recent history', hist.items.length ? table('Recent history', HISTORY_COLS, hist.items.map(historyRow), { id: 'recent-history' }) : h('p', { class: 'muted' }, 'Nothing recorded yet.'),
      h('p', {}, h('a', { href: '#/history' }, 'All history'))),
    section('Recent runs', runRows.length ? table('Recent runs', ['Run', 'Kind', 'Status', 'Started', 'Summary'], runRows) : h('p', { class: 'muted' }, 'No runs yet.')));
}

const filters = { q: '', node: '', type: '', status: '', tag: '', sort: 'vmid', dir: 1 };

function applyFilters() {
  const tb = document.querySelector('#guests-table tbody');
  if (!tb) return;
  const q = filters.q.toLowerCase();
  let list = [...state.guests.values()].filter((g) =>
    (!filters.node || g.node === filters.node) && (!filters.type || g.type === filters.type) &&
    (!filters.status || g.status === filters.status) && (!filters.tag || tagsOf(g).includes(filters.tag)) &&
    (!q || String(g.vmid).includes(q) || (g.name || '').toLowerCase().includes(q) || tagsOf(g).some((t) => t.toLowerCase().includes(q))));
  const k = filters.sort;
  list.sort((a, b) => {
    const va = k === 'mem' ? (a.mem || 0) : a[k], vb = k === 'mem' ? (b.mem || 0) : b[k];
    return (typeof va === 'number' && typeof vb === 'number' ? va - vb : String(va ?? '').localeCompare(String(vb ?? ''))) * filters.dir;
  });
  put(tb, ...list.map((g) => h('tr', { 'data-vmid': g.vmid },
    h('td', {}, String(g.vmid)),
    h('th', { scope: 'row' }, h('a', { href: `#/guest/${g.vmid}`, class: 'guest-name' }, g.name || `(vmid ${g.vmid})`)),
    h('td', {}, g.type === 'lxc' ? 'CT' : 'VM', g.template ? ' · template' : ''),
    h('td', { class: 'node' }, g.node || ''),
    h('td', {}, statusBadge(g.status, g.lock)),
    h('td', {}, g.status === 'running' ? fmtPct(g.cpu) : '—'),
    h('td', {}, g.status === 'running' ? `${fmtBytes(g.mem)} / ${fmtBytes(g.maxmem)}` : fmtBytes(g.maxmem)),
    h('td', {}, tagsOf(g).map(tagChip)))));
  $('guest-count').textContent = `${list.length} of ${state.guests.size} guests`;
  for (const th of document.querySelectorAll('#guests-table th[data-key]'))
    th.setAttribute('aria-sort', th.dataset.key === k ? (filters.dir > 0 ? 'ascending' : 'descending') : 'none');
}

async function guests() {
  await loadGuests();
  const all = [...state.guests.values()];
  const uniq = (f) => [...new Set(all.flatMap(f))].filter(Boolean).sort();
  const select = (key, label, values) => h('label', {}, label + ' ',
    h('select', { onchange: (e) => { filters[key] = e.target.value; applyFilters(); } },
      h('option', { value: '' }, 'all'), values.map(([v, t]) => h('option', { value: v, selected: filters[key] === v }, t))));
  const sortTh = (key, label) => h('th', { scope: 'col', 'data-key': key },
    h('button', { type: 'button', class: 'sort', onclick: () => { filters.dir = filters.sort === key ? -filters.dir : 1; filters.sort = key; applyFilters(); } }, label));
  const bar_ = h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
    h('label', {}, 'Search ', h('input', { type: 'search', value: filters.q, placeholder: 'name, vmid or tag', oninput: (e) => { filters.q = e.target.value; applyFilters(); } })),
    select('node', 'Node', uniq((g) => [g.node]).map((v) => [v, v])),
    select('type', 'Type', [['qemu', 'VM'], ['lxc', 'CT']]),
    select('status', 'Status', uniq((g) => [g.status]).map((v) => [v, v])),
    select('tag', 'Tag', uniq(tagsOf).map((v) => [v, v])));
  page('Guests', bar_, h('p', { id: 'guest-count', class: 'muted', 'aria-live': 'polite' }),
    h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': 'Guests' },
      h('table', { id: 'guests-table' }, h('caption', { class: 'sr-only' }, 'Guests'),
        h('thead', {}, h('tr', {}, sortTh('vmid', 'VMID'), sortTh('name', 'Name'), sortTh('type', 'Type'), sortTh('node', 'Node'),
          sortTh('status', 'Status'), sortTh('cpu', 'CPU'), sortTh('mem', 'Memory'), h('th', { scope: 'col' }, 'Tags'))),
        h('tbody', {}))));
  applyFilters();
}

// A guest's config grouped as PVE's UI groups it.
const GROUPS = [
  ['Hardware', /^(memory|balloon|shares|sockets|cores|cpu|cpulimit|cpuunits|vcpus|numa\d*|numa|bios|machine|scsihw|vga|efidisk0|tpmstate0|hostpci\d+|usb\d+|serial\d+|parallel\d+|audio0|rng0|virtio\w*|watchdog|arch|swap|cmode|console|tty)$/],
  ['Disks', /^(scsi|sata|ide|virtio)\d+$|^(rootfs|mp\d+|unused\d+)$/],
  ['Network', /^(net\d+|nameserver|searchdomain|hostname)$/],
  ['Cloud-Init', /^(ci\w+|ipconfig\d+|sshkeys|cicustom|citype|ciupgrade)$/],
];
function groupConfig(cfg) {
  const out = { Hardware: [], Disks: [], Network: [], 'Cloud-Init': [], Options: [] };
  for (const k of Object.keys(cfg || {}).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))) {
    if (k === 'digest') continue;
    const g = GROUPS.find(([, re]) => re.test(k));
    out[g ? g[0] : 'Options'].push([k, cfg[k]]);
  }
  // a disk of a VM is listed under Hardware by PVE, a CD-ROM too; keep them apart here
  return Object.entries(out).filter(([, v]) => v.length);
}

const POWER = {
  start: { label: 'Start', when: (st) => st !== 'running' && st !== 'paused', ask: null },
  shutdown: { label: 'Shut down', when: (st) => st === 'running', ask: 'shut down cleanly (ACPI or init)' },
  reboot: { label: 'Reboot', when: (st) => st === 'running', ask: 'reboot cleanly' },
  stop: { label: 'Stop', when: (st) => st === 'running' || st === 'paused', ask: 'stop at once, like pulling the plug' },
  suspend: { label: 'Suspend', when: (st) => st === 'running', ask: 'pause (its memory stays on the node)' },
  resume: { label: 'Resume', when: (st) => st === 'paused' || st === 'suspended', ask: null },
};

function confirmDialog(title, text) {
  const dlg = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = title.split(' ')[0];
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = 'cancel';
    dlg.showModal();
  });
}

// Actions asked from this page, and the last one's outcome, which stays
// shown on its guest's page when the page is drawn again.
const pendingActions = new Map();
const endedActions = new Map(); // ended before their POST's answer was read
function actionDone(a) {
  const el = pendingActions.get(a.id);
  if (!el) {
    endedActions.set(a.id, a);
    if (document.querySelector(`.guest-head[data-vmid="${CSS.escape(String(a.vmid))}"]`)) refreshSoon();
    return;
  }
  const ok = a.state === 'ok';
  const err = a.result && (a.result.error || (a.result.results && a.result.results[0] && a.result.results[0].error));
  state.note = { vmid: a.vmid, text: `${a.action} ${a.snapshot ? a.snapshot + ' ' : ''}${ok ? 'done' : 'failed'}${!ok && err ? ': ' + err : ''}`, cls: ok ? 'ok' : 'error' };
  el.textContent = state.note.text;
  el.className = state.note.cls;
  pendingActions.delete(a.id);
  refreshSoon();
}

// Follow action a (its 202 answer) in element el until its event ends it.
function follow(a, el) {
  pendingActions.set(a.id, el);
  const ended = endedActions.get(a.id);
  if (ended) { endedActions.delete(a.id); actionDone(ended); }
}

async function power(g, verb) {
  const p = POWER[verb];
  const who = `${g.name || 'guest'} (${g.vmid})`;
  if (!(await confirmDialog(`${p.label} ${who}?`, `${p.label}: ${who} on ${g.node}${p.ask ? ' — ' + p.ask : ''}.`))) return;
  const out = $('action-status');
  out.className = '';
  out.textContent = `${p.label}: asking…`;
  try {
    const a = await api(`/api/v1/guests/${g.vmid}/${verb}`, { method: 'POST', body: {} });
    out.textContent = `${p.label}: running (action ${a.id})…`;
    follow(a, out);
  } catch (e) {
    out.className = 'error';
    out.textContent = `${p.label} refused: ${e.message}`;
  }
}

// A history row's changes: a disclosure with the diff from the row before.
const shown = (v) => (v === null || v === undefined ? '—' : String(typeof v === 'object' ? JSON.stringify(v) : v));
function changesDetails(changes) {
  if (!(changes || []).length) return null;
  return h('details', {}, h('summary', {}, `${changes.length} change${changes.length > 1 ? 's' : ''}`),
    h('table', { class: 'diff' }, h('caption', { class: 'sr-only' }, 'Changes'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Before'), h('th', { scope: 'col' }, 'After'))),
      h('tbody', {}, changes.map((c) => h('tr', {},
        h('td', {}, h('code', {}, c.key)), h('td', { class: 'old' }, shown(c.old)), h('td', { class: 'new' }, shown(c.new)))))));
}

function historyTimeline(hist) {
  if (!hist.length) return h('p', { class: 'muted' }, 'No history.');
  return h('ol', { class: 'timeline' }, hist.slice().reverse().map((r) => h('li', {},
    h('div', {}, h('span', { class: `badge kind-${r.kind}` }, r.kind), ' ',
      h('time', { datetime: new Date(r.ts * 1000).toISOString() }, fmtTime(r.ts)),
      r.run ? h('span', { class: 'muted' }, ` · run ${r.run}`) : null),
    changesDetails(r.changes))));
}

async function guest(id) {
  const [g, hist] = await Promise.all([api(`/api/v1/guests/${encodeURIComponent(id)}`),
    api(`/api/v1/guests/${encodeURIComponent(id)}/history`).catch(() => [])]);
  state.guests.set(g.vmid, Object.assign(state.guests.get(g.vmid) || {}, g));
  const buttons = can('operator') ? Object.entries(POWER).filter(([, p]) => p.when(g.status)).map(([verb, p]) =>
    h('button', { type: 'button', class: verb === 'stop' ? 'danger' : '', 'data-action': verb, onclick: () => power(g, verb) }, p.label)) : [];
  const cfg = groupConfig(g.config);
  const chartBox = h('div', {});
  const snapBox = h('div', {}, h('p', { class: 'muted' }, 'Reading snapshots from the node…'));
  const driftEl = h('div', {});
  page(g.name || `Guest ${g.vmid}`,
    h('div', { class: 'guest-head', 'data-vmid': g.vmid },
      statusBadge(g.status, g.lock), ' ',
      h('span', {}, `${g.type === 'lxc' ? 'Container' : 'VM'} ${g.vmid} on `), h('a', { href: `#/node/${encodeURIComponent(g.node)}` }, g.node),
      g.pool ? h('span', {}, ` · pool ${g.pool}`) : null, ' ', tagsOf(g).map(tagChip)),
    buttons.length ? h('div', { class: 'actions', role: 'group', 'aria-label': 'Power' }, buttons) : null,
    state.note && state.note.vmid === g.vmid ? h('p', { id: 'action-status', role: 'status', class: state.note.cls }, state.note.text)
      : h('p', { id: 'action-status', role: 'status' }),
    h('ul', { class: 'tiles' },
      h('li', {}, h('span', { class: 'big' }, g.status === 'running' ? fmtPct(g.cpu) : '—'), `CPU of ${g.maxcpu || '?'}`),
      h('li', {}, h('span', { class: 'big' }, fmtBytes(g.mem)), `memory of ${fmtBytes(g.maxmem)}`),
      h('li', {}, h('span', { class: 'big' }, fmtUptime(g.uptime)), 'uptime')),
    section('Declared vs live', driftEl),
    section('Charts', chartBox),
    section('Snapshots', snapBox),
    h('div', { class: 'cols' }, cfg.map(([name, rows]) => section(name,
      h('dl', { class: 'kv' }, rows.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v)))))))),
    (g.tasks || []).length ? section('Recent tasks', table('Recent tasks', ['Task', 'Status', 'Started'], g.tasks.slice(0, 10).map((t) =>
      h('tr', {}, h('td', {}, t.type || '?'), h('td', {}, t.status || t.exitstatus || ''), h('td', {}, fmtTime(t.starttime)))))) : null,
    section('History', historyTimeline(hist), h('p', {}, h('a', { href: `#/history/${g.vmid}` }, 'On the History page'))));
  charts('guests', g.vmid, chartBox, 'hour');
  snapshotsBox(g, snapBox);
  driftBox(g, driftEl);
}

async function nodePage(name) {
  const cl = await api('/api/v1/cluster');
  const n = (cl.nodes || []).find((x) => x.node === name);
  if (!n) throw new ApiError(404, `no node '${name}'`);
  const chartBox = h('div', {});
  page(`Node ${n.node}`,
    h('div', { class: 'guest-head' }, statusBadge(n.status), ' ', n.pveversion || ''),
    h('ul', { class: 'tiles' },
      h('li', {}, h('span', { class: 'big' }, fmtPct(n.cpu)), `CPU of ${n.maxcpu || '?'}`),
      h('li', {}, h('span', { class: 'big' }, fmtBytes(n.mem)), `memory of ${fmtBytes(n.maxmem)}`),
      h('li', {}, h('span', { class: 'big' }, fmtUptime(n.uptime)), 'uptime')),
    section('Charts', chartBox));
  charts('nodes', n.node, chartBox, 'hour');
}

async function runsPage() {
  const runs = await api('/api/v1/runs?limit=50');
  page('Runs', table('Runs', ['Run', 'Kind', 'Status', 'Started', 'Finished', 'Summary'], runs.map((r) => h('tr', {},
    h('td', {}, h('a', { href: `#/run/${r.id}` }, String(r.id))), h('td', {}, r.kind), h('td', {}, statusBadge(r.status)), h('td', {}, fmtTime(r.started)), h('td', {}, fmtTime(r.finished)), h('td', { class: 'small' }, runSummary(r))))));
}

// ---- plans, runs and snapshots (the runs engine: src/serve/runs.h) ----

// The newest plan made from this tab (plans are kept 15 minutes on the server).
async function latestPlan() {
  const id = sessionStorage.getItem('plan');
  if (!id) return null;
  try { return await api(`/api/v1/plans/${encodeURIComponent(id)}`); } catch (e) { sessionStorage.removeItem('plan'); return null; }
}

async function makePlan(opts) {
  const p = await api('/api/v1/plans', { method: 'POST', body: opts || {} });
  sessionStorage.setItem('plan', p.id);
  return p;
}

// The change's sign as `pvelab plan` prints it.
const SIGN = { create: '+', update: '~', replace: '-/+', delete: '-', start: '>', stop: '.', bridge: '~' };

function classBadge(c) {
  return h('span', { class: `badge cls cls-${String(c || 'none').replace(/[^a-z]/g, '')}` }, c || '—');
}

function diffTable(diffs, caption) {
  return table(caption, ['Key', 'Live', 'Declared', 'Class'], (diffs || []).map((d) => h('tr', {},
    h('td', {}, h('code', {}, d.key)), h('td', { class: 'old' }, d.from ?? '(none)'), h('td', { class: 'new' }, d.to ?? '(none)'),
    h('td', {}, classBadge(d.class), d.blocked ? ' blocked' : '', d.note ? h('span', { class: 'small' }, ' ' + d.note) : null))), { class: 'diff' });
}

function changeItem(c) {
  const what = `${c.guest || c.name || c.bridge || '?'}` + (c.vmid ? ` (${c.type || ''} ${c.vmid}${c.node ? ' on ' + c.node : ''})` : '');
  return h('li', { class: 'change', 'data-guest': c.guest || '' },
    h('div', {}, h('code', { class: 'sign' }, SIGN[c.action] || '?'), ' ', h('strong', { class: 'action' }, c.action), ' ',
      h('span', { class: 'what' }, what), ' ', classBadge(c.class), c.reboot && !c.running ? '' : c.reboot ? h('span', { class: 'small' }, ' pending until reboot') : null),
    c.diffs && c.diffs.length ? diffTable(c.diffs, `Changes to ${c.guest}`) : null,
    c.config && c.action !== 'update' ? h('p', { class: 'small' }, Object.entries(c.config).map(([k, v]) => `${k}=${v}`).join(' ')) : null,
    (c.steps || []).length ? h('p', { class: 'small steps' }, 'steps: ' + c.steps.join(', ')) : null);
}

// The summary line as the CLI ends its plan with it.
function planSummary(sm) {
  const n = (k) => sm[k] || 0;
  return `Plan: ${n('create')} to create, ${n('update')} to update, ${n('replace')} to replace, ${n('delete')} to delete, ` +
    `${n('start')} to start, ${n('stop')} to stop, ${n('bridge')} bridge${n('bridge') === 1 ? '' : 's'}, ${n('reboot')} reboot${n('reboot') === 1 ? '' : 's'}.` +
    (n('stacks') ? ` Stacks: ${n('stacks')} to deploy after the changes.` : '');
}

function planView(kept) {
  const p = kept.plan || {};
  const changes = p.changes || [];
  const blocked = p.blocked || [];
  // the stacks apply deploys after the changes (docs/stacks.md)
  const stacks = (p.stacks || []).filter((st) => st.action !== 'unchanged');
  const items = [
    h('p', { class: 'small' }, `Plan ${kept.id.slice(0, 8)}… of ${p.config || 'the config'} (project ${p.project || '?'}), made ${fmtTime(kept.created)} by ${kept.who || '?'}; kept until ${fmtTime(kept.expires)}.`),
  ];
  items.push(changes.length ? h('ul', { class: 'changes', id: 'plan-changes' }, changes.map(changeItem))
    : h('p', { id: 'plan-changes' }, blocked.length ? 'Nothing can be applied: every difference is blocked.' : stacks.length ? 'No guest changes.' : 'No changes: the cluster matches the config.'));
  if (stacks.length) items.push(h('h3', {}, 'Stacks to deploy after the changes'), h('ul', { class: 'changes', id: 'plan-stacks' }, stacks.map((st) => h('li', {},
    h('strong', {}, `${st.action === 'create' ? '+' : '~'} ${st.guest}/${st.name}`), ` ${st.action}`,
    h('span', { class: 'small' }, ' · ' + (st.files || []).filter((f) => f.change).map((f) => f.path + (f.secret ? ' (secret)' : '')).join(', '))))));
  if (blocked.length) items.push(h('h3', {}, 'Blocked'), h('ul', { class: 'blocked' }, blocked.map((b) => h('li', {}, h('strong', {}, b.guest || b.name || '?'), ': ', b.reason || b.message || JSON.stringify(b)))));
  if ((p.pending || []).length) items.push(h('h3', {}, 'Pending reboots'), h('ul', {}, p.pending.map((x) => h('li', {}, typeof x === 'object' ? `${x.guest || x.name || x.vmid}: ${(x.keys || []).join(', ')}` : String(x)))));
  if ((p.unmanaged || []).length) items.push(h('p', { class: 'small' }, `${p.unmanaged.length} guests are not managed by pvelab (never touched): ` + p.unmanaged.map((u) => `${u.vmid} ${u.name || ''}`).join(', ')));
  items.push(h('p', { id: 'plan-summary', class: 'summary' }, planSummary(p.summary || {})));
  return items;
}

async function planPage() {
  const opts = { reboot: false, allow_replace: false, allow_delete: false, no_snapshot: false };
  const out = h('div', { id: 'plan-out' });
  const show = async (kept) => {
    const applicable = kept && ((kept.plan.changes || []).length > 0 || (kept.plan.summary || {}).stacks > 0);
    put(out, ...(kept ? planView(kept) : [h('p', { class: 'muted' }, 'No plan yet.')]),
      applicable && can('admin') ? h('div', { class: 'actions' }, h('button', { type: 'button', id: 'apply', class: 'danger', onclick: () => applyPlan(kept) }, 'Apply this plan')) : null);
  };
  const form = can('admin') ? h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault();
    put(out, h('p', { role: 'status' }, 'Planning against the cluster…'));
    state.busy++; // a sync meanwhile must not draw the page again under the plan
    try { await show(await makePlan(opts)); } catch (err) { put(out, h('p', { class: 'error', role: 'alert' }, 'Plan refused: ' + err.message)); } finally { state.busy--; }
  } },
  ...[['reboot', 'Reboot where a change needs it'], ['allow_replace', 'Allow replace'], ['allow_delete', 'Allow delete'], ['no_snapshot', 'No snapshot first']].map(([k, label]) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', onchange: (e) => { opts[k] = e.target.checked; } }), ' ' + label)),
  h('button', { type: 'submit', id: 'make-plan' }, 'Plan')) : h('p', { class: 'muted' }, 'Making a plan and applying it need the admin role; the newest plan made from this tab is shown.');
  page('Plan & apply', h('p', {}, "What ", h('code', {}, 'pvelab plan'), " shows for the server's config against the cluster now, classified the same way."), form, section('Plan', out));
  await show(await latestPlan());
}

async function applyPlan(kept) {
  const n = (kept.plan.changes || []).length;
  if (!(await confirmDialog('Apply this plan?', `Apply ${n} change${n === 1 ? '' : 's'} to the cluster. Each guest is snapshotted (or backed up) first; the run can be rolled back.`))) return;
  try {
    const r = await api('/api/v1/runs', { method: 'POST', body: { plan_id: kept.id } });
    sessionStorage.removeItem('plan'); // carried out: what it showed is no longer the drift
    location.hash = `#/run/${r.run}`;
  } catch (e) {
    $('plan-out').append(h('p', { class: 'error', role: 'alert' }, 'Apply refused: ' + e.message));
  }
}

async function runPage(id) {
  const log = h('ol', { class: 'steps-log', id: 'run-log' });
  const head = h('div', { id: 'run-head' });
  const prog = h('progress', { id: 'run-progress', max: 1, value: 0, 'aria-label': 'Changes finished' });
  const draw = (r) => {
    put(head, h('p', {}, statusBadge(r.status), ` ${r.kind} run ${r.id}, started ${fmtTime(r.started)}`, r.finished ? `, finished ${fmtTime(r.finished)}` : '', r.who ? ` · asked by ${r.who}` : ''));
    if (r.progress) { prog.max = r.progress.total || 1; prog.value = r.progress.finished || 0; }
    const buttons = [];
    if (can('admin') && r.status === 'running') buttons.push(h('button', { type: 'button', class: 'danger', onclick: () => api(`/api/v1/runs/${r.id}/cancel`, { method: 'POST', body: {} }).catch((e) => log.append(h('li', { class: 'error' }, e.message))) }, 'Stop the run'));
    if (can('admin') && r.status !== 'running' && ['apply', 'deploy', 'destroy'].includes(r.kind)) buttons.push(h('button', { type: 'button', id: 'rollback', class: 'danger', onclick: () => rollbackRun(r) }, 'Roll back this run'));
    head.append(h('div', { class: 'actions' }, buttons));
  };
  const r = await api(`/api/v1/runs/${encodeURIComponent(id)}`);
  const changes = (r.result && r.result.changes) || [];
  page(`Run ${r.id}`, head, prog, section('Steps', log),
    changes.length ? section('Changes', h('ul', { class: 'changes' }, changes.map((c) => h('li', {},
      h('strong', {}, c.action || '?'), ' ', c.guest || c.name || String(c.vmid || ''), ' ', c.ok === false ? h('span', { class: 'error' }, 'failed' + (c.error ? ': ' + c.error : '')) : c.ok ? h('span', { class: 'ok' }, 'ok') : '',
      (c.steps_done || []).length ? h('span', { class: 'small' }, ' · ' + c.steps_done.join(', ')) : null)))) : null);
  draw(r);
  // each step arrives on the stream (those before this page opened were kept)
  let ended = false;
  const onRun = (ev) => {
    if (String(ev.run) !== String(r.id) || ended) return;
    if (ev.total) { prog.max = ev.total; prog.value = ev.finished || 0; }
    if (ev.state === 'finished') {
      log.append(h('li', { class: ev.status === 'ok' ? 'ok' : 'error' }, `finished: ${ev.status} (${ev.ok || 0} ok, ${ev.failed || 0} failed)`));
      ended = true;
      window.onRun = null;
      api(`/api/v1/runs/${r.id}`).then(draw).catch(() => {});
    } else if (typeof ev.line === 'string') {
      // a line of compose's output while the run deploys a stack
      log.append(h('li', { class: 'small' }, `${ev.guest || '?'}/${ev.stack || '?'} | ${ev.line}`));
    } else if (ev.step) {
      // a step begun, then done; the step "done" ends the change
      const what = ev.step === 'done' ? (ev.error ? 'failed' : 'finished') : `${ev.step}${ev.done ? ' done' : '…'}`;
      log.append(h('li', { class: ev.error ? 'error' : '' }, `${ev.guest || '?'}: ${ev.action || ''} ${what}${ev.error ? ' — ' + ev.error : ''}`));
    }
  };
  for (const ev of state.runEvents) onRun(ev);
  if (!ended && r.status !== 'running') {
    // ended before this page's stream saw it (or by another server): the record says how
    log.append(h('li', { class: r.status === 'ok' ? 'ok' : 'error' }, `finished: ${r.status} (as recorded)`));
    ended = true;
  }
  if (!ended) window.onRun = onRun;
}

async function rollbackRun(r) {
  if (!(await confirmDialog(`Roll back run ${r.id}?`, `Restore the guests ${r.kind} run ${r.id} changed from the snapshots and backups it took first. Guests it created stay (they are listed).`))) return;
  try {
    const x = await api(`/api/v1/runs/${r.id}/rollback`, { method: 'POST', body: {} });
    location.hash = `#/run/${x.run}`;
  } catch (e) {
    $('run-head').append(h('p', { class: 'error', role: 'alert' }, 'Rollback refused: ' + e.message));
  }
}

async function snapshotsBox(g, box) {
  let list;
  try {
    list = await api(`/api/v1/guests/${g.vmid}/snapshots`);
  } catch (e) {
    put(box, h('p', { class: 'error' }, 'Snapshots: ' + e.message));
    return;
  }
  const act = async (verb, snap) => {
    const out = $('action-status');
    const what = { rollback: [`Roll ${g.name} back to ${snap}?`, `Roll ${g.name || g.vmid} back to snapshot ${snap}. What it is now is snapshotted first.`], delete: [`Delete snapshot ${snap}?`, `Delete snapshot ${snap} of ${g.name || g.vmid}. It cannot be brought back.`] }[verb];
    if (!(await confirmDialog(...what))) return;
    try {
      const a = verb === 'rollback' ? await api(`/api/v1/guests/${g.vmid}/snapshots/${encodeURIComponent(snap)}/rollback`, { method: 'POST', body: {} })
        : await api(`/api/v1/guests/${g.vmid}/snapshots/${encodeURIComponent(snap)}`, { method: 'DELETE' });
      out.className = '';
      out.textContent = `${a.action} ${snap}: running (action ${a.id})…`;
      follow(a, out);
    } catch (e) { out.className = 'error'; out.textContent = `${verb} refused: ${e.message}`; }
  };
  const rows = list.map((sn) => h('tr', { 'data-snapshot': sn.name },
    h('th', { scope: 'row' }, sn.name), h('td', {}, sn.snaptime ? fmtTime(sn.snaptime) : '—'), h('td', {}, sn.description || ''),
    h('td', {}, can('operator') ? [h('button', { type: 'button', class: 'secondary', onclick: () => act('rollback', sn.name) }, 'Roll back'), ' ',
      h('button', { type: 'button', class: 'secondary', onclick: () => act('delete', sn.name) }, 'Delete')] : '')));
  const name = h('input', { type: 'text', id: 'snap-name', required: true, pattern: '[A-Za-z][A-Za-z0-9_\\-]{1,39}', value: `snap${new Date().toISOString().slice(0, 16).replace(/[-:T]/g, '')}` });
  const form = can('operator') ? h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault();
    const out = $('action-status');
    try {
      const a = await api(`/api/v1/guests/${g.vmid}/snapshots`, { method: 'POST', body: { name: name.value } });
      out.className = '';
      out.textContent = `snapshot ${name.value}: running (action ${a.id})…`;
      follow(a, out);
    } catch (err) { out.className = 'error'; out.textContent = 'Snapshot refused: ' + err.message; }
  } }, h('label', { for: 'snap-name' }, 'New snapshot'), name, h('button', { type: 'submit' }, 'Take snapshot')) : null;
  put(box, rows.length ? table('Snapshots', ['Name', 'Taken', 'Description', ''], rows) : h('p', { class: 'muted' }, 'No snapshots.'), form);
}

// The guest's part of the newest plan: declared (pvelab.yaml) vs live.
async function driftBox(g, box) {
  const kept = await latestPlan();
  const mine = kept && (kept.plan.changes || []).filter((c) => c.vmid === g.vmid || c.guest === g.name);
  const again = can('admin') ? h('button', { type: 'button', class: 'secondary', onclick: async () => {
    put(box, h('p', { role: 'status' }, 'Planning…'));
    try { await makePlan({}); } catch (e) { put(box, h('p', { class: 'error' }, e.message)); return; }
    driftBox(g, box);
  } }, kept ? 'Plan again' : 'Compare with pvelab.yaml') : null;
  if (!kept) {
    put(box, h('p', { class: 'muted' }, can('admin') ? 'No plan made yet from this tab.' : 'Comparing needs a plan, which the admin role makes.'), again);
    return;
  }
  const managed = !(kept.plan.unmanaged || []).some((u) => u.vmid === g.vmid);
  put(box, h('p', { class: 'small' }, `As of the plan made ${fmtTime(kept.created)}.`),
    mine.length ? h('ul', { class: 'changes' }, mine.map(changeItem))
      : h('p', {}, managed ? 'Matches pvelab.yaml.' : 'Not managed by this config (pvelab never touches it).'), again);
}

// The last `pvelab discover --save` inventory: what answered, and what vanished.
async function discoveryPage() {
  const hosts = await api('/api/v1/discovered');
  const str = (v) => (typeof v === 'string' && v ? v : '—');
  const rows = hosts.map((d) => {
    const rec = d.record && typeof d.record === 'object' ? d.record : {};
    const open = (Array.isArray(rec.evidence) ? rec.evidence : []).filter((e) => e && e.state === 'open')
      .map((e) => `${e.port}/${e.service || e.proto || '?'}`).join(' ');
    const urls = (Array.isArray(rec.urls) ? rec.urls : []).filter((u) => typeof u === 'string' && /^https?:\/\//.test(u));
    return h('tr', { 'data-address': d.address },
      h('th', { scope: 'row' }, d.address), h('td', {}, str(rec.name)), h('td', {}, d.kind),
      h('td', {}, statusBadge(d.present ? 'present' : 'vanished')),
      h('td', {}, str(rec.vendor), rec.model ? ` ${rec.model}` : ''), h('td', { class: 'small' }, open || '—'),
      h('td', { class: 'small' }, fmtTime(d.first_seen)), h('td', { class: 'small' }, fmtTime(d.last_seen)),
      h('td', {}, urls.slice(0, 2).map((u) => h('a', { href: u, rel: 'noopener noreferrer', target: '_blank' }, u))));
  });
  const gone = hosts.filter((d) => !d.present).length;
  page('Discovery',
    h('p', {}, `${hosts.length} hosts remembered by `, h('code', {}, 'pvelab discover --save'), `, ${gone} vanished since.`),
    rows.length ? table('Discovered hosts', ['Address', 'Name', 'Kind', 'State', 'Vendor and model', 'Open', 'First seen', 'Last seen', 'Links'], rows, { id: 'discovered-table' })
      : h('p', { class: 'muted' }, 'Nothing yet: run pvelab discover CIDR --save.'));
}

// ---- history: every guest's changes, newest first ----

const hfilters = { guest: '', node: '', kind: '', since: '' };
const SINCE = [['', 'Any time'], ['3600', 'Last hour'], ['86400', 'Last day'], ['604800', 'Last week'], ['2592000', 'Last 30 days']];

function historyQuery(before) {
  const q = new URLSearchParams({ limit: '50' });
  for (const k of ['guest', 'node', 'kind']) if (hfilters[k]) q.set(k, hfilters[k]);
  if (hfilters.since) q.set('since', String(Math.floor(Date.now() / 1000) - Number(hfilters.since)));
  if (before) q.set('before', String(before));
  return `/api/v1/history?${q}`;
}

async function historyPage(arg) {
  hfilters.guest = arg || ''; // #/history/GUEST: one guest's (or object's) changes
  const nodes = state.cluster ? state.cluster.nodes || [] : await api('/api/v1/nodes');
  const out = h('div', { id: 'history-out' });
  const more = h('p', {});
  const draw = async () => {
    let page;
    try { page = await api(historyQuery()); } catch (e) {
      put(out, h('p', { class: 'error', role: 'alert' }, e.message));
      put(more);
      return;
    }
    const tb = h('tbody', {}, page.items.map(historyRow));
    put(out, page.items.length ? h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': 'History' },
      h('table', { id: 'history-table' }, h('caption', { class: 'sr-only' }, 'History, newest first'),
        h('thead', {}, h('tr', {}, HISTORY_COLS.map((c) => h('th', { scope: 'col' }, c)))), tb))
      : h('p', { class: 'muted', id: 'history-table' }, 'Nothing recorded matches.'));
    let next = page.next;
    const older = h('button', { type: 'button', class: 'secondary', id: 'history-older', onclick: async () => {
      const p = await api(historyQuery(next));
      tb.append(...p.items.map(historyRow));
      next = p.next;
      older.hidden = !next;
    } }, 'Older changes');
    older.hidden = !next;
    put(more, older);
  };
  const sel = (id, label, key, opts) => h('label', {}, label + ' ',
    h('select', { id, onchange: (e) => { hfilters[key] = e.target.value; draw(); } },
      opts.map(([v, t]) => h('option', { value: v, selected: hfilters[key] === v }, t))));
  const guest = h('input', { type: 'search', id: 'hf-guest', value: hfilters.guest, placeholder: 'vmid, name or storage:ID', autocomplete: 'off' });
  const form = h('form', { class: 'filters', role: 'search', onsubmit: (e) => {
    e.preventDefault();
    const g = guest.value.trim(), want = '#/history' + (g ? '/' + encodeURIComponent(g) : '');
    if (location.hash !== want) location.hash = want; // the filter can be bookmarked
    else draw();
  } },
    h('label', {}, 'Guest ', guest),
    sel('hf-node', 'Node', 'node', [['', 'All nodes'], ...nodes.map((n) => [n.node, n.node])]),
    sel('hf-kind', 'Kind', 'kind', [['', 'All kinds'], ...['created', 'updated', 'deleted', 'discovered'].map((k) => [k, k])]),
    sel('hf-since', 'Since', 'since', SINCE),
    h('button', { type: 'submit' }, 'Filter'));
  page('History', h('p', {}, 'Every change pvelab recorded, across guests, newest first; each with its diff from the state before.'), form, out, more);
  await draw();
}

// ---- checks: their state, latency and history, live ----

const checkPath = (name) => '/api/v1/checks/' + String(name).split('/').map(encodeURIComponent).join('/');
const checkLink = (name) => h('a', { href: '#/check/' + encodeURIComponent(name), class: 'check-name' }, name);
const latency = (r) => (r && typeof r.latency_ms === 'number' ? `${r.latency_ms < 10 ? r.latency_ms.toFixed(1) : Math.round(r.latency_ms)} ms` : '—');
const checkBadge = (st) => h('span', { class: `status badge chk-${String(st || 'pending').replace(/[^a-z]/g, '')}` }, st || 'pending');
function evidence(r) {
  if (!r) return '';
  const parts = [];
  if (r.code) parts.push(`HTTP ${r.code}`);
  if (typeof r.tls_days_left === 'number') parts.push(`certificate: ${r.tls_days_left} days left`);
  if (r.error) parts.push(r.error);
  return parts.join(' · ');
}

async function checksPage() {
  const c = await api('/api/v1/checks');
  const sm = c.summary || {};
  // what needs attention first, then by name
  const rank = { down: 0, warning: 1, pending: 2, skipped: 3, up: 4 };
  const list = (c.checks || []).slice().sort((a, b) => (rank[a.status] ?? 2) - (rank[b.status] ?? 2) || String(a.name).localeCompare(String(b.name)));
  const rows = list.map((x) => h('tr', { 'data-check': x.name },
    h('th', { scope: 'row' }, checkLink(x.name)),
    h('td', {}, x.type || '—'), h('td', { class: 'small' }, x.target ? shown(x.target) : x.guest || '—'),
    h('td', {}, checkBadge(x.status), x.flapping ? h('span', { class: 'small' }, ' flapping') : null),
    h('td', { class: 'latency' }, latency(x.last)),
    h('td', { class: 'small' }, x.since ? fmtTime(x.since) : '—'),
    h('td', { class: 'small' }, evidence(x.last))));
  const firing = (c.alerts && c.alerts.firing) || [];
  page('Checks',
    h('ul', { class: 'counts', id: 'check-counts' }, ['up', 'warning', 'down', 'skipped', 'pending'].map((k) =>
      h('li', {}, checkBadge(k), h('span', { class: 'count', 'data-state': k }, String(sm[k] || 0))))),
    rows.length ? table('Checks', ['Check', 'Type', 'Target', 'State', 'Latency', 'Since', 'Last result'], rows, { id: 'checks-table' })
      : h('p', { class: 'muted' }, 'No checks: declare them under checks: or services: in pvelab.yaml (docs/checks.md).'),
    section('Alerts firing', firing.length ? h('ul', { id: 'firing' }, firing.map((f) => h('li', {}, checkLink(f.check), ' ', checkBadge(f.status),
      h('span', { class: 'small' }, ` since ${fmtTime(f.since)}`, f.notified ? `, notified ${fmtTime(f.notified)}` : ', not notified'))))
      : h('p', { class: 'muted' }, 'None.')));
}

async function checkPage(name) {
  const c = await api(checkPath(name));
  const results = (c.results || []).map((r) => h('tr', {},
    h('td', {}, fmtTime(r.ts)), h('td', {}, checkBadge(r.status)), h('td', { class: 'latency' }, latency(r)), h('td', { class: 'small' }, evidence(r))));
  const changes = (c.changes || []).map((x) => h('tr', {},
    h('td', {}, fmtTime(x.ts)), h('td', {}, x.from ? checkBadge(x.from) : '—', ' → ', checkBadge(x.to)), h('td', { class: 'small' }, evidence(x.result))));
  page(`Check ${c.name}`,
    h('dl', { class: 'facts', id: 'check-facts' },
      h('dt', {}, 'State'), h('dd', {}, checkBadge(c.status), c.flapping ? ' flapping' : ''),
      h('dt', {}, 'Since'), h('dd', {}, c.since ? fmtTime(c.since) : '—'),
      h('dt', {}, 'Type'), h('dd', {}, c.type || '—'),
      h('dt', {}, 'Target'), h('dd', {}, c.target ? shown(c.target) : c.guest || '—'),
      h('dt', {}, 'Latency'), h('dd', { class: 'latency' }, latency(c.last)),
      h('dt', {}, 'Every'), h('dd', {}, c.interval ? `${c.interval} s, down after ${(c.retries || 0) + 1} failures` : '—')),
    section('State changes', changes.length ? table('State changes, newest first', ['When', 'Change', 'Evidence'], changes, { id: 'check-changes' }) : h('p', { class: 'muted' }, 'No change recorded yet.')),
    section('Last results', results.length ? table('Last results, newest first', ['When', 'Result', 'Latency', 'Evidence'], results, { id: 'check-results' }) : h('p', { class: 'muted' }, 'Not probed yet.')),
    h('p', {}, h('a', { href: '#/checks' }, 'All checks')));
}

// ---- routing: #/page/arg ----

const PAGES = { overview, guests, guest, node: nodePage, runs: runsPage, plan: planPage, run: runPage, discovery: discoveryPage, history: historyPage, checks: checksPage, check: checkPage };

async function route(quiet) {
  if (!state.session) return;
  const [, name, arg] = (location.hash.match(/^#\/([a-z]+)(?:\/(.+))?/) || []);
  const fn = PAGES[name] || overview;
  window.onRun = null;
  const y = window.scrollY, hash = location.hash;
  state.redrawing = !!quiet;
  try {
    await fn(arg && decodeURIComponent(arg));
    // the page was left while it loaded (a redraw of the old one can end
    // after the new one is drawn): draw the page shown now
    if (location.hash !== hash) return route(true);
    if (quiet) window.scrollTo(0, y);
    else $('main').focus({ preventScroll: true });
  } catch (e) {
    if (location.hash !== hash) return route(true);
    if (e instanceof Deferred) return refreshSoon();
    failure(e);
  }
}

document.addEventListener('DOMContentLoaded', async () => {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', () => route());
  try {
    const r = await fetch('/ui/session', { credentials: 'same-origin' });
    if (r.ok) started(await r.json());
    else showLogin('');
  } catch (e) {
    showLogin('pvelab does not answer.');
  }
});
