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
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, access } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const WEB_DIR = path.resolve(here, '..');
const EARSHOT_BIN = process.env.EARSHOT_BIN || '/work/main/build/earshot';
const PLUGIN_DIR = process.env.EARSHOT_PLUGIN_DIR || '/work/main/build/plugins';
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

const STATE_TIMEOUT = 20_000;
const REFUSE_MS = 2_000;

const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

let server;
let proxy;
let context;
let tmp;
const pageErrors = [];

// ---- the server ------------------------------------------------------------

async function startServer() {
  await access(EARSHOT_BIN).catch(() => {
    throw new Error(`earshot binary not found at ${EARSHOT_BIN} (set EARSHOT_BIN)`);
  });
  const cfg = path.join(tmp, 'earshot.cfg');
  await writeFile(
    cfg,
    `server = { address = "127.0.0.1"; port = 0; web = true; metrics = "loopback"; };
session = { takeover = "same_address"; idle_timeout = 15.0; refresh_interval = 5.0; resume_grace = 15.0; };
log = { level = "info"; format = "text"; };
plugin_dir = ${JSON.stringify(PLUGIN_DIR)};
web_dir = ${JSON.stringify(WEB_DIR)};
hooks = (
  { type = "plugin"; name = "relay_guard"; settings = { grace = 30.0; }; },
  { type = "plugin"; name = "proximity"; settings = { radius = 20; leave_radius = 25; }; }
);
`,
  );
  const proc = spawn(EARSHOT_BIN, ['-c', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  const srv = { proc, port: 0, log: '', exited: null };
  const onData = (chunk) => {
    srv.log += chunk.toString();
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  srv.exitedPromise = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((srv.exited = { code, signal }))));
  process.once('exit', () => srv.exited || proc.kill('SIGKILL'));
  const deadline = Date.now() + 10_000;
  while (!srv.port) {
    const m = /listening on wss?:\/\/[^\s]*:(\d+)\//.exec(srv.log);
    if (m) srv.port = Number(m[1]);
    else if (srv.exited) throw new Error(`earshot exited (${JSON.stringify(srv.exited)}) before listening:\n${srv.log}`);
    else if (Date.now() > deadline) throw new Error(`earshot did not say where it listens within 10 s:\n${srv.log}`);
    else await new Promise((r) => setTimeout(r, 50));
  }
  return srv;
}

async function stopServer(srv) {
  if (!srv || srv.exited) return;
  srv.proc.kill('SIGTERM');
  const timer = setTimeout(() => srv.proc.kill('SIGKILL'), 8_000);
  await srv.exitedPromise;
  clearTimeout(timer);
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

async function waitFor(page, what, fn, arg, timeout = STATE_TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await page.evaluate(fn, arg).catch((err) => {
      if (page.isClosed()) throw err;
      return null;
    });
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function openPlayer(id, name, x, y, wsUrl) {
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${id}: ${err.message}`));
  const q = new URLSearchParams({ id, name, map: '1', x: String(x), y: String(y), autoconnect: '1' });
  if (wsUrl) q.set('server', wsUrl);
  await page.goto(`http://127.0.0.1:${server.port}/?${q}`);
  await waitFor(page, `${id} registered`, () => window.earshot && window.earshot.state === 'connected');
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
  return waitFor(page, what, (id) => {
    const p = window.earshot.peers()[id];
    const pc = window.earshot.peerConnection(id);
    return p && p.state === 'connected' && pc && pc.connectionState === 'connected';
  }, peerId);
}

function audioBytes(page, peerId) {
  return page.evaluate(async (id) => {
    const pc = window.earshot.peerConnection(id);
    if (!pc) return -1;
    let bytes = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') bytes += s.bytesReceived || 0;
    });
    return bytes;
  }, peerId);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- setup -----------------------------------------------------------------

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'earshot-resume-e2e-'));
  server = await startServer();
  proxy = await startProxy(server.port);
  await access(CHROMIUM_BIN).catch(() => {
    throw new Error(`Chromium not found at ${CHROMIUM_BIN} (apt-get install chromium, or set CHROMIUM_BIN)`);
  });
  context = await chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
    executablePath: CHROMIUM_BIN,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1000, height: 700 },
    timeout: 30_000,
  });
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
  await waitFor(b, 'audio from A at B', async (start) => {
    const pc = window.earshot.peerConnection('A');
    let bytes = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') bytes += s.bytesReceived || 0;
    });
    return bytes > start + 2000;
  }, startAtB);
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
  await waitFor(b, 'audio from A at B after the resume', async (start) => {
    const pc = window.earshot.peerConnection('A');
    let bytes = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') bytes += s.bytesReceived || 0;
    });
    return bytes > start + 2000;
  }, after);
  assert.match(server.log, /resumed \(/, 'the server logged the resume');
  assert.doesNotMatch(server.log, /left \(/, 'nobody left');
  assert.deepEqual(pageErrors, []);
});
