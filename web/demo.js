// The earshot demo page: one player per browser tab on a 2D map.
//
// URL parameters (all optional, for bookmarks and the end-to-end test):
//   name, id (client_id; default: name plus a random suffix), map, channel,
//   x, y (start position), server (ws:// URL; default: the host that served
//   this page), autoconnect=1.
// window.earshot is the EarshotClient once connected; window.demo holds
// helpers and the logged events for tests.
//
// The crowd cap: the server matches each client with its nearest few
// (session.max_peers, stock 16). The page can add simulated players around
// you ("Add 20 players": plain WebSocket clients that only send their
// position, and never answer a call); it knows where they stand, and lists
// those within the hearing radius that are not in your NearbyPeers as
// "near, left out (crowd cap)". demo.observe() tells it about other players
// whose positions it knows.

import { EarshotClient } from './earshot-client.js';

const HEAR_RADIUS = 20; // the stock proximity radius: for drawing only
const LEAVE_RADIUS = 25; // the stock leave radius: volume reaches 0 here
const SCALE = 8; // pixels per world unit
const SPEED = 20; // world units per second when walking
const SEEN_FOR_MS = 30000; // how long an observed position counts

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const canvas = $('map');
const ctx = canvas.getContext('2d');

const demo = {
  client: null,
  events: [],
  errors: [],
  pos: { x: intParam('x', 0), y: intParam('y', 0) }, // float while walking; the client gets integers
  target: null, // click-to-walk destination
  keys: new Set(),
  connect,
  disconnect,
  moveTo(x, y) {
    demo.target = null;
    demo.pos = { x, y };
    if (demo.client) demo.client.move({ x, y });
  },
  // id -> { x, y, map_id, channel, character_name, t }: positions the page knows.
  seen: new Map(),
  bots: new Map(), // simulated players: id -> { ws, pos }
  addBots,
  removeBots,
  // Tell the page where a player is (one it simulates, say): { x, y, map_id, channel?, character_name? }.
  observe(id, position) {
    demo.seen.set(id, { channel: 0, ...position, t: Date.now() });
    renderPeers();
  },
  leftOut,
};
window.demo = demo;
window.earshot = null;

function intParam(name, fallback) {
  const v = Number.parseInt(params.get(name), 10);
  return Number.isFinite(v) ? v : fallback;
}

function randomSuffix() {
  const a = new Uint8Array(3);
  crypto.getRandomValues(a);
  return [...a].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function serverUrl() {
  if (params.get('server')) return params.get('server');
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
}

// ---- the form -------------------------------------------------------------

$('name').value = params.get('name') || `player-${randomSuffix().slice(0, 4)}`;
$('map-id').value = intParam('map', 1);
$('channel').value = intParam('channel', 0);
$('radius-label').textContent = HEAR_RADIUS;
$('leave-label').textContent = LEAVE_RADIUS;

$('join').addEventListener('submit', (e) => {
  e.preventDefault();
  if (demo.client) disconnect();
  else connect();
});

// Map, channel and name changes apply at once while connected.
for (const id of ['map-id', 'channel']) {
  $(id).addEventListener('change', () => {
    if (demo.client) demo.client.move({ mapId: Number($('map-id').value) | 0, channel: Number($('channel').value) | 0 });
  });
}
$('name').addEventListener('change', () => {
  if (demo.client && $('name').value.trim()) demo.client.setCharacterName($('name').value.trim());
});

async function connect() {
  const name = $('name').value.trim() || 'player';
  const clientId = params.get('id') || `${name.replace(/[^\w.-]+/g, '_').slice(0, 40)}-${randomSuffix()}`;
  const client = new EarshotClient({
    url: serverUrl(),
    clientId,
    characterName: name,
    mapId: Number($('map-id').value) | 0,
    channel: Number($('channel').value) | 0,
    x: Math.round(demo.pos.x),
    y: Math.round(demo.pos.y),
    leaveRadius: LEAVE_RADIUS,
    audioContainer: $('audio'),
  });
  demo.client = client;
  window.earshot = client;
  for (const type of ['connected', 'disconnected', 'peerjoined', 'peerleft', 'peerstate', 'position', 'speaking', 'error']) {
    client.on(type, (detail) => onEvent(type, detail));
  }
  $('connect').textContent = 'Disconnect';
  $('connect').classList.add('leave');
  $('me-id').textContent = clientId;
  setStatus('connecting', 'connecting…');
  await client.connect();
  const track = client.localStream && client.localStream.getAudioTracks()[0];
  $('me-mic').textContent = track ? track.label || 'on' : 'none (listening only)';
  canvas.focus();
}

function disconnect() {
  if (!demo.client) return;
  demo.client.disconnect();
  demo.client = null;
  removeBots();
  window.earshot = null;
  $('connect').textContent = 'Connect';
  $('connect').classList.remove('leave');
  $('me-mic').textContent = '-';
  setStatus('idle', 'not connected');
  renderPeers();
}

function setStatus(cls, text) {
  const el = $('status');
  el.className = `badge ${cls}`;
  el.textContent = text;
}

function onEvent(type, detail) {
  const entry = { type, detail, t: Date.now() };
  demo.events.push(entry);
  if (demo.events.length > 500) demo.events.shift();
  if (type === 'error') demo.errors.push(detail);
  if (type === 'connected') setStatus('connected', `connected to ${location.host || 'server'}`);
  if (type === 'disconnected' && detail.willReconnect) setStatus('connecting', `reconnecting in ${(detail.retryInMs / 1000).toFixed(1)} s…`);
  if (type === 'position' || type === 'speaking') {
    renderPeers();
    return; // too chatty for the log
  }
  if (type === 'peerstate' && (detail.dataChannel || detail.state === 'new')) {
    renderPeers();
    return;
  }
  log(type, detail);
  renderPeers();
}

function log(type, d) {
  const name = (id) => {
    const p = demo.client && demo.client.peers()[id];
    return p && p.position ? `${p.position.character_name} (${id})` : id;
  };
  const text = {
    connected: () => `connected as ${d.clientId}`,
    disconnected: () => `server connection closed (${d.code}${d.reason ? `: ${d.reason}` : ''})`,
    peerjoined: () => `${d.id} is near: ${d.initiator ? 'calling' : 'waiting for a call'}`,
    peerleft: () => `${d.id} left (${d.reason})`,
    peerstate: () => `${name(d.id)}: ${d.state}`,
    error: () => `${d.source} error: ${d.message}`,
  }[type];
  if (!text) return;
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text()}`;
  if (type === 'error') li.className = 'error';
  const ol = $('log');
  ol.prepend(li);
  while (ol.children.length > 60) ol.lastChild.remove();
}

// ---- the sidebar -----------------------------------------------------------

function distanceTo(p) {
  return Math.hypot(p.x - demo.pos.x, p.y - demo.pos.y);
}

// Forget observed positions too old to trust (simulated players renew theirs).
function noteSeen() {
  const now = Date.now();
  for (const [id, p] of demo.seen) if (now - p.t > SEEN_FOR_MS) demo.seen.delete(id);
}

// ---- simulated players -----------------------------------------------------

// n players scattered within the hearing radius around you, each on its own
// WebSocket: it registers, then asks for its list every 5 s to stay alive.
function addBots(n = 20) {
  const c = demo.client;
  if (!c) return [];
  const ids = [];
  for (let i = 0; i < n; i++) {
    const id = `sim-${randomSuffix()}`;
    const a = Math.random() * 2 * Math.PI;
    const r = 2 + Math.random() * (HEAR_RADIUS - 3);
    const pos = {
      x: Math.round(demo.pos.x + r * Math.cos(a)),
      y: Math.round(demo.pos.y + r * Math.sin(a)),
      map_id: c.mapId,
      channel: c.channel,
      character_name: id,
    };
    const ws = new WebSocket(serverUrl());
    ws.addEventListener('open', () => ws.send(JSON.stringify({
      type: 'UpdatePosition',
      data: { client_id: id, map_id: pos.map_id, x: pos.x, y: pos.y, channel: pos.channel },
    })));
    demo.bots.set(id, { ws, pos });
    demo.observe(id, pos);
    ids.push(id);
  }
  return ids;
}

function removeBots() {
  for (const [id, b] of demo.bots) {
    if (b.ws.readyState === WebSocket.OPEN) b.ws.send(JSON.stringify({ type: 'Disconnect', data: null }));
    b.ws.close();
    demo.seen.delete(id);
  }
  demo.bots.clear();
  renderPeers();
}

setInterval(() => {
  for (const [id, b] of demo.bots) {
    if (b.ws.readyState === WebSocket.OPEN) b.ws.send(JSON.stringify({ type: 'RequestPeerRefresh', data: null }));
    demo.observe(id, b.pos);
  }
}, 5000);

// Players within the hearing radius, on our map and channel, that the server
// did not put in our NearbyPeers: left out by the crowd cap. Nearest first.
function leftOut() {
  const c = demo.client;
  if (!c) return [];
  noteSeen();
  const peers = c.peers();
  const out = [];
  for (const [id, p] of demo.seen) {
    if (id === c.clientId || peers[id] || p.map_id !== c.mapId || (p.channel | 0) !== c.channel) continue;
    const d = distanceTo(p);
    if (d <= HEAR_RADIUS) out.push({ id, position: p, distance: d });
  }
  return out.sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1));
}

function renderLeftOut() {
  const ul = $('left-out');
  const out = leftOut();
  $('left-out-count').textContent = out.length;
  ul.replaceChildren();
  for (const { id, position, distance } of out) {
    const li = document.createElement('li');
    li.dataset.leftOut = id;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = position.character_name || id;
    const state = document.createElement('span');
    state.className = 'state left-out';
    state.textContent = 'near, left out (crowd cap)';
    const dist = document.createElement('span');
    dist.className = 'dist';
    dist.textContent = `${distance.toFixed(1)} away · last seen ${Math.round((Date.now() - position.t) / 1000)} s ago`;
    li.append(name, state, dist);
    ul.append(li);
  }
  $('bots-add').disabled = !demo.client;
  $('bots-remove').disabled = demo.bots.size === 0;
}

$('bots-add').addEventListener('click', () => addBots(20));
$('bots-remove').addEventListener('click', removeBots);

function renderPeers() {
  renderLeftOut();
  const ul = $('peers');
  const peers = demo.client ? Object.entries(demo.client.peers()) : [];
  $('peer-count').textContent = peers.length;
  ul.replaceChildren();
  if (peers.length === 0) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = demo.client ? 'nobody in earshot' : 'not connected';
    ul.append(li);
    return;
  }
  for (const [id, p] of peers.sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const li = document.createElement('li');
    li.dataset.peer = id;
    if (p.speaking) li.classList.add('speaking');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = (p.position && p.position.character_name) || id;
    const state = document.createElement('span');
    state.className = `state ${p.state}`;
    state.textContent = p.speaking ? `${p.state} · speaking` : p.state;
    const idEl = document.createElement('span');
    idEl.className = 'id';
    idEl.textContent = id;
    const dist = document.createElement('span');
    dist.className = 'dist';
    dist.textContent = p.position
      ? `${p.position.map_id !== demo.client.mapId ? 'other map' : `${distanceTo(p.position).toFixed(1)} away`} · vol ${Math.round(p.volume * 100)}%`
      : 'position unknown';
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('i');
    fill.style.width = `${Math.round(p.volume * 100)}%`;
    bar.append(fill);
    li.append(name, state, idEl, dist, bar);
    ul.append(li);
  }
}

// ---- moving ----------------------------------------------------------------

const KEYS = {
  ArrowUp: [0, -1], KeyW: [0, -1],
  ArrowDown: [0, 1], KeyS: [0, 1],
  ArrowLeft: [-1, 0], KeyA: [-1, 0],
  ArrowRight: [1, 0], KeyD: [1, 0],
};

function typing(e) {
  return e.target instanceof HTMLInputElement;
}
window.addEventListener('keydown', (e) => {
  if (!KEYS[e.code] || typing(e)) return;
  e.preventDefault();
  demo.keys.add(e.code);
  demo.target = null;
});
window.addEventListener('keyup', (e) => demo.keys.delete(e.code));
window.addEventListener('blur', () => demo.keys.clear());

canvas.addEventListener('click', (e) => {
  const r = canvas.getBoundingClientRect();
  const sx = ((e.clientX - r.left) * canvas.width) / r.width;
  const sy = ((e.clientY - r.top) * canvas.height) / r.height;
  const w = toWorld(sx, sy);
  demo.target = { x: Math.round(w.x), y: Math.round(w.y) };
  if (demo.client) demo.client.resumeAudio();
});

function step(dt) {
  // Someone else (the test, the console) moved the client: follow it.
  const c = demo.client;
  if (c && (c.x !== Math.round(demo.pos.x) || c.y !== Math.round(demo.pos.y))) {
    demo.pos = { x: c.x, y: c.y };
    demo.target = null;
  }
  let vx = 0;
  let vy = 0;
  for (const k of demo.keys) {
    vx += KEYS[k][0];
    vy += KEYS[k][1];
  }
  if (vx || vy) {
    const n = Math.hypot(vx, vy);
    demo.pos.x += (vx / n) * SPEED * dt;
    demo.pos.y += (vy / n) * SPEED * dt;
  } else if (demo.target) {
    const dx = demo.target.x - demo.pos.x;
    const dy = demo.target.y - demo.pos.y;
    const d = Math.hypot(dx, dy);
    if (d <= SPEED * dt) {
      demo.pos = { ...demo.target };
      demo.target = null;
    } else {
      demo.pos.x += (dx / d) * SPEED * dt;
      demo.pos.y += (dy / d) * SPEED * dt;
    }
  }
  if (c) c.move({ x: Math.round(demo.pos.x), y: Math.round(demo.pos.y) });
  $('me-pos').textContent = `(${Math.round(demo.pos.x)}, ${Math.round(demo.pos.y)}) map ${c ? c.mapId : $('map-id').value}, channel ${c ? c.channel : $('channel').value}`;
}

// ---- drawing ---------------------------------------------------------------

function toScreen(x, y) {
  return { x: canvas.width / 2 + (x - demo.pos.x) * SCALE, y: canvas.height / 2 + (y - demo.pos.y) * SCALE };
}
function toWorld(sx, sy) {
  return { x: demo.pos.x + (sx - canvas.width / 2) / SCALE, y: demo.pos.y + (sy - canvas.height / 2) / SCALE };
}

const LEFT_OUT_COLOUR = '#6b7280';
const STATE_COLOURS = { connected: '#3ecf8e', failed: '#ff5d5d', disconnected: '#ff5d5d', closed: '#8a93a3' };

function drawGrid() {
  const tl = toWorld(0, 0);
  const br = toWorld(canvas.width, canvas.height);
  ctx.lineWidth = 1;
  ctx.font = '10px system-ui, sans-serif';
  ctx.fillStyle = '#4a5262';
  for (let x = Math.floor(tl.x / 10) * 10; x <= br.x; x += 10) {
    const s = toScreen(x, 0).x;
    ctx.strokeStyle = x === 0 ? '#3a4250' : x % 50 === 0 ? '#2a313c' : '#1a1f26';
    ctx.beginPath();
    ctx.moveTo(s + 0.5, 0);
    ctx.lineTo(s + 0.5, canvas.height);
    ctx.stroke();
    if (x % 20 === 0) ctx.fillText(String(x), s + 3, canvas.height - 4);
  }
  for (let y = Math.floor(tl.y / 10) * 10; y <= br.y; y += 10) {
    const s = toScreen(0, y).y;
    ctx.strokeStyle = y === 0 ? '#3a4250' : y % 50 === 0 ? '#2a313c' : '#1a1f26';
    ctx.beginPath();
    ctx.moveTo(0, s + 0.5);
    ctx.lineTo(canvas.width, s + 0.5);
    ctx.stroke();
    if (y % 20 === 0) ctx.fillText(String(y), 3, s - 3);
  }
}

function drawPlayer(x, y, colour, label, sublabels, speaking, now) {
  const s = toScreen(x, y);
  if (speaking) {
    const pulse = 0.5 + 0.5 * Math.sin(now / 120);
    ctx.strokeStyle = `rgba(62, 207, 142, ${0.35 + 0.5 * pulse})`;
    ctx.lineWidth = 3;
    ctx.beginPath();
    ctx.arc(s.x, s.y, 13 + 4 * pulse, 0, Math.PI * 2);
    ctx.stroke();
  }
  ctx.fillStyle = colour;
  ctx.strokeStyle = '#0f1216';
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(s.x, s.y, 8, 0, Math.PI * 2);
  ctx.fill();
  ctx.stroke();
  ctx.textAlign = 'center';
  ctx.font = '600 13px system-ui, sans-serif';
  ctx.fillStyle = '#e6e9ee';
  ctx.fillText(label, s.x, s.y - 16);
  ctx.font = '11px system-ui, sans-serif';
  sublabels.forEach((text, i) => {
    ctx.fillStyle = i === 0 ? colour : '#8a93a3';
    ctx.fillText(text, s.x, s.y + 24 + 13 * i);
  });
  ctx.textAlign = 'start';
}

function draw(now) {
  ctx.fillStyle = '#0f1216';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  drawGrid();
  const me = toScreen(demo.pos.x, demo.pos.y);
  // Leave radius (dashed) and hearing radius (filled).
  ctx.setLineDash([6, 5]);
  ctx.strokeStyle = 'rgba(78, 161, 255, 0.55)';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.arc(me.x, me.y, LEAVE_RADIUS * SCALE, 0, Math.PI * 2);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = 'rgba(78, 161, 255, 0.08)';
  ctx.strokeStyle = 'rgba(78, 161, 255, 0.8)';
  ctx.beginPath();
  ctx.arc(me.x, me.y, HEAR_RADIUS * SCALE, 0, Math.PI * 2);
  ctx.fill();
  ctx.stroke();
  ctx.font = '10px system-ui, sans-serif';
  ctx.fillStyle = 'rgba(78, 161, 255, 0.9)';
  ctx.fillText(`hearing ${HEAR_RADIUS}`, me.x + HEAR_RADIUS * SCALE * 0.71 + 4, me.y - HEAR_RADIUS * SCALE * 0.71);
  ctx.fillText(`leave ${LEAVE_RADIUS}`, me.x + LEAVE_RADIUS * SCALE * 0.71 + 4, me.y - LEAVE_RADIUS * SCALE * 0.71);

  if (demo.target) {
    const t = toScreen(demo.target.x, demo.target.y);
    ctx.strokeStyle = '#4ea1ff';
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(t.x - 5, t.y - 5);
    ctx.lineTo(t.x + 5, t.y + 5);
    ctx.moveTo(t.x + 5, t.y - 5);
    ctx.lineTo(t.x - 5, t.y + 5);
    ctx.stroke();
  }

  const c = demo.client;
  if (c) {
    for (const [id, p] of Object.entries(c.peers())) {
      if (!p.position || p.position.map_id !== c.mapId) continue;
      const colour = STATE_COLOURS[p.state] || '#f5b83d';
      const s = toScreen(p.position.x, p.position.y);
      // A line to each connected peer, as thick as it is loud.
      if (p.state === 'connected') {
        ctx.strokeStyle = `rgba(62, 207, 142, ${0.25 + 0.5 * p.volume})`;
        ctx.lineWidth = 1 + 3 * p.volume;
        ctx.beginPath();
        ctx.moveTo(me.x, me.y);
        ctx.lineTo(s.x, s.y);
        ctx.stroke();
      }
      drawPlayer(p.position.x, p.position.y, colour, p.position.character_name || id,
        [p.state, `${p.speaking ? 'speaking · ' : ''}vol ${Math.round(p.volume * 100)}%`], p.speaking, now);
    }
  }
  if (c) {
    const peers = c.peers();
    for (const [id, b] of demo.bots) {
      if (peers[id] && b.pos.map_id === c.mapId) drawPlayer(b.pos.x, b.pos.y, '#f5b83d', id, ['heard (simulated)'], false, now);
    }
  }
  for (const { id, position } of leftOut()) {
    drawPlayer(position.x, position.y, LEFT_OUT_COLOUR, position.character_name || id,
      ['near, left out (crowd cap)'], false, now);
  }
  drawPlayer(demo.pos.x, demo.pos.y, '#4ea1ff', `${$('name').value || 'you'} (you)`, [], c && c.speaking, now);
}

let last = performance.now();
function frame(now) {
  const dt = Math.min(0.1, (now - last) / 1000);
  last = now;
  step(dt);
  draw(now);
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);
renderPeers();
setInterval(renderPeers, 250); // distances change as we walk

// Leave cleanly when the tab closes, so the others drop us at once.
window.addEventListener('pagehide', () => {
  removeBots();
  if (demo.client) demo.client.disconnect();
});

if (params.get('autoconnect') === '1') connect();
