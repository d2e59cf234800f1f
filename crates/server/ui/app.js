// Rarangi's web UI: plain JavaScript, no build step. It reads the HTTP API
// like any client. Everything from the catalogue is rendered as text (never
// as HTML): service names and attributes come from whoever may register.
'use strict';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const TOKEN_KEY = 'rarangi-token';

const state = {
  names: [],            // service names from GET /srv
  services: new Map(),  // name -> [instance]
  topology: null,       // GET /v1/topology
  app: null,            // the open configuration document's name
  appDraft: false,      // a new document not yet saved
};

// ----- the API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function authHeaders() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { Authorization: 'Bearer ' + t } : {};
}

async function errorText(r) {
  try { const v = await r.json(); return v.error || r.statusText; } catch (e) { return r.statusText; }
}

// One request; a 401 or 403 asks for a (write) token and throws.
async function api(method, path, body) {
  const headers = authHeaders();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401 || r.status === 403) {
    const msg = await errorText(r);
    askToken(r.status, msg);
    throw new ApiError(r.status, msg);
  }
  if (!r.ok) throw new ApiError(r.status, await errorText(r));
  return r.status === 204 ? null : r.json();
}

const enc = encodeURIComponent;
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// ----- token and notices -----------------------------------------------------

let tokenGiven = null; // resolves when the user submits a token

function notice(text, kind) {
  const n = $('notice');
  n.textContent = text;
  n.className = kind || '';
  n.hidden = !text;
}

function askToken(status, msg) {
  document.body.classList.add('need-token');
  if (status === 401) {
    notice('This catalogue needs a token: ' + msg + '. Enter a read token to look, a write token to change.', 'error');
  } else {
    notice('Refused (403): ' + msg + '.', 'error');
  }
  $('token').focus();
}

function waitForToken() {
  return new Promise((res) => { tokenGiven = res; });
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('token').value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  $('token').value = '';
  document.body.classList.remove('need-token');
  notice(t ? 'Token set for this tab.' : '', 'ok');
  showTokenState();
  if (tokenGiven) { tokenGiven(); tokenGiven = null; }
  refreshAll();
});

$('token-clear').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showTokenState();
  notice('Token forgotten.', 'ok');
});

function showTokenState() {
  $('token').placeholder = sessionStorage.getItem(TOKEN_KEY) ? 'token set (enter to replace)' : 'API token';
}

// ----- live updates: /v1/events read with fetch (EventSource cannot send a token)

function setLive(on, text) {
  const l = $('live');
  l.textContent = text;
  l.className = on ? 'on' : 'off';
}

async function stream() {
  for (;;) {
    try {
      const r = await fetch('/v1/events', { headers: authHeaders(), cache: 'no-store' });
      if (r.status === 401 || r.status === 403) {
        askToken(r.status, await errorText(r));
        setLive(false, 'needs a token');
        await waitForToken();
        continue;
      }
      if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
      setLive(true, 'live');
      refreshAll(); // whatever changed while we were away
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          onEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
        if (buf.length > 1 << 20) buf = ''; // no event is this long: resynchronise
      }
    } catch (e) { /* reconnect below */ }
    setLive(false, 'reconnecting');
    await sleep(2000);
  }
}

function onEvent(block) {
  const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5)).join('\n');
  if (!data) return; // a keep-alive comment
  let path;
  try { path = JSON.parse(data).path || ''; } catch (e) { return; }
  if (path.startsWith('/srv/')) later('srv:' + path.split('/')[2], () => loadService(path.split('/')[2]));
  else if (path.startsWith('/app/')) later('app', loadApps);
}

// Runs `f` once for a burst of changes with the same key.
const pending = new Map();
function later(key, f) {
  if (pending.has(key)) return;
  pending.set(key, setTimeout(() => { pending.delete(key); f(); }, 150));
}

// ----- services --------------------------------------------------------------

async function loadServices() {
  const names = await api('GET', '/srv');
  state.names = names;
  for (const n of [...state.services.keys()]) if (!names.includes(n)) state.services.delete(n);
  // A few at a time, so a large catalogue does not flood its own API.
  const queue = names.slice();
  await Promise.all([1, 2, 3, 4, 5, 6].map(async () => {
    while (queue.length) await loadService(queue.shift(), true);
  }));
  renderServices();
}

async function loadService(name, quiet) {
  try {
    const v = await api('GET', '/srv/' + enc(name));
    state.services.set(name, Object.values(v));
    if (!state.names.includes(name)) state.names.push(name);
  } catch (e) {
    if (e.status !== 404) throw e;
    state.services.delete(name);
    state.names = state.names.filter((n) => n !== name);
  }
  if (!quiet) renderServices();
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function instanceText(i) {
  const attrs = Object.entries(i.attrs || {}).map(([k, v]) => k + '=' + v).join(' ');
  return [i.name, i.id, i.address, i.port, i.catalogue, i.cluster, i.service, attrs].join(' ').toLowerCase();
}

function renderServices() {
  const q = $('search').value.trim().toLowerCase();
  const list = $('service-list');
  const out = [];
  let shown = 0;
  for (const name of [...state.names].sort()) {
    const all = state.services.get(name) || [];
    const insts = q && !name.toLowerCase().includes(q) ? all.filter((i) => instanceText(i).includes(q)) : all;
    if (!insts.length) continue;
    shown += 1;
    const box = el('div', 'service');
    box.dataset.service = name;
    const h = el('h2', null, name);
    h.append(el('span', 'count', insts.length + (insts.length === 1 ? ' instance' : ' instances')));
    box.append(h);
    const t = el('table');
    const head = el('tr');
    for (const c of ['id', 'address', 'catalogue', 'cluster', 'attributes', 'master', 'updated', 'health']) head.append(el('th', null, c));
    t.append(head);
    for (const i of insts) {
      const tr = el('tr');
      tr.dataset.instance = i.id;
      tr.append(el('td', 'mono', i.id));
      tr.append(el('td', 'mono', i.port === null ? i.address : i.address + ':' + i.port));
      tr.append(el('td', 'mono', i.catalogue));
      tr.append(el('td', null, i.cluster));
      const a = el('td');
      for (const [k, v] of Object.entries(i.attrs || {})) a.append(el('span', 'attr', k + '=' + v));
      tr.append(a);
      tr.append(el('td', i.master ? 'master' : '', i.master ? 'master' : ''));
      tr.append(el('td', 'mono', i.updated_at));
      tr.append(el('td', 'health ' + i.health, i.health));
      t.append(tr);
    }
    box.append(t);
    out.push(box);
  }
  list.replaceChildren(...out);
  if (!out.length) list.append(el('p', 'empty', q ? 'No service matches "' + q + '".' : 'No services registered.'));
  $('services-count').textContent = shown + ' of ' + state.names.length + ' services';
}

$('search').addEventListener('input', renderServices);

// ----- topology --------------------------------------------------------------

async function loadTopology() {
  state.topology = await api('GET', '/v1/topology');
  renderTopology();
}

const short = (uri) => uri.replace(/^[a-z0-9+.-]+:\/\//i, '').replace(/\/$/, '');

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Clusters on a circle, each cluster's catalogues on a smaller circle
// around its centre: readable up to a few dozen catalogues, no library.
function layout(t, w, h) {
  const clusters = new Map();
  for (const c of t.catalogues) {
    if (!clusters.has(c.cluster)) clusters.set(c.cluster, []);
    clusters.get(c.cluster).push(c);
  }
  const names = [...clusters.keys()].sort();
  const big = names.length > 1 ? Math.min(w, h) / 2 - 120 : 0;
  const pos = new Map();
  const groups = names.map((name, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
    const cx = w / 2 + big * Math.cos(a);
    const cy = h / 2 + big * Math.sin(a);
    const members = clusters.get(name).sort((x, y) => x.uri.localeCompare(y.uri));
    const r = members.length > 1 ? Math.min(95, 30 + 11 * members.length) : 0;
    members.forEach((c, j) => {
      const b = -Math.PI / 2 + (2 * Math.PI * j) / members.length;
      pos.set(c.uri, [cx + r * Math.cos(b), cy + r * Math.sin(b)]);
    });
    return { name, cx, cy, r: r + 45 };
  });
  return { groups, pos };
}

function renderTopology() {
  const t = state.topology;
  if (!t) return;
  const reachable = t.catalogues.filter((c) => c.reachable).length;
  $('whoami').textContent = short(t.catalogue);
  const clusters = new Set(t.catalogues.map((c) => c.cluster));
  $('topo-summary').textContent = t.catalogues.length + ' catalogues in ' + clusters.size + ' clusters, ' +
    reachable + ' reachable, ' + (t.catalogues.length - reachable) + ' unreachable; leader ' + short(t.leader) +
    '; seen from ' + short(t.catalogue) + '.';
  const w = 800, h = 560;
  const { groups, pos } = layout(t, w, h);
  const root = $('topo-svg');
  const parts = [];
  for (const g of groups) {
    parts.push(svg('circle', { class: 'cluster', cx: g.cx, cy: g.cy, r: g.r }));
    parts.push(svg('text', { class: 'cluster-name', x: g.cx, y: g.cy - g.r - 6 }, g.name));
  }
  const state_ = (uri) => t.catalogues.find((c) => c.uri === uri);
  const degree = new Map();
  for (const [a, b] of t.links) {
    degree.set(a, (degree.get(a) || 0) + 1);
    degree.set(b, (degree.get(b) || 0) + 1);
    if (!pos.has(a) || !pos.has(b)) continue;
    const [x1, y1] = pos.get(a), [x2, y2] = pos.get(b);
    const down = !state_(a).reachable || !state_(b).reachable;
    parts.push(svg('line', { class: down ? 'link down' : 'link', x1, y1, x2, y2 }));
  }
  const rows = [];
  for (const c of t.catalogues) {
    const [x, y] = pos.get(c.uri);
    const roles = [];
    if (c.uri === t.catalogue) roles.push('me');
    if (c.uri === t.leader) roles.push('leader');
    const st = c.reachable ? 'reachable' : 'unreachable';
    const g = svg('g', { class: ['cat', st, ...roles].join(' '), 'data-uri': c.uri, 'data-state': st });
    g.append(svg('title', {}, c.uri + ' (' + c.cluster + ', ' + st + (roles.length ? ', ' + roles.join(', ') : '') + ')'));
    if (roles.includes('leader')) g.append(svg('circle', { class: 'halo', cx: x, cy: y, r: 23 }));
    g.append(svg('circle', { class: 'node', cx: x, cy: y, r: 16 }));
    if (!c.reachable) g.append(svg('path', { class: 'cross', d: `M${x - 8} ${y - 8}L${x + 8} ${y + 8}M${x + 8} ${y - 8}L${x - 8} ${y + 8}` }));
    g.append(svg('text', { class: 'label', x, y: y + 32 }, short(c.uri)));
    parts.push(g);
    const tr = el('tr', st);
    tr.dataset.uri = c.uri;
    tr.dataset.state = st;
    tr.append(el('td', 'mono', c.uri), el('td', null, c.cluster), el('td', 'state', st),
      el('td', null, roles.map((r) => (r === 'me' ? 'this catalogue' : r)).join(', ')), el('td', null, degree.get(c.uri) || 0));
    rows.push(tr);
  }
  root.replaceChildren(...parts);
  $('topo-table').tBodies[0].replaceChildren(...rows);
  $('alarms').replaceChildren(...(t.alarms || []).map((a) => el('li', 'alarm', typeof a === 'string' ? a : JSON.stringify(a))));
}

// The topology has no change events: poll it, often while it is shown.
async function pollTopology() {
  for (;;) {
    try { await loadTopology(); } catch (e) { if (e.status === 401) await waitForToken(); }
    await sleep(location.hash === '#topology' ? 1000 : 5000);
  }
}

// ----- configuration documents and their web hooks ---------------------------

async function loadApps() {
  const names = await api('GET', '/app');
  const list = $('app-list');
  list.replaceChildren(...names.sort().map((n) => {
    const li = el('li');
    const b = el('button', n === state.app ? 'link current' : 'link', n);
    b.type = 'button';
    b.addEventListener('click', () => openApp(n));
    li.append(b);
    return li;
  }));
  if (!names.length) list.append(el('li', 'empty', 'No documents yet.'));
  if (state.app && !state.appDraft && names.includes(state.app)) await openApp(state.app, true);
}

async function openApp(name, keepText) {
  state.app = name;
  state.appDraft = false;
  $('app-detail').hidden = false;
  $('app-name').textContent = name;
  try {
    const v = await api('GET', '/app/' + enc(name));
    $('app-meta').textContent = v.updated_at ? 'updated ' + v.updated_at : '';
    // Do not overwrite what the user is typing when another change arrives.
    if (!keepText || document.activeElement !== $('app-text')) $('app-text').value = JSON.stringify(v, null, 2);
  } catch (e) {
    $('app-meta').textContent = e.message;
  }
  await loadHooks();
}

async function loadHooks() {
  if (!state.app || state.appDraft) { $('hook-list').replaceChildren(); return; }
  const hooks = await api('GET', '/app/' + enc(state.app) + '/web-hooks');
  $('hook-list').replaceChildren(...hooks.map((hk) => {
    const tr = el('tr');
    const del = el('button', 'danger', 'Delete');
    del.type = 'button';
    del.addEventListener('click', () => act(() => api('DELETE', '/app/' + enc(state.app) + '/web-hooks/' + enc(hk.name)), 'Hook deleted.', loadHooks));
    const td = el('td');
    td.append(del);
    tr.append(el('td', 'mono', hk.name), el('td', 'mono', hk.endpoint), td);
    return tr;
  }));
}

// Runs a change and says how it went next to the document.
async function act(f, ok, then) {
  try {
    await f();
    $('app-msg').textContent = ok;
    $('app-msg').className = 'ok';
    if (then) await then();
  } catch (e) {
    $('app-msg').textContent = (e.status ? e.status + ': ' : '') + e.message;
    $('app-msg').className = 'error';
  }
}

$('app-new').addEventListener('submit', (e) => {
  e.preventDefault();
  const name = $('app-new-name').value.trim();
  state.app = name;
  state.appDraft = true;
  $('app-detail').hidden = false;
  $('app-name').textContent = name + ' (new)';
  $('app-meta').textContent = 'not saved yet: a document needs a "config" attribute';
  $('app-text').value = JSON.stringify({ config: {} }, null, 2);
  $('hook-list').replaceChildren();
});

$('app-save').addEventListener('click', () => {
  let doc;
  try { doc = JSON.parse($('app-text').value); } catch (e) {
    $('app-msg').textContent = 'not valid JSON: ' + e.message;
    $('app-msg').className = 'error';
    return;
  }
  delete doc.updated_at; // the catalogue sets it
  act(() => api('PUT', '/app/' + enc(state.app), doc), 'Saved.', async () => {
    state.appDraft = false;
    await loadApps();
    await openApp(state.app);
  });
});

$('app-delete').addEventListener('click', () => {
  if (!state.app || !confirm('Delete ' + state.app + ' on every catalogue?')) return;
  act(() => api('DELETE', '/app/' + enc(state.app)), 'Deleted.', async () => {
    state.app = null;
    $('app-detail').hidden = true;
    await loadApps();
  });
});

$('hook-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const body = { name: $('hook-name').value.trim(), endpoint: $('hook-endpoint').value.trim() };
  act(() => api('POST', '/app/' + enc(state.app) + '/web-hooks', body), 'Hook added.', async () => {
    $('hook-name').value = '';
    $('hook-endpoint').value = '';
    await loadHooks();
  });
});

// ----- tabs and start ----------------------------------------------------------

function showTab() {
  const tab = (location.hash || '#services').slice(1);
  for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== 'tab-' + tab;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('current', a.dataset.tab === tab);
  if (tab === 'topology') loadTopology().catch(() => {});
}

async function refreshAll() {
  for (const f of [loadServices, loadApps, loadTopology]) {
    try { await f(); } catch (e) {
      if (!(e instanceof ApiError)) notice('Cannot reach the catalogue: ' + e.message, 'error');
    }
  }
}

window.addEventListener('hashchange', showTab);
showTab();
showTokenState();
stream();
pollTopology();
