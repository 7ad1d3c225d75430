// End-to-end test of the browser client and the demo page against the real
// earshot binary, in Debian's headless Chromium driven by playwright-core.
//
//   cd web && npm ci && node --test test/e2e.test.mjs
//
// Environment:
//   EARSHOT_BIN         the server binary (default /work/main/build/earshot)
//   EARSHOT_PLUGIN_DIR  its plugins (default /work/main/build/plugins)
//   CHROMIUM_BIN        the browser (default /usr/bin/chromium)
//   E2E_ARTIFACTS       where the screenshot goes (default web/test/artifacts)
//
// Three players, each a page of the demo: A (0,0) and B (10,0) on map 1 are
// in earshot of each other, C (100,0) on map 1 is not.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  here, WEB_DIR, stop as stopServer, pluginsAndHooks, startEarshot, launchChromium,
  makeWaitFor, openPage, peerConnected, audioAtLeast, audioBytes, makeSteps,
} from './e2e-harness.mjs';

const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(here, 'artifacts');

const STATE_TIMEOUT = 20_000; // for anything WebRTC has to negotiate
const STEP_TIMEOUT = 60_000;

let server; // {proc, port, log}
let context; // the browser (a persistent context on a fresh profile)
let tmp;
const pages = {}; // player -> Page
const pageErrors = []; // uncaught exceptions in any page

// ---- the server ------------------------------------------------------------

async function startServer(port = 0) {
  // The stock matching rule and relay guard, this folder as web_dir, and an
  // OS-chosen port at first (read back from the "listening on" log line).
  const srv = await startEarshot(
    path.join(tmp, 'earshot.cfg'),
    `server = { address = "127.0.0.1"; port = ${port}; web = true; metrics = "loopback"; };
session = { takeover = "same_address"; idle_timeout = 15.0; refresh_interval = 5.0; };
log = { level = "info"; format = "text"; };
${pluginsAndHooks(WEB_DIR)}`,
  );
  const health = await fetch(`http://127.0.0.1:${srv.port}/healthz`);
  assert.equal(health.status, 200, 'GET /healthz');
  return srv;
}

// ---- pages -----------------------------------------------------------------

// Poll the page until fn(arg) is truthy; on timeout, fail with its view of its peers.
const waitFor = makeWaitFor(STATE_TIMEOUT);

async function openPlayer(id, name, x, y, map = 1) {
  const q = new URLSearchParams({ id, name, map: String(map), x: String(x), y: String(y), autoconnect: '1' });
  return openPage({
    context, id, url: `http://127.0.0.1:${server.port}/?${q}`, pageErrors, waitFor, logConsoleErrors: true,
    onPage: (page) => (pages[id] = page),
  });
}

const peersOf = (page) => page.evaluate(() => window.earshot.peers());

function connectedTo(page, peerId, what) {
  return waitFor(page, what, peerConnected, peerId);
}

// Run the scenario's steps in order; once one fails, the rest are skipped.
const steps = makeSteps(STEP_TIMEOUT);
const step = steps.step;

// ---- setup -----------------------------------------------------------------

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'earshot-e2e-'));
  await mkdir(ARTIFACTS, { recursive: true });
  server = await startServer(0);
  context = await launchChromium(path.join(tmp, 'chromium-profile'), { viewport: { width: 1200, height: 720 } });
});

after(async () => {
  if (context) await context.close().catch(() => {});
  await stopServer(server);
  if (server && (process.env.E2E_VERBOSE || steps.broken)) console.log(`---- earshot log ----\n${server.log}`);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

// ---- the scenario ------------------------------------------------------------

step('the demo page and the client library are served by earshot', async () => {
  for (const [file, type] of [
    ['/', 'text/html'],
    ['/earshot-client.js', 'text/javascript'],
    ['/demo.js', 'text/javascript'],
    ['/demo.css', 'text/css'],
  ]) {
    const res = await fetch(`http://127.0.0.1:${server.port}${file}`);
    assert.equal(res.status, 200, `GET ${file}`);
    assert.match(res.headers.get('content-type') || '', new RegExp(`^${type}`), `Content-Type of ${file}`);
  }
});

step('A (0,0) and B (10,0) connect to each other over WebRTC', async () => {
  await openPlayer('A', 'Alice', 0, 0);
  await openPlayer('B', 'Bob', 10, 0);
  await connectedTo(pages.A, 'B', 'A connected to B');
  await connectedTo(pages.B, 'A', 'B connected to A');
  const a = await peersOf(pages.A);
  const b = await peersOf(pages.B);
  assert.deepEqual(Object.keys(a), ['B']);
  assert.deepEqual(Object.keys(b), ['A']);
  // Ordinal comparison: "B" > "A", so B creates the data channel and the offer.
  assert.equal(b.A.initiator, true, 'B (the higher id) makes the offer');
  assert.equal(a.B.initiator, false, 'A answers');
});

step('positions flow over the data channel both ways', async () => {
  const atA = await waitFor(pages.A, "B's position at A", () => window.earshot.peers().B?.position);
  const atB = await waitFor(pages.B, "A's position at B", () => window.earshot.peers().A?.position);
  assert.deepEqual(atA, { map_id: 1, x: 10, y: 0, character_name: 'Bob' });
  assert.deepEqual(atB, { map_id: 1, x: 0, y: 0, character_name: 'Alice' });
  // Volume from distance: 10 units of a 25 unit leave radius.
  const a = await peersOf(pages.A);
  const b = await peersOf(pages.B);
  assert.ok(Math.abs(a.B.volume - 0.6) < 1e-9, `A hears B at volume ${a.B.volume}, want 0.6`);
  assert.ok(Math.abs(b.A.volume - 0.6) < 1e-9, `B hears A at volume ${b.A.volume}, want 0.6`);
  const vol = await pages.A.evaluate(() => document.querySelector('audio[data-earshot-peer="B"]')?.volume);
  assert.ok(Math.abs(vol - 0.6) < 1e-6, `A's audio element for B plays at volume ${vol}, want 0.6`);
});

step('audio flows both ways', async () => {
  // Opus from the fake microphone runs at roughly 3 KB/s here: 4000 more
  // bytes is more than a second of steady audio.
  for (const [page, to, from] of [
    [pages.A, 'A', 'B'],
    [pages.B, 'B', 'A'],
  ]) {
    const start = await audioBytes(page, from);
    assert.ok(start >= 0, `${to} has a peer connection to ${from}`);
    const t0 = Date.now();
    await waitFor(
      page,
      `inbound audio from ${from} at ${to} to grow past ${start + 4000} bytes`,
      audioAtLeast,
      { id: from, want: start + 4000 },
    );
    console.log(`${to} received 4000 more bytes of audio from ${from} in ${Date.now() - t0} ms (from ${start}, now ${await audioBytes(page, from)})`);
  }
});

step('C (100,0) on the same map has no peers', async () => {
  await openPlayer('C', 'Carol', 100, 0);
  // C registered (NearbyPeers received) and the others did not match it.
  assert.deepEqual(await peersOf(pages.C), {});
  assert.deepEqual(Object.keys(await peersOf(pages.A)), ['B']);
  assert.deepEqual(Object.keys(await peersOf(pages.B)), ['A']);
});

step('screenshot of the demo with two connected players', async () => {
  // Let B's speaking state show (the fake microphone beeps) and the map redraw.
  await waitFor(pages.A, 'the demo to list B as connected', () =>
    document.querySelector('#peers li[data-peer="B"] .state.connected') !== null);
  const file = path.join(ARTIFACTS, 'demo-two-players.png');
  await pages.A.bringToFront();
  await pages.A.screenshot({ path: file });
  await access(file);
});

step('a failed peer connection is closed and retried with a new offer', async () => {
  await pages.A.evaluate(() => (window.__oldB = window.earshot.peerConnection('B')));
  await pages.B.evaluate(() => (window.__oldA = window.earshot.peerConnection('A')));
  // Do at B (the offerer) what its connectionstatechange handler does when
  // ICE reports "failed": a real failure takes ICE half a minute to notice.
  await pages.B.evaluate(() => window.earshot._peerFailed(window.earshot._peers.get('A')));
  assert.equal(await pages.B.evaluate(() => window.__oldA.connectionState), 'closed', "B's failed pc is closed");
  const fresh = ({ id, old }) => {
    const pc = window.earshot.peerConnection(id);
    return pc && pc !== window[old] && pc.connectionState === 'connected';
  };
  await waitFor(pages.B, 'B to reconnect to A on a new peer connection', fresh, { id: 'A', old: '__oldA' });
  await waitFor(pages.A, 'A to answer the new offer on a new peer connection', fresh, { id: 'B', old: '__oldB' });
  assert.equal(await pages.A.evaluate(() => window.__oldB.connectionState), 'closed', "A's old pc is closed");
  const states = await pages.B.evaluate(() =>
    window.demo.events.filter((e) => e.type === 'peerstate' && e.detail.id === 'A' && !e.detail.dataChannel).map((e) => e.detail.state));
  assert.ok(states.includes('failed') && states.includes('retrying'), `B went through failed and retrying: ${states}`);
  // The new data channel carries positions.
  await pages.B.evaluate(() => window.demo.moveTo(11, 0));
  await waitFor(pages.A, "B's new position (11,0) at A", () => window.earshot.peers().B?.position?.x === 11);
  assert.equal(await pages.A.evaluate(() => document.querySelectorAll('audio[data-earshot-peer="B"]').length), 1, 'one audio element for B');
});

step('moving B to (60,0) closes the pair on both sides', async () => {
  await pages.A.evaluate(() => (window.__pcB = window.earshot.peerConnection('B')));
  await pages.B.evaluate(() => (window.__pcA = window.earshot.peerConnection('A')));
  await pages.B.evaluate(() => window.demo.moveTo(60, 0));
  await waitFor(pages.A, 'A to drop B', () => Object.keys(window.earshot.peers()).length === 0);
  await waitFor(pages.B, 'B to drop A', () => Object.keys(window.earshot.peers()).length === 0);
  assert.equal(await pages.A.evaluate(() => window.__pcB.connectionState), 'closed');
  assert.equal(await pages.B.evaluate(() => window.__pcA.connectionState), 'closed');
  assert.equal(await pages.A.evaluate(() => document.querySelectorAll('audio[data-earshot-peer]').length), 0, "A's audio element for B removed");
  assert.equal(await pages.B.evaluate(() => document.querySelectorAll('audio[data-earshot-peer]').length), 0, "B's audio element for A removed");
});

step('moving C to (5,0) connects A and C', async () => {
  await pages.C.evaluate(() => window.demo.moveTo(5, 0));
  await connectedTo(pages.A, 'C', 'A connected to C');
  await connectedTo(pages.C, 'A', 'C connected to A');
  assert.deepEqual(Object.keys(await peersOf(pages.A)), ['C']);
  assert.deepEqual(Object.keys(await peersOf(pages.C)), ['A']);
  assert.deepEqual(await peersOf(pages.B), {}, 'B (60,0) stays alone');
  const atA = await waitFor(pages.A, "C's position at A", () => window.earshot.peers().C?.position);
  assert.deepEqual(atA, { map_id: 1, x: 5, y: 0, character_name: 'Carol' });
});

step("closing C's page drops C from A's peers", async () => {
  await pages.A.evaluate(() => (window.__pcC = window.earshot.peerConnection('C')));
  await pages.C.close({ runBeforeUnload: false });
  delete pages.C;
  await waitFor(pages.A, 'A to drop C', () => Object.keys(window.earshot.peers()).length === 0);
  assert.equal(await pages.A.evaluate(() => window.__pcC.connectionState), 'closed');
});

step('after a server restart the clients reconnect and find each other again', async () => {
  const port = server.port;
  await stopServer(server);
  for (const id of ['A', 'B']) {
    await waitFor(pages[id], `${id} to notice the server is gone`, () => window.earshot.state === 'connecting');
  }
  server = await startServer(port);
  for (const id of ['A', 'B']) {
    await waitFor(pages[id], `${id} to re-register`, () => window.earshot.state === 'connected');
  }
  await pages.B.evaluate(() => window.demo.moveTo(10, 0));
  await connectedTo(pages.A, 'B', 'A connected to B again');
  await connectedTo(pages.B, 'A', 'B connected to A again');
});

step('players standing still stay registered past the 15 s idle timeout (keepalive)', async () => {
  const mark = await Promise.all(['A', 'B'].map((id) =>
    pages[id].evaluate(() => ({ events: window.demo.events.length, pc: (window.__pcKeep = window.earshot.peerConnection(window.earshot.clientId === 'A' ? 'B' : 'A')) && true }))));
  const since = server.log.length;
  // Nothing moves for longer than the server's idle timeout.
  const until = Date.now() + 17_000;
  await waitFor(pages.A, '17 s to pass', (t) => Date.now() >= t, until, 20_000);
  assert.doesNotMatch(server.log.slice(since), /timed out|left \(/, 'nobody timed out or left');
  for (const [i, id] of ['A', 'B'].entries()) {
    const view = await pages[id].evaluate((n) => ({
      state: window.earshot.state,
      peers: Object.keys(window.earshot.peers()),
      samePc: window.earshot.peerConnection(window.earshot.clientId === 'A' ? 'B' : 'A') === window.__pcKeep,
      reconnects: window.demo.events.slice(n).filter((e) => e.type === 'connected' || e.type === 'disconnected').length,
    }), mark[i].events);
    assert.deepEqual(view, { state: 'connected', peers: [id === 'A' ? 'B' : 'A'], samePc: true, reconnects: 0 }, `${id} after standing still`);
  }
});

step('no page threw and the server reported no errors to A or B', async () => {
  assert.deepEqual(pageErrors, []);
  for (const id of ['A', 'B']) {
    const errors = await pages[id].evaluate(() => window.demo.errors);
    assert.deepEqual(errors, [], `errors seen by ${id}`);
  }
  assert.equal(server.exited, null, 'earshot still running');
});
