// earshot's operator's window: polls the admin API (admin_api.h) and draws
// the chosen map. Plain ES module, no build step. The token is kept in
// sessionStorage only (or given once as #token=... in the address, which
// is never sent to the server), and goes out as a bearer token.
//
// window.earshotAdmin is the page's data model, for tests and the console:
// `map` (the last /admin/api/map answer), `selected`, `project(x, y)` (game
// units to canvas pixels), `refreshes` (completed refresh count).

/** Milliseconds between refreshes: one maps, one map and (with a client
 * selected) one client request each; docs/operations.md measures the cost. */
export const REFRESH_MS = 1000;
const HISTORY = 120;

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem('earshot-admin-token') || '',
  maps: [], mapKey: null, map: null, selected: null, client: null,
  hover: null, view: null, history: [], refreshes: 0, timer: null,
};
window.earshotAdmin = {
  get map() { return state.map; },
  get selected() { return state.selected; },
  get refreshes() { return state.refreshes; },
  project: (x, y) => project(x, y),
  refresh: () => refresh(),
};

const hash = new URLSearchParams(location.hash.slice(1));
if (hash.get('token')) {
  state.token = hash.get('token');
  sessionStorage.setItem('earshot-admin-token', state.token);
  history.replaceState(null, '', location.pathname + location.search);
}

function status(text, kind) {
  const el = $('status');
  el.textContent = text;
  el.className = `badge ${kind}`;
}

function say(text) { $('message').textContent = text; }

async function api(name, body) {
  const init = { headers: { Authorization: `Bearer ${state.token}` }, cache: 'no-store' };
  if (body !== undefined) {
    init.method = 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(`/admin/api/${name}`, init);
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    const err = new Error(data && data.error ? data.error : `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// ---- the map ---------------------------------------------------------------

const canvas = $('world');
const ctx = canvas.getContext('2d');

/** Fit the clients (and a hearing radius around them) into the canvas. */
function layout(map) {
  const r = Math.max(1, map.hearing_radius || 20);
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const c of map.clients) {
    minX = Math.min(minX, c.x); maxX = Math.max(maxX, c.x);
    minY = Math.min(minY, c.y); maxY = Math.max(maxY, c.y);
  }
  if (!map.clients.length) { minX = minY = 0; maxX = maxY = 0; }
  minX -= r; minY -= r; maxX += r; maxY += r;
  const m = 24, w = canvas.width - 2 * m, h = canvas.height - 2 * m;
  const scale = Math.min(w / (maxX - minX), h / (maxY - minY));
  const ox = m + (w - (maxX - minX) * scale) / 2, oy = m + (h - (maxY - minY) * scale) / 2;
  return { minX, minY, scale, ox, oy };
}

function project(x, y) {
  const v = state.view;
  if (!v) return null;
  return [v.ox + (x - v.minX) * v.scale, v.oy + (y - v.minY) * v.scale];
}

function draw() {
  const map = state.map;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!map) return;
  state.view = layout(map);
  const byId = new Map(map.clients.map((c) => [c.id, c]));
  const line = (a, b) => {
    const [x1, y1] = project(a.x, a.y), [x2, y2] = project(b.x, b.y);
    ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
  };
  ctx.lineWidth = 2;
  ctx.strokeStyle = '#3ecf8e';
  ctx.setLineDash([]);
  for (const c of map.clients)
    for (const p of c.peers)
      if (c.id < p && byId.has(p)) line(c, byId.get(p));
  ctx.strokeStyle = '#f5b83d';
  ctx.setLineDash([6, 5]);
  for (const [a, b] of map.capped)
    if (byId.has(a) && byId.has(b)) line(byId.get(a), byId.get(b));
  ctx.setLineDash([]);
  const hover = state.hover && byId.get(state.hover);
  if (hover) {
    const [x, y] = project(hover.x, hover.y);
    ctx.strokeStyle = 'rgba(78,161,255,.8)';
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.arc(x, y, map.hearing_radius * state.view.scale, 0, 2 * Math.PI); ctx.stroke();
  }
  ctx.font = '12px system-ui, sans-serif';
  for (const c of map.clients) {
    const [x, y] = project(c.x, c.y);
    ctx.fillStyle = c.muted ? '#ff5d5d' : c.held ? '#8a93a3' : '#4ea1ff';
    ctx.beginPath(); ctx.arc(x, y, c.id === state.selected ? 7 : 5, 0, 2 * Math.PI); ctx.fill();
    if (c.id === state.selected) {
      ctx.strokeStyle = '#fff'; ctx.lineWidth = 2; ctx.stroke();
    }
    ctx.fillStyle = '#e6e9ee';
    ctx.fillText(c.id, x + 8, y - 6);
  }
}

function clientAt(ev) {
  if (!state.map || !state.view) return null;
  const rect = canvas.getBoundingClientRect();
  const px = (ev.clientX - rect.left) * (canvas.width / rect.width);
  const py = (ev.clientY - rect.top) * (canvas.height / rect.height);
  let best = null, bestD = 12 * 12;
  for (const c of state.map.clients) {
    const [x, y] = project(c.x, c.y);
    const d = (x - px) ** 2 + (y - py) ** 2;
    if (d < bestD) { best = c; bestD = d; }
  }
  return best;
}

canvas.addEventListener('mousemove', (ev) => {
  const c = clientAt(ev);
  const id = c ? c.id : null;
  if (id !== state.hover) { state.hover = id; draw(); }
});
canvas.addEventListener('mouseleave', () => { state.hover = null; draw(); });
canvas.addEventListener('click', (ev) => {
  const c = clientAt(ev);
  select(c ? c.id : null);
});

// ---- the plots ------------------------------------------------------------------

function plot(id, values, color) {
  const cv = $(id), g = cv.getContext('2d');
  g.clearRect(0, 0, cv.width, cv.height);
  if (values.length < 2) return;
  const max = Math.max(1, ...values);
  g.strokeStyle = color; g.lineWidth = 1.5;
  g.beginPath();
  values.forEach((v, i) => {
    const x = (i / (HISTORY - 1)) * cv.width, y = cv.height - 2 - (v / max) * (cv.height - 4);
    if (i) g.lineTo(x, y); else g.moveTo(x, y);
  });
  g.stroke();
}

function record(maps) {
  const t = maps.totals, prev = state.history[state.history.length - 1];
  const dt = prev ? maps.time - prev.time : 0;
  const sample = {
    time: maps.time, clients: t.clients, pairs: t.pairs, messages: t.messages_in,
    refused: t.relays_refused,
    rate: prev && dt > 0 ? Math.max(0, (t.messages_in - prev.messages) / dt) : 0,
    refusedRate: prev && dt > 0 ? Math.max(0, (t.relays_refused - prev.refused) / dt) : 0,
  };
  state.history.push(sample);
  if (state.history.length > HISTORY) state.history.shift();
  const h = state.history;
  plot('p-clients', h.map((s) => s.clients), '#4ea1ff');
  plot('p-pairs', h.map((s) => s.pairs), '#3ecf8e');
  plot('p-rate', h.map((s) => s.rate), '#e6e9ee');
  plot('p-refused', h.map((s) => s.refusedRate), '#ff5d5d');
  $('v-clients').textContent = t.clients;
  $('v-pairs').textContent = t.pairs;
  $('v-rate').textContent = sample.rate.toFixed(1);
  $('v-refused').textContent = `${t.relays_refused} (${sample.refusedRate.toFixed(1)}/s)`;
}

// ---- the panel --------------------------------------------------------------------

function showClient(c) {
  $('none').hidden = !!c;
  $('client').hidden = !c;
  if (!c) return;
  $('c-id').textContent = c.id;
  $('c-address').textContent = c.address;
  $('c-since').textContent = new Date(c.connected_since * 1000).toISOString().replace('T', ' ').slice(0, 19);
  $('c-pos').textContent = `game ${c.game_id} map ${c.map_id} (${c.x}, ${c.y}) channel ${c.channel}`;
  $('c-messages').textContent = c.messages;
  $('c-refused').textContent = c.relays_refused;
  $('c-session').textContent = c.held ? 'held, waiting for a resume' : c.resumable ? 'resumable' : 'not resumable';
  $('c-muted').textContent = c.muted ? 'yes' : 'no';
  $('c-node').textContent = c.node;
  $('c-peers').textContent = c.peers.join(', ') || '-';
  $('c-capped').textContent = c.capped.join(', ') || '-';
  $('mute').textContent = c.muted ? 'Unmute' : 'Mute';
}

function select(id) {
  state.selected = id;
  state.client = null;
  showClient(null);
  draw();
  if (id) refresh();
}

function showModeration(m) {
  const ul = $('moderation');
  ul.replaceChildren();
  const add = (text, action, body) => {
    const li = document.createElement('li');
    const span = document.createElement('span');
    span.textContent = text;
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'lift';
    b.onclick = () => act(action, body);
    li.append(span, b);
    ul.append(li);
  };
  for (const b of m.bans) {
    const until = new Date(b.until * 1000).toISOString().replace('T', ' ').slice(0, 16);
    add(`ban ${b.kind === 'address' ? 'address' : 'id'} ${b.key} until ${until} UTC ${b.reason ? `(${b.reason})` : ''} by ${b.by}`,
      'unban', b.kind === 'address' ? { address: b.key } : { client_id: b.key });
  }
  for (const u of m.mutes) add(`mute ${u.client_id} ${u.reason ? `(${u.reason})` : ''} by ${u.by}`, 'unmute', { client_id: u.client_id });
  if (!m.bans.length && !m.mutes.length) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent = 'none';
    ul.append(li);
  }
}

async function act(action, body) {
  try {
    await api(action, body);
    say(`${action}: done`);
  } catch (e) {
    say(`${action}: ${e.message}`);
  }
  await refresh();
}

const reason = () => $('reason').value.trim() || undefined;
$('kick').onclick = () => act('kick', { client_id: state.selected, reason: reason() });
$('mute').onclick = () => act(state.client && state.client.muted ? 'unmute' : 'mute',
  { client_id: state.selected, reason: state.client && state.client.muted ? undefined : reason() });
const seconds = () => Math.round(Number($('ban-minutes').value) * 60);
$('ban-id').onclick = () => act('ban', { client_id: state.selected, seconds: seconds(), reason: reason() });
$('ban-address').onclick = () => state.client &&
  act('ban', { address: state.client.address, seconds: seconds(), reason: reason() });

// ---- the refresh ---------------------------------------------------------------------

function mapKey(m) { return `${m.game_id}/${m.map_id}`; }

function showMaps(maps) {
  const sel = $('maps');
  const keys = maps.maps.map(mapKey);
  if (state.mapKey === null || (!keys.includes(state.mapKey) && keys.length)) state.mapKey = keys[0] ?? null;
  const opts = maps.maps.map((m) => {
    const o = document.createElement('option');
    o.value = mapKey(m);
    o.textContent = `game ${m.game_id} map ${m.map_id} (${m.clients})`;
    return o;
  });
  if (state.mapKey !== null && !keys.includes(state.mapKey)) {
    const o = document.createElement('option');
    o.value = state.mapKey;
    o.textContent = `game ${state.mapKey.replace('/', ' map ')} (0)`;
    opts.push(o);
  }
  sel.replaceChildren(...opts);
  if (state.mapKey !== null) sel.value = state.mapKey;
  $('node').textContent = `node ${maps.node}`;
}

$('maps').onchange = () => { state.mapKey = $('maps').value; select(null); refresh(); };

let running = null;
async function refresh() {
  if (running) return running;
  running = (async () => {
    try {
      const maps = await api('maps');
      showMaps(maps);
      record(maps);
      if (state.mapKey !== null) {
        const [game, map] = state.mapKey.split('/');
        state.map = await api(`map?game=${game}&map=${map}`);
        $('max-peers').textContent = state.map.max_peers;
        $('radius').textContent = state.map.hearing_radius;
      } else {
        state.map = null;
      }
      if (state.selected) {
        try {
          state.client = await api(`client?id=${encodeURIComponent(state.selected)}`);
        } catch (e) {
          if (e.status !== 404) throw e;
          state.client = null;
          say(`${state.selected} is gone`);
          state.selected = null;
        }
        showClient(state.client);
      }
      showModeration(await api('moderation'));
      draw();
      status('live', 'ok');
      state.refused = false;
    } catch (e) {
      status(e.status === 401 ? 'wrong token' : e.status === 403 ? 'not allowed from here' : `error: ${e.message}`, 'bad');
      // asking again with the same token would only fill the server's log
      state.refused = e.status === 401 || e.status === 403;
    } finally {
      state.refreshes++;
    }
  })();
  try { return await running; } finally { running = null; }
}

function loop() {
  clearTimeout(state.timer);
  if (!state.token) { status('no token', 'idle'); return; }
  refresh().finally(() => {
    if (!state.refused) state.timer = setTimeout(loop, REFRESH_MS);
  });
}

$('login').onsubmit = (ev) => {
  ev.preventDefault();
  state.token = $('token').value;
  sessionStorage.setItem('earshot-admin-token', state.token);
  $('token').value = '';
  loop();
};

loop();
