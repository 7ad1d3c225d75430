// End-to-end test of TURN credentials minted by earshot, in Debian's headless
// Chromium driven by playwright-core: two players whose peer connections may
// use relay candidates only (iceTransportPolicy "relay") hear each other
// through a real coturn on loopback with the credentials earshot handed
// them; with the wrong secret in earshot's config they gather no candidate
// and do not connect, and the client reports the TURN server's 401.
//
//   cd web && npm ci && node --test test/turn.e2e.test.mjs
//
// Environment:
//   EARSHOT_BIN         the server binary (default /work/main/build/earshot)
//   EARSHOT_PLUGIN_DIR  its plugins (default /work/main/build/plugins)
//   CHROMIUM_BIN        the browser (default /usr/bin/chromium)
//   TURNSERVER_BIN      coturn (default /usr/bin/turnserver)
//
// Everything it starts (coturn, earshot, Chromium) listens on 127.0.0.1 only
// and is stopped at the end, also when a step fails.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtemp, mkdir, rm, writeFile, copyFile, access, readFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  WEB_DIR, sleep, track, stop, pluginsAndHooks, startEarshot as startEarshotWith, launchChromium,
  makeWaitFor, openPage, peerConnected, audioAtLeast, audioBytes, makeSteps,
} from './e2e-harness.mjs';

const TURNSERVER_BIN = process.env.TURNSERVER_BIN || '/usr/bin/turnserver';

const SECRET = 'coturn-and-earshot-share-this';
const REALM = 'earshot.test';
const STATE_TIMEOUT = 30_000;
const STEP_TIMEOUT = 90_000;

// A page that is one player: the client library with relay-only peer
// connections, its events recorded for the test.
const PLAYER_PAGE = `<!doctype html>
<meta charset="utf-8">
<title>earshot TURN test</title>
<script type="module">
import { EarshotClient } from './earshot-client.js';
const q = new URLSearchParams(location.search);
const events = [];
const client = new EarshotClient({
  url: 'ws://' + location.host + '/',
  clientId: q.get('id'),
  mapId: Number(q.get('map')),
  x: Number(q.get('x')),
  y: 0,
  iceTransportPolicy: 'relay',
  peerRetryLimit: 0,
});
for (const type of ['connected', 'iceservers', 'peerstate', 'error']) {
  client.on(type, (detail) => events.push({ type, ...detail }));
}
window.earshot = client;
window.events = events;
client.connect();
</script>
`;

let tmp;
let coturn; // {proc, port, log}
let server; // {proc, port, log, cfg}
let context;
const pages = {};
const pageErrors = [];

// ---- processes ---------------------------------------------------------------

/** A port free for TCP and UDP on 127.0.0.1. */
async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.on('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise((resolve) => {
      const u = dgram.createSocket('udp4');
      u.on('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free port');
}

/** One STUN Binding request to 127.0.0.1:port: true when a success answer comes. */
function stunBinding(port, timeout = 300) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const tid = randomBytes(12);
    const msg = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), tid]);
    const done = (ok) => {
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeout);
    sock.on('error', () => done(false));
    sock.on('message', (data) => {
      if (data.length >= 20 && data.readUInt16BE(0) === 0x0101 && data.subarray(8, 20).equals(tid)) done(true);
    });
    sock.send(msg, port, '127.0.0.1');
  });
}

/** coturn on 127.0.0.1 only: TURN REST API auth, loopback peers allowed, no TLS, no CLI, its own files. */
async function startCoturn() {
  await access(TURNSERVER_BIN).catch(() => {
    throw new Error(`coturn not found at ${TURNSERVER_BIN} (apt-get install coturn, or set TURNSERVER_BIN)`);
  });
  const dir = path.join(tmp, 'coturn');
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const relayLo = 40000 + ((port * 7) % 20000);
  const conf = path.join(dir, 'turnserver.conf');
  await writeFile(
    conf,
    [
      'listening-ip=127.0.0.1',
      'relay-ip=127.0.0.1',
      `listening-port=${port}`,
      `min-port=${relayLo}`,
      `max-port=${relayLo + 200}`,
      'use-auth-secret',
      `static-auth-secret=${SECRET}`,
      `realm=${REALM}`,
      'allow-loopback-peers',
      'no-tls',
      'no-dtls',
      'no-cli',
      'no-tcp-relay',
      'no-multicast-peers',
      `log-file=${path.join(dir, 'turn.log')}`,
      'simple-log',
      `pidfile=${path.join(dir, 'turn.pid')}`,
      `userdb=${path.join(dir, 'turndb')}`,
      '',
    ].join('\n'),
  );
  const t = track(spawn(TURNSERVER_BIN, ['-c', conf], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }), 'coturn');
  t.port = port;
  t.dir = dir;
  const deadline = Date.now() + 10_000;
  while (!(await stunBinding(port))) {
    if (t.exited) throw new Error(`turnserver exited (${JSON.stringify(t.exited)}):\n${t.log}`);
    if (Date.now() > deadline) {
      await stop(t);
      throw new Error(`turnserver did not answer a STUN Binding request within 10 s:\n${t.log}`);
    }
  }
  return t;
}

function earshotConfig(port, secret) {
  return `server = { address = "127.0.0.1"; port = ${port}; web = true; };
session = { idle_timeout = 15.0; refresh_interval = 5.0; };
log = { level = "info"; };
turn = {
  secret = ${JSON.stringify(secret)};
  urls = [ "turn:127.0.0.1:${coturn.port}?transport=udp" ];
  ttl = 600;
};
${pluginsAndHooks(path.join(tmp, 'web'))}`;
}

function startEarshot(secret) {
  return startEarshotWith(path.join(tmp, 'earshot.cfg'), earshotConfig(0, secret));
}

/** Rewrite earshot's config with another secret and reload it (SIGHUP). */
async function reloadEarshot(secret) {
  await writeFile(server.cfg, earshotConfig(server.port, secret));
  const count = (server.log.match(/reloaded:/g) || []).length;
  server.proc.kill('SIGHUP');
  const deadline = Date.now() + 10_000;
  while ((server.log.match(/reloaded:/g) || []).length === count) {
    if (Date.now() > deadline) throw new Error(`earshot did not reload within 10 s:\n${server.log}`);
    await sleep(50);
  }
}

// ---- pages -----------------------------------------------------------------

const waitFor = makeWaitFor(STATE_TIMEOUT, () => ({ state: window.earshot.state, peers: window.earshot.peers(), events: window.events }));

function openPlayer(id, x, map) {
  const url = `http://127.0.0.1:${server.port}/turn.html?${new URLSearchParams({ id, x: String(x), map: String(map) })}`;
  return openPage({ context, id, url, pageErrors, waitFor, onPage: (page) => (pages[id] = page) });
}

async function closePlayer(id) {
  await pages[id].evaluate(() => window.earshot.disconnect());
  await pages[id].close();
  delete pages[id];
}

/** The selected candidate pair of the connection to peerId, with its two candidates' types. */
function selectedPair(page, peerId) {
  return page.evaluate(async (id) => {
    const pc = window.earshot.peerConnection(id);
    if (!pc) return null;
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId && stats.get(pairId);
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return {
      state: pair.state,
      local: local && { type: local.candidateType, address: local.address, relayProtocol: local.relayProtocol, url: local.url },
      remote: remote && { type: remote.candidateType, address: remote.address },
    };
  }, peerId);
}

const steps = makeSteps(STEP_TIMEOUT);
const step = steps.step;

// ---- setup -----------------------------------------------------------------

before(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'earshot-turn-e2e-'));
  await mkdir(path.join(tmp, 'web'));
  await copyFile(path.join(WEB_DIR, 'earshot-client.js'), path.join(tmp, 'web', 'earshot-client.js'));
  await writeFile(path.join(tmp, 'web', 'turn.html'), PLAYER_PAGE);
  coturn = await startCoturn();
  server = await startEarshot(SECRET);
  context = await launchChromium(path.join(tmp, 'chromium-profile'));
});

after(async () => {
  if (context) await context.close().catch(() => {});
  await stop(server);
  await stop(coturn);
  if (steps.broken || process.env.E2E_VERBOSE) {
    if (server) console.log(`---- earshot log ----\n${server.log}`);
    if (coturn) {
      const log = await readFile(path.join(coturn.dir, 'turn.log'), 'utf8').catch(() => '(no log)');
      console.log(`---- coturn log (end) ----\n${(coturn.log + log).slice(-8000)}`);
    }
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

// ---- the scenario ------------------------------------------------------------

step('A and B get TURN credentials from earshot', async () => {
  await openPlayer('A', 0, 1);
  await openPlayer('B', 10, 1);
  for (const id of ['A', 'B']) {
    const got = await waitFor(pages[id], `${id}'s IceServers`, () => window.events.find((e) => e.type === 'iceservers'));
    assert.equal(got.ttl, 600);
    assert.equal(got.iceServers.length, 1);
    const [entry] = got.iceServers;
    assert.deepEqual(entry.urls, [`turn:127.0.0.1:${coturn.port}?transport=udp`]);
    assert.match(entry.username, new RegExp(`^\\d{10}:${id}$`));
    assert.match(entry.credential, /^[A-Za-z0-9+/]{27}=$/);
  }
});

step('relay-only, A and B connect through coturn and hear each other', async () => {
  for (const [id, peer] of [['A', 'B'], ['B', 'A']]) {
    await waitFor(pages[id], `${id} connected to ${peer}`, peerConnected, peer);
  }
  for (const [id, peer] of [['A', 'B'], ['B', 'A']]) {
    const pair = await waitFor(pages[id], `${id}'s selected candidate pair`, async (p) => {
      const pc = window.earshot.peerConnection(p);
      let found = null;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) found = s.selectedCandidatePairId;
      });
      return found;
    }, peer);
    assert.ok(pair);
    const sel = await selectedPair(pages[id], peer);
    assert.equal(sel.state, 'succeeded', `${id}: selected pair state`);
    assert.equal(sel.local.type, 'relay', `${id}: the local candidate is a TURN relay`);
    assert.equal(sel.local.address, '127.0.0.1', `${id}: relayed by coturn on loopback`);
    assert.equal(sel.local.relayProtocol, 'udp');
    assert.equal(sel.remote.type, 'relay', `${id}: the remote candidate is the other side's relay`);
  }
  for (const [id, peer] of [['A', 'B'], ['B', 'A']]) {
    const start = await audioBytes(pages[id], peer);
    assert.ok(start >= 0, `${id} has a peer connection to ${peer}`);
    await waitFor(pages[id], `audio from ${peer} at ${id} to grow by 4000 bytes`, audioAtLeast, { id: peer, want: start + 4000 });
  }
  for (const id of ['A', 'B']) {
    const errors = await pages[id].evaluate(() => window.events.filter((e) => e.type === 'error'));
    assert.deepEqual(errors, [], `errors seen by ${id}`);
  }
});

step('with the wrong secret in earshot, C and D do not connect and the client reports 401', async () => {
  await closePlayer('A');
  await closePlayer('B');
  await reloadEarshot(`not-${SECRET}`);
  await openPlayer('C', 0, 2);
  await openPlayer('D', 10, 2);
  const url = `turn:127.0.0.1:${coturn.port}?transport=udp`;
  for (const [id, peer] of [['C', 'D'], ['D', 'C']]) {
    const err = await waitFor(pages[id], `${id}'s ICE server error`, () => window.events.find((e) => e.type === 'error'));
    assert.deepEqual(
      { source: err.source, peerId: err.peerId, url: err.url, errorCode: err.errorCode },
      { source: 'webrtc', peerId: peer, url, errorCode: 401 },
    );
  }
  // Every error the client reported is that 401.
  for (const id of ['C', 'D']) {
    const codes = await pages[id].evaluate(() => window.events.filter((e) => e.type === 'error').map((e) => e.errorCode));
    assert.ok(codes.length >= 1 && codes.every((c) => c === 401), `${id}'s errors: ${codes}`);
  }
  // Gathering is over on both sides without a single (relay) candidate:
  // ICE has no pair to try, so the peers stay unconnected.
  for (const [id, peer] of [['C', 'D'], ['D', 'C']]) {
    await waitFor(pages[id], `${id}'s ICE gathering for ${peer} to complete`, (p) => {
      const pc = window.earshot.peerConnection(p);
      return pc && pc.iceGatheringState === 'complete';
    }, peer);
    const view = await pages[id].evaluate(async (p) => {
      const pc = window.earshot.peerConnection(p);
      let candidates = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'local-candidate') candidates++;
      });
      return {
        candidates,
        connectionState: pc.connectionState,
        peerState: window.earshot.peers()[p].state,
        everConnected: window.events.some((e) => e.type === 'peerstate' && e.id === p && e.state === 'connected'),
      };
    }, peer);
    assert.deepEqual(view, { candidates: 0, connectionState: 'new', peerState: 'new', everConnected: false }, `${id}'s connection to ${peer}`);
  }
});

step('no page threw; earshot and coturn still run', async () => {
  assert.deepEqual(pageErrors, []);
  assert.equal(server.exited, null, 'earshot still running');
  assert.equal(coturn.exited, null, 'coturn still running');
});
