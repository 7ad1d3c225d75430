// End-to-end test of resuming a dropped connection (protocol v1.1) in
// Debian's headless Chromium driven by playwright-core, against the real
// earshot binary.
//
//   cd web && npm ci && node --test test/resume.e2e.test.mjs
//
// Environment: as test/e2e.test.mjs (EARSHOT_BIN, EARSHOT_PLUGIN_DIR,
// CHROMIUM_BIN).
//
// Two players, A (0,0) and B (10,0) on map 1, talk peer to peer over
// loopback. A reaches earshot through a TCP proxy in this process; the proxy
// cuts A's WebSocket (both sockets destroyed: no close frame), refuses new
// connections for 2 s, then lets them through. Audio must keep flowing
// through the gap, A must resume (a Session on its new connection, a resume
// in /metrics), and B must never see A leave.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  WEB_DIR, sleep, stop as stopServer, pluginsAndHooks, startEarshot, launchChromium,
  makeWaitFor, openPage, peerConnected, audioAtLeast, audioBytes,
} from './e2e-harness.mjs';

const STATE_TIMEOUT = 20_000;
const REFUSE_MS = 2_000;

let server;
let proxy;
let context;
let tmp;
const pageErrors = [];

// ---- the server ------------------------------------------------------------

function startServer() {
  return startEarshot(
    path.join(tmp, 'earshot.cfg'),
    `server = { address = "127.0.0.1"; port = 0; web = true; metrics = "loopback"; };
session = { takeover = "same_address"; idle_timeout = 15.0; refresh_interval = 5.0; resume_grace = 15.0; };
log = { level = "info"; format = "text"; };
${pluginsAndHooks(WEB_DIR)}`,
  );
}

async function metric(name) {
  const body = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(body);
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

// ---- the proxy -------------------------------------------------------------

/** A TCP proxy to 127.0.0.1:target that can cut every connection and refuse new ones. */
function startProxy(target) {
  const pairs = new Set();
  const p = { port: 0, refuseUntil: 0, openedAt: 0, accepted: 0 };
  p.server = net.createServer((client) => {
    if (Date.now() < p.refuseUntil) {
      client.destroy();
      return;
    }
    p.accepted++;
    const upstream = net.connect(target, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  /** Destroy both sockets of every connection (no close frame either way) and refuse for ms. */
  p.cut = (ms) => {
    p.refuseUntil = Date.now() + ms;
    p.openedAt = p.refuseUntil;
    for (const { client, upstream } of pairs) {
      client.resetAndDestroy ? client.resetAndDestroy() : client.destroy();
      upstream.resetAndDestroy ? upstream.resetAndDestroy() : upstream.destroy();
    }
    pairs.clear();
  };
  p.close = () => {
    p.cut(0);
    return new Promise((r) => p.server.close(() => r()));
  };
  return new Promise((resolve) => p.server.listen(0, '127.0.0.1', () => {
    p.port = p.server.address().port;
    resolve(p);
  }));
}

// ---- pages -----------------------------------------------------------------

const waitFor = makeWaitFor(STATE_TIMEOUT);

async function openPlayer(id, name, x, y, wsUrl) {
  const q = new URLSearchParams({ id, name, map: '1', x: String(x), y: String(y), autoconnect: '1' });
  if (wsUrl) q.set('server', wsUrl);
  const page = await openPage({ context, id, url: `http://127.0.0.1:${server.port}/?${q}`, pageErrors, waitFor });
  // What this test watches, recorded from the start.
  await page.evaluate(() => {
    window.__seen = { peerleft: [], resumed: [], disconnected: [], sessions: 0 };
    for (const type of ['peerleft', 'resumed', 'disconnected']) {
      window.earshot.on(type, (d) => window.__seen[type].push({ at: Date.now(), ...d }));
    }
  });
  return page;
}

function connectedTo(page, peerId, what) {
  return waitFor(page, what, peerConnected, peerId);
}

// ---- setup -----------------------------------------------------------------

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'earshot-resume-e2e-'));
  server = await startServer();
  proxy = await startProxy(server.port);
  context = await launchChromium(path.join(tmp, 'chromium-profile'), { viewport: { width: 1000, height: 700 } });
});

after(async () => {
  if (context) await context.close().catch(() => {});
  if (proxy) await proxy.close();
  await stopServer(server);
  if (process.env.E2E_VERBOSE) console.log(`---- earshot log ----\n${server.log}`);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

// ---- the scenario ------------------------------------------------------------

test('a cut WebSocket is resumed while the audio keeps flowing', { timeout: 90_000 }, async () => {
  const a = await openPlayer('A', 'Alice', 0, 0, `ws://127.0.0.1:${proxy.port}/`);
  const b = await openPlayer('B', 'Bob', 10, 0, null);
  await connectedTo(a, 'B', 'A connected to B');
  await connectedTo(b, 'A', 'B connected to A');
  assert.ok(await a.evaluate(() => window.earshot._resume.token), 'A got a Session (resume token)');
  // audio flows both ways before the cut
  const startAtB = await audioBytes(b, 'A');
  // more than 2000 bytes more
  await waitFor(b, 'audio from A at B', audioAtLeast, { id: 'A', want: startAtB + 2001 });
  await a.evaluate(() => (window.__pcB = window.earshot.peerConnection('B')));
  await b.evaluate(() => (window.__pcA = window.earshot.peerConnection('A')));
  const resumesBefore = await metric('earshot_resumes_total');
  const acceptedBefore = proxy.accepted;

  proxy.cut(REFUSE_MS);
  await waitFor(a, 'A to see its socket gone', () => window.__seen.disconnected.length === 1);
  const lost = await a.evaluate(() => window.__seen.disconnected[0]);
  assert.equal(lost.resuming, true, 'A resumes rather than starting over');
  // during the gap (the proxy still refuses), audio keeps flowing both ways
  const gapStart = [await audioBytes(b, 'A'), await audioBytes(a, 'B')];
  await sleep(REFUSE_MS * 0.6);
  assert.ok(Date.now() < proxy.openedAt, 'still within the gap');
  const gapEnd = [await audioBytes(b, 'A'), await audioBytes(a, 'B')];
  assert.ok(gapEnd[0] > gapStart[0], `audio from A at B grew during the gap (${gapStart[0]} -> ${gapEnd[0]})`);
  assert.ok(gapEnd[1] > gapStart[1], `audio from B at A grew during the gap (${gapStart[1]} -> ${gapEnd[1]})`);
  assert.equal(await a.evaluate(() => window.earshot.state), 'connecting');

  // the proxy opens: A resumes
  const resumed = await waitFor(a, 'A to resume', () => window.__seen.resumed[0], undefined, 30_000);
  await waitFor(a, 'A registered again', () => window.earshot.state === 'connected');
  assert.ok(proxy.accepted > acceptedBefore, 'A came back through the proxy');
  const resumedAt = await a.evaluate(() => window.__seen.resumed[0].at);
  console.log(`# resume took ${resumedAt - proxy.openedAt} ms after the proxy opened ` +
    `(${resumed.gapMs} ms from the loss to the new Session)`);
  assert.equal(await metric('earshot_resumes_total'), resumesBefore + 1, 'one resume counted');

  // B never saw A leave; both kept their peer connections
  const atB = await b.evaluate(() => ({
    peerleft: window.__seen.peerleft,
    disconnected: window.__seen.disconnected.length,
    peers: Object.keys(window.earshot.peers()),
    samePc: window.earshot.peerConnection('A') === window.__pcA,
  }));
  assert.deepEqual(atB, { peerleft: [], disconnected: 0, peers: ['A'], samePc: true });
  const atA = await a.evaluate(() => ({
    peerleft: window.__seen.peerleft,
    peers: Object.keys(window.earshot.peers()),
    samePc: window.earshot.peerConnection('B') === window.__pcB,
  }));
  assert.deepEqual(atA, { peerleft: [], peers: ['B'], samePc: true });
  // the resumed signaling works: a move reaches B over the data channel and
  // the server still lists A for B
  const after = await audioBytes(b, 'A');
  await waitFor(b, 'audio from A at B after the resume', audioAtLeast, { id: 'A', want: after + 2001 });
  assert.match(server.log, /resumed \(/, 'the server logged the resume');
  assert.doesNotMatch(server.log, /left \(/, 'nobody left');
  assert.deepEqual(pageErrors, []);
});
