// What the browser end-to-end tests (e2e, resume.e2e, turn.e2e) share:
// starting earshot with a config and reading back its port, stopping the
// processes they start, launching Debian's Chromium with the same flags,
// opening a player page, polling a page, and reading inbound audio bytes
// from getStats. Not a test itself (not named *.test.mjs).
//
// Environment:
//   EARSHOT_BIN         the server binary (default /work/main/build/earshot)
//   EARSHOT_PLUGIN_DIR  its plugins (default /work/main/build/plugins)
//   CHROMIUM_BIN        the browser (default /usr/bin/chromium)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile, access } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const WEB_DIR = path.resolve(here, '..');
export const EARSHOT_BIN = process.env.EARSHOT_BIN || '/work/main/build/earshot';
export const PLUGIN_DIR = process.env.EARSHOT_PLUGIN_DIR || '/work/main/build/plugins';
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
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
  // Host candidates as plain loopback addresses, not mDNS names.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- processes ---------------------------------------------------------------

/** Collect a child's output in p.log and its exit in p.exited; kill it if this process ends first. */
export function track(proc, name) {
  const p = { proc, log: '', exited: null, name };
  const onData = (chunk) => {
    p.log += chunk.toString();
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  p.exitedPromise = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((p.exited = { code, signal }))));
  // Never leave a process behind, whatever way this process ends.
  process.once('exit', () => p.exited || proc.kill('SIGKILL'));
  return p;
}

/** SIGTERM, then SIGKILL after 8 s; resolves once the process is gone. */
export async function stop(p) {
  if (!p || p.exited) return;
  p.proc.kill('SIGTERM');
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), 8_000);
  await p.exitedPromise;
  clearTimeout(timer);
}

/**
 * The config lines every test ends with: the plugins, the folder served as
 * web_dir, and the stock matching rule and relay guard.
 */
export function pluginsAndHooks(webDir) {
  return `plugin_dir = ${JSON.stringify(PLUGIN_DIR)};
web_dir = ${JSON.stringify(webDir)};
hooks = (
  { type = "plugin"; name = "relay_guard"; settings = { grace = 30.0; }; },
  { type = "plugin"; name = "proximity"; settings = { radius = 20; leave_radius = 25; }; }
);
`;
}

/**
 * Write config to cfg and run earshot on it; resolves with the tracked process
 * ({proc, log, exited, port, cfg}) once its "listening on" log line gives the
 * port (an OS-chosen one when the config says port = 0).
 */
export async function startEarshot(cfg, config) {
  await access(EARSHOT_BIN).catch(() => {
    throw new Error(`earshot binary not found at ${EARSHOT_BIN} (set EARSHOT_BIN)`);
  });
  await writeFile(cfg, config);
  const s = track(spawn(EARSHOT_BIN, ['-c', cfg], { stdio: ['ignore', 'pipe', 'pipe'] }), 'earshot');
  s.port = 0;
  s.cfg = cfg;
  const deadline = Date.now() + 10_000;
  while (!s.port) {
    const m = /listening on wss?:\/\/[^\s]*:(\d+)\//.exec(s.log);
    if (m) s.port = Number(m[1]);
    else if (s.exited) throw new Error(`earshot exited (${JSON.stringify(s.exited)}) before listening:\n${s.log}`);
    else if (Date.now() > deadline) throw new Error(`earshot did not say where it listens within 10 s:\n${s.log}`);
    else await sleep(50);
  }
  return s;
}

// ---- the browser -------------------------------------------------------------

/** Chromium with CHROMIUM_ARGS on a fresh profile; options adds e.g. a viewport. */
export async function launchChromium(profile, options = {}) {
  await access(CHROMIUM_BIN).catch(() => {
    throw new Error(`Chromium not found at ${CHROMIUM_BIN} (apt-get install chromium, or set CHROMIUM_BIN)`);
  });
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_BIN,
    headless: true,
    args: CHROMIUM_ARGS,
    ...options,
    timeout: 30_000,
  });
}

/** In the page: the client's state and peers, and the demo page's errors. */
export const demoPageState = () => ({
  state: window.earshot && window.earshot.state,
  peers: window.earshot && window.earshot.peers(),
  errors: window.demo.errors,
});

/**
 * waitFor(page, what, fn, arg, timeout = stateTimeout): evaluate fn(arg) in the
 * page (it may be async) every 100 ms until it returns something truthy, and
 * return that. On timeout, fail with pageState() evaluated in the page.
 */
export function makeWaitFor(stateTimeout, pageState = demoPageState) {
  return async function waitFor(page, what, fn, arg, timeout = stateTimeout) {
    const deadline = Date.now() + timeout;
    let lastError = null;
    for (;;) {
      try {
        const value = await page.evaluate(fn, arg);
        if (value) return value;
        lastError = null;
      } catch (err) {
        if (page.isClosed()) throw err;
        lastError = err; // e.g. the page is navigating; keep polling
      }
      if (Date.now() >= deadline) break;
      await sleep(100);
    }
    let state = '(page gone)';
    try {
      state = JSON.stringify(await page.evaluate(pageState));
    } catch (_) {
      /* the page is closed */
    }
    const why = lastError ? `; last error: ${lastError.message.split('\n')[0]}` : '';
    throw new assert.AssertionError({ message: `timed out after ${timeout} ms waiting for ${what}; page state: ${state}${why}` });
  };
}

/**
 * A new page of context at url for player id: uncaught exceptions go to
 * pageErrors, onPage(page) is called once it has loaded; resolves once the
 * client there is connected (registered).
 */
export async function openPage({ context, id, url, pageErrors, waitFor, logConsoleErrors = false, onPage }) {
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${id}: ${err.message}`));
  if (logConsoleErrors) {
    page.on('console', (msg) => {
      if (msg.type() === 'error') console.log(`[page ${id}] console error: ${msg.text()}`);
    });
  }
  await page.goto(url);
  if (onPage) onPage(page);
  await waitFor(page, `${id} registered`, () => window.earshot && window.earshot.state === 'connected');
  return page;
}

// ---- in-page predicates (for waitFor) and stats ------------------------------

/** In the page: the peer id is connected, signaling and peer connection both. */
export const peerConnected = (id) => {
  const p = window.earshot.peers()[id];
  const pc = window.earshot.peerConnection(id);
  return p && p.state === 'connected' && pc && pc.connectionState === 'connected';
};

/** In the page: bytesReceived over the inbound audio RTP streams from peer id is at least want. */
export const audioAtLeast = async ({ id, want }) => {
  const pc = window.earshot.peerConnection(id);
  let bytes = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio') bytes += s.bytesReceived || 0;
  });
  return bytes >= want;
};

/** bytesReceived over all inbound audio RTP streams from one peer (-1: no peer connection). */
export function audioBytes(page, peerId) {
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

// ---- steps -------------------------------------------------------------------

/**
 * Steps of a scenario, run in order; once one fails, the rest are skipped.
 * Returns {step(name, fn), broken} where broken is the failed step's name or null.
 */
export function makeSteps(stepTimeout) {
  const steps = { broken: null };
  steps.step = (name, fn) => {
    test(name, { timeout: stepTimeout }, async (t) => {
      if (steps.broken) {
        t.skip(`skipped: "${steps.broken}" failed`);
        return;
      }
      try {
        await fn(t);
      } catch (err) {
        steps.broken = name;
        throw err;
      }
    });
  };
  return steps;
}
