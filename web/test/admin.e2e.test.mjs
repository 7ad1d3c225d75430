// The operator's window in Chromium: three players (the demo page) on one
// map, /admin open beside them. The page's data model must equal the
// server's own answer, the pixels where a matched pair's line runs must be
// the pair colour (and the crowd cap's dashed lines the capped colour), and
// kicking a player from the page must close its connection with 4000 after
// an Error, stop its reconnecting and take it off the map. A screenshot of
// the page goes to E2E_ARTIFACTS (the build's test-artifacts/admin.png).

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  here, WEB_DIR, stop as stopServer, pluginsAndHooks, startEarshot, launchChromium,
  makeWaitFor, openPage, makeSteps,
} from './e2e-harness.mjs';

const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(here, 'artifacts');
const TOKEN = 'admin-e2e-token-0123456789';
const MAP = 7;
// max_peers 1: a and b (5 apart) are matched; c is in range of both but
// both are full with a nearer peer, so (a, c) and (b, c) are left out.
const SPOTS = { a: [0, 0], b: [5, 0], c: [6, 8] };
const PAIR_RGB = [0x3e, 0xcf, 0x8e];
const CAPPED_RGB = [0xf5, 0xb8, 0x3d];

let server;
let context;
let tmp;
let admin;
const pages = {};
const pageErrors = [];
const waitFor = makeWaitFor(20_000, () => ({ state: window.earshot && window.earshot.state, errors: window.demo && window.demo.errors }));
const steps = makeSteps(60_000);
const step = steps.step;

async function api(name, body) {
  const init = { headers: { Authorization: `Bearer ${TOKEN}` } };
  if (body) Object.assign(init, { method: 'POST', body: JSON.stringify(body) });
  const res = await fetch(`http://127.0.0.1:${server.port}/admin/api/${name}`, init);
  assert.equal(res.status, 200, `${name}: HTTP ${res.status}`);
  return res.json();
}

/** A map answer reduced to what the page draws, in a stable order. */
function drawn(map) {
  const clients = map.clients.map((c) => ({ id: c.id, x: c.x, y: c.y, peers: [...c.peers].sort() }))
    .sort((p, q) => (p.id < q.id ? -1 : 1));
  const capped = map.capped.map((p) => [...p].sort()).sort();
  return { clients, capped, hearing_radius: map.hearing_radius };
}

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'earshot-admin-e2e-'));
  await mkdir(ARTIFACTS, { recursive: true });
  server = await startEarshot(
    path.join(tmp, 'earshot.cfg'),
    `server = { address = "127.0.0.1"; port = 0; web = true; };
session = { idle_timeout = 30.0; refresh_interval = 5.0; max_peers = 1; };
admin = { enabled = true; token = "${TOKEN}"; };
log = { level = "info"; };
${pluginsAndHooks(WEB_DIR)}`,
  );
  context = await launchChromium(path.join(tmp, 'profile'), { viewport: { width: 1320, height: 860 } });
});

after(async () => {
  if (context) await context.close().catch(() => {});
  await stopServer(server);
  if (steps.broken && server) console.log(`earshot output:\n${server.log.slice(-5000)}`);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

step('three players join the map', async () => {
  for (const [id, [x, y]] of Object.entries(SPOTS)) {
    const q = new URLSearchParams({ id, name: id, map: String(MAP), x: String(x), y: String(y), autoconnect: '1' });
    pages[id] = await openPage({ context, id, url: `http://127.0.0.1:${server.port}/?${q}`, pageErrors, waitFor });
  }
  const view = await api(`map?game=0&map=${MAP}`);
  assert.deepEqual(drawn(view), {
    clients: [{ id: 'a', x: 0, y: 0, peers: ['b'] }, { id: 'b', x: 5, y: 0, peers: ['a'] }, { id: 'c', x: 6, y: 8, peers: [] }],
    capped: [['a', 'c'], ['b', 'c']],
    hearing_radius: 20,
  });
});

step('the admin page draws what the server says', async () => {
  admin = await context.newPage();
  admin.on('pageerror', (err) => pageErrors.push(`admin: ${err.message}`));
  await admin.goto(`http://127.0.0.1:${server.port}/admin/#token=${TOKEN}`);
  await waitFor(admin, 'the map with three clients',
    () => window.earshotAdmin.map && window.earshotAdmin.map.clients.length === 3);
  const model = await admin.evaluate(() => window.earshotAdmin.map);
  assert.deepEqual(drawn(model), drawn(await api(`map?game=0&map=${MAP}`)));
  assert.equal(await admin.evaluate(() => location.hash), '', 'the token is taken out of the address');
  // pixels: the middle of a-b is the pair colour; the b-c segment is dashed in the capped colour
  const px = await admin.evaluate(({ a, b, c }) => {
    const cv = document.getElementById('world');
    const g = cv.getContext('2d');
    const at = (x, y) => Array.from(g.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3));
    const [ax, ay] = window.earshotAdmin.project(...a), [bx, by] = window.earshotAdmin.project(...b);
    const [cx, cy] = window.earshotAdmin.project(...c);
    const along = [];
    for (let i = 4; i <= 16; i++) along.push(at(bx + ((cx - bx) * i) / 20, by + ((cy - by) * i) / 20));
    return { mid: at((ax + bx) / 2, (ay + by) / 2), along, empty: at(cv.width - 3, 3) };
  }, SPOTS);
  const near = (rgb, want) => rgb.every((v, i) => Math.abs(v - want[i]) <= 40);
  assert.ok(near(px.mid, PAIR_RGB), `pair line pixel ${px.mid}`);
  const capped = px.along.filter((rgb) => near(rgb, CAPPED_RGB)).length;
  assert.ok(capped >= 4 && capped < px.along.length, `dashed capped line: ${capped} of ${px.along.length} samples`);
  assert.ok(!near(px.empty, PAIR_RGB) && !near(px.empty, CAPPED_RGB), 'an empty corner is empty');
});

step('a client selected on the canvas shows its panel; a screenshot is kept', async () => {
  const box = await admin.locator('#world').boundingBox();
  const [x, y] = await admin.evaluate(({ c }) => window.earshotAdmin.project(...c), SPOTS);
  const scale = box.width / (await admin.evaluate(() => document.getElementById('world').width));
  await admin.mouse.move(box.x + x * scale, box.y + y * scale);
  await admin.mouse.click(box.x + x * scale, box.y + y * scale);
  await waitFor(admin, 'the panel of c', () => document.getElementById('c-id').textContent === 'c'
    && document.getElementById('c-address').textContent === '127.0.0.1');
  const server_c = await api('client?id=c');
  assert.equal(await admin.locator('#c-capped').textContent(), server_c.capped.join(', '));
  assert.equal(await admin.locator('#c-node').textContent(), server_c.node);
  await admin.locator('#reason').fill('testing the kick');
  await admin.screenshot({ path: path.join(ARTIFACTS, 'admin.png') });
});

step('kicking from the page closes the player and it leaves the map', async () => {
  await admin.locator('#kick').click();
  await waitFor(pages.c, 'c told and stopped', () => window.demo.errors.some((e) => e.message === 'kicked: testing the kick')
    && window.earshot.state === 'idle');
  await waitFor(admin, 'c gone from the page', () => window.earshotAdmin.map.clients.length === 2
    && !window.earshotAdmin.map.clients.some((c) => c.id === 'c'));
  const view = await api(`map?game=0&map=${MAP}`);
  assert.deepEqual(drawn(view).clients.map((c) => c.id), ['a', 'b']);
  assert.deepEqual(drawn(await admin.evaluate(() => window.earshotAdmin.map)), drawn(view));
  assert.match(server.log, /admin: 127\.0\.0\.1 kicked c \(close 4000\): testing the kick/);
  assert.deepEqual(pageErrors, []);
});
