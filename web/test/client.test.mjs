// Unit tests of earshot-client.js in Node, without a browser: a fake
// WebSocket stands in for the server and a fake RTCPeerConnection for WebRTC,
// so the wire messages and the state machine can be checked exactly.
//
//   cd web && node --test test/client.test.mjs

import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { EarshotClient, isInitiator, volumeForDistance } from '../earshot-client.js';

// ---- fakes -------------------------------------------------------------------

class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static all = [];
  static autoOpen = true;
  constructor(url) {
    this.url = url;
    this.readyState = FakeWebSocket.CONNECTING;
    this.sent = [];
    FakeWebSocket.all.push(this);
    if (FakeWebSocket.autoOpen) this.open();
  }
  open() {
    queueMicrotask(() => {
      if (this.readyState !== FakeWebSocket.CONNECTING) return;
      this.readyState = FakeWebSocket.OPEN;
      this.onopen && this.onopen({});
    });
  }
  send(text) {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error('send on a socket that is not open');
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = '') {
    if (this.readyState === FakeWebSocket.CLOSED) return;
    this.readyState = FakeWebSocket.CLOSED;
    this.closedWith = code;
    queueMicrotask(() => this.onclose && this.onclose({ code, reason }));
  }
  // test side: the server speaks or hangs up
  push(type, data) {
    this.onmessage({ data: JSON.stringify({ type, data }) });
  }
  drop(code = 1006) {
    this.close(code, 'dropped');
  }
  ofType(type) {
    return this.sent.filter((m) => m.type === type);
  }
}

class FakeDataChannel {
  constructor(label) {
    this.label = label;
    this.readyState = 'connecting';
    this.sent = [];
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 'closed';
  }
  open() {
    this.readyState = 'open';
    this.onopen && this.onopen({});
  }
  receive(obj) {
    this.onmessage({ data: JSON.stringify(obj) });
  }
}

let sdpCounter = 0;
class FakePeerConnection {
  static all = [];
  constructor(config) {
    this.config = config;
    this.signalingState = 'stable';
    this.connectionState = 'new';
    this.localDescription = null;
    this.remoteDescription = null;
    this.channels = [];
    this.tracks = [];
    this.transceivers = [];
    this.added = []; // ICE candidates added
    this.closed = false;
    FakePeerConnection.all.push(this);
  }
  createDataChannel(label) {
    const dc = new FakeDataChannel(label);
    this.channels.push(dc);
    return dc;
  }
  addTrack(track, stream) {
    this.tracks.push({ track, stream });
  }
  addTransceiver(kind, init) {
    this.transceivers.push({ kind, init });
  }
  async createOffer() {
    return { type: 'offer', sdp: `v=0 offer ${++sdpCounter}` };
  }
  async createAnswer() {
    return { type: 'answer', sdp: `v=0 answer ${++sdpCounter}` };
  }
  async setLocalDescription(d) {
    this.localDescription = { type: d.type, sdp: d.sdp, toJSON() { return { type: this.type, sdp: this.sdp }; } };
    this.signalingState = d.type === 'offer' ? 'have-local-offer' : 'stable';
    // A browser may gather (and announce) candidates right away.
    this.onicecandidate && this.onicecandidate({ candidate: fakeCandidate(`local-${sdpCounter}`) });
  }
  async setRemoteDescription(d) {
    if (d.type === 'answer' && this.signalingState !== 'have-local-offer') throw new Error('no offer out');
    this.remoteDescription = d;
    this.signalingState = d.type === 'offer' ? 'have-remote-offer' : 'stable';
  }
  async addIceCandidate(c) {
    if (!this.remoteDescription) throw new Error('addIceCandidate before the remote description');
    this.added.push(c);
  }
  close() {
    this.closed = true;
    this.connectionState = 'closed';
    this.signalingState = 'closed';
  }
  async getStats() {
    return new Map();
  }
  // test side
  setState(s) {
    this.connectionState = s;
    this.onconnectionstatechange && this.onconnectionstatechange({});
  }
  announce(candidate) {
    this.onicecandidate({ candidate: fakeCandidate(candidate) });
  }
}

function fakeCandidate(text) {
  return { candidate: text, toJSON: () => ({ candidate: text, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'uf' }) };
}

const track = { kind: 'audio', stop() { this.stopped = true; } };
const localStream = { getAudioTracks: () => [track], getTracks: () => [track] };

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, timeout = 2000) {
  const deadline = Date.now() + timeout;
  while (!fn()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await tick(5);
  }
}

let clients = [];
function makeClient(opts = {}) {
  // The fake server does not answer RequestIceServers unless a test says so.
  const c = new EarshotClient({ url: 'ws://test/', localStream, mapId: 1, iceServersFromServer: false, ...opts });
  const events = [];
  for (const type of ['connected', 'disconnected', 'peerjoined', 'peerleft', 'peerstate', 'position', 'speaking', 'error', 'iceservers']) {
    c.on(type, (detail) => events.push({ type, ...detail }));
  }
  c.events = events;
  clients.push(c);
  return c;
}
async function connected(opts) {
  const c = makeClient(opts);
  await c.connect();
  const ws = FakeWebSocket.all.at(-1);
  ws.push('NearbyPeers', []);
  return { c, ws };
}

beforeEach(() => {
  globalThis.WebSocket = FakeWebSocket;
  globalThis.RTCPeerConnection = FakePeerConnection;
  FakeWebSocket.all = [];
  FakeWebSocket.autoOpen = true;
  FakePeerConnection.all = [];
  clients = [];
});
afterEach(() => {
  for (const c of clients) c.disconnect();
});

// ---- tests -----------------------------------------------------------------

test('helpers: initiator rule and volume curve', () => {
  assert.equal(isInitiator('b', 'a'), true);
  assert.equal(isInitiator('a', 'b'), false);
  assert.equal(isInitiator('Z', 'a'), false, 'ordinal: uppercase sorts before lowercase');
  assert.equal(isInitiator('a10', 'a9'), false, 'ordinal, not numeric');
  assert.equal(isInitiator('\u{1F600}', '\uFFFF'), false, 'UTF-16 code units: a surrogate pair sorts below U+FFFF');
  assert.equal(volumeForDistance(0, 25), 1);
  assert.equal(volumeForDistance(10, 25), 0.6);
  assert.equal(volumeForDistance(25, 25), 0);
  assert.equal(volumeForDistance(40, 25), 0);
});

test('registers with UpdatePosition and keeps it alive', async () => {
  const c = makeClient({ clientId: 'me', x: 3.4, y: -7, channel: 2, gameId: 9, keepaliveMs: 60 });
  await c.connect();
  const ws = FakeWebSocket.all[0];
  assert.equal(ws.url, 'ws://test/');
  assert.deepEqual(ws.sent[0], {
    type: 'UpdatePosition',
    data: { client_id: 'me', map_id: 1, x: 3, y: -7, channel: 2, game_id: 9, resumable: true },
  });
  assert.equal(c.state, 'connecting');
  ws.push('NearbyPeers', []);
  assert.equal(c.state, 'connected');
  assert.equal(c.events.filter((e) => e.type === 'connected').length, 1);
  await until('two keepalives', () => ws.ofType('UpdatePosition').length >= 3);
  const noGame = makeClient({ clientId: 'other' });
  await noGame.connect();
  assert.equal('game_id' in FakeWebSocket.all[1].sent[0].data, false, 'game_id left out unless set');
});

test('the higher id offers: data channel "position", audio track, offer and candidates as JSON strings', async () => {
  sdpCounter = 0;
  const { c, ws } = await connected({ clientId: 'bob', iceServers: [{ urls: 'stun:stun.example.org' }] });
  ws.push('NearbyPeers', ['alice']);
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  const pc = FakePeerConnection.all[0];
  assert.deepEqual(pc.config, { iceServers: [{ urls: 'stun:stun.example.org' }] });
  assert.deepEqual(pc.channels.map((d) => d.label), ['position']);
  assert.equal(pc.tracks[0].track, track);
  const offer = ws.ofType('SendOffer')[0].data;
  assert.equal(offer.target_id, 'alice');
  assert.equal(offer.offer, JSON.stringify(pc.localDescription));
  assert.deepEqual(JSON.parse(offer.offer), { type: 'offer', sdp: pc.localDescription.sdp });
  // The candidate gathered during setLocalDescription went out after the offer.
  const kinds = ws.sent.map((m) => m.type).filter((t) => t !== 'UpdatePosition');
  assert.deepEqual(kinds, ['SendOffer', 'SendIceCandidate']);
  const cand = ws.ofType('SendIceCandidate')[0].data;
  assert.equal(cand.target_id, 'alice');
  assert.deepEqual(JSON.parse(cand.candidate), { candidate: 'local-1', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'uf' });

  // Candidates from alice before her answer wait for it.
  ws.push('ReceiveIceCandidate', { sender_id: 'alice', candidate: JSON.stringify({ candidate: 'remote-1', sdpMid: '0', sdpMLineIndex: 0 }) });
  await tick(5);
  assert.equal(pc.added.length, 0);
  ws.push('ReceiveAnswer', { sender_id: 'alice', answer: JSON.stringify({ type: 'answer', sdp: 'v=0 answer' }) });
  await until('the queued candidate', () => pc.added.length === 1);
  assert.deepEqual(pc.remoteDescription, { type: 'answer', sdp: 'v=0 answer' });
  assert.deepEqual(pc.added[0], { candidate: 'remote-1', sdpMid: '0', sdpMLineIndex: 0 });
  // Later ones go straight in, snake_case from native clients too.
  ws.push('ReceiveIceCandidate', { sender_id: 'alice', candidate: JSON.stringify({ candidate: 'remote-2', sdp_mid: '0', sdp_mline_index: 0 }) });
  await until('the second candidate', () => pc.added.length === 2);
  assert.deepEqual(pc.added[1], { candidate: 'remote-2', sdpMid: '0', sdpMLineIndex: 0 });
  // End-of-candidates is not sent.
  const before = ws.ofType('SendIceCandidate').length;
  pc.onicecandidate({ candidate: null });
  pc.onicecandidate({ candidate: fakeCandidate('') });
  assert.equal(ws.ofType('SendIceCandidate').length, before);

  pc.setState('connecting');
  pc.setState('connected');
  assert.equal(c.peers().alice.state, 'connected');
  assert.deepEqual(
    c.events.filter((e) => e.type === 'peerstate' && e.id === 'alice').map((e) => e.state),
    ['connecting', 'connected'],
  );
});

test('the lower id waits for the offer, then answers', async () => {
  const { c, ws } = await connected({ clientId: 'alice', characterName: 'Alice' });
  ws.push('NearbyPeers', ['bob']);
  assert.equal(c.peers().bob.state, 'waiting');
  assert.equal(c.peers().bob.initiator, false);
  assert.equal(FakePeerConnection.all.length, 0);
  ws.push('ReceiveOffer', { sender_id: 'bob', offer: JSON.stringify({ type: 'offer', sdp: 'v=0 bob' }) });
  ws.push('ReceiveIceCandidate', { sender_id: 'bob', candidate: JSON.stringify({ candidate: 'bob-1', sdpMid: '0', sdpMLineIndex: 0 }) });
  await until('the answer', () => ws.ofType('SendAnswer').length === 1);
  const pc = FakePeerConnection.all[0];
  assert.deepEqual(pc.remoteDescription, { type: 'offer', sdp: 'v=0 bob' });
  assert.equal(pc.tracks.length, 1, 'the answerer adds its audio track');
  assert.equal(pc.channels.length, 0, 'the answerer does not create a data channel');
  const answer = ws.ofType('SendAnswer')[0].data;
  assert.equal(answer.target_id, 'bob');
  assert.equal(answer.answer, JSON.stringify(pc.localDescription));
  await until('the candidate', () => pc.added.length === 1);

  // The data channel comes from bob; positions flow both ways.
  const dc = new FakeDataChannel('position');
  pc.ondatachannel({ channel: dc });
  dc.open();
  assert.deepEqual(dc.sent, [{ map_id: 1, x: 0, y: 0, character_name: 'Alice' }]);
  dc.receive({ map_id: 1, x: 10, y: 0, character_name: 'Bob' });
  assert.deepEqual(c.peers().bob.position, { map_id: 1, x: 10, y: 0, character_name: 'Bob' });
  assert.equal(c.peers().bob.volume, 0.6);
  assert.deepEqual(c.events.filter((e) => e.type === 'position').at(-1), {
    type: 'position', id: 'bob', map_id: 1, x: 10, y: 0, character_name: 'Bob', volume: 0.6,
  });
  c.move({ x: 5, y: 0 });
  assert.deepEqual(dc.sent.at(-1), { map_id: 1, x: 5, y: 0, character_name: 'Alice' });
  assert.equal(c.peers().bob.volume, 0.8);
  c.move({ mapId: 2 });
  assert.equal(c.peers().bob.volume, 0, 'another map is silent');
});

test('a peer missing from NearbyPeers is closed and removed', async () => {
  const { c, ws } = await connected({ clientId: 'dave' });
  ws.push('NearbyPeers', ['alice', 'carol']);
  await until('two offers', () => ws.ofType('SendOffer').length === 2);
  const [pcAlice, pcCarol] = FakePeerConnection.all;
  ws.push('NearbyPeers', ['carol']);
  assert.equal(pcAlice.closed, true);
  assert.equal(pcCarol.closed, false);
  assert.deepEqual(Object.keys(c.peers()), ['carol']);
  assert.deepEqual(c.events.filter((e) => e.type === 'peerleft'), [{ type: 'peerleft', id: 'alice', reason: 'left' }]);
  ws.push('NearbyPeers', ['carol']);
  assert.equal(FakePeerConnection.all.length, 2, 'an unchanged list changes nothing');
});

test('a failed connection asks for a refresh and is retried, a bounded number of times', async () => {
  const { c, ws } = await connected({ clientId: 'bob', peerRetryBaseMs: 10, peerRetryMaxMs: 40, peerRetryLimit: 2 });
  ws.push('NearbyPeers', ['alice']);
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  FakePeerConnection.all[0].setState('failed');
  assert.equal(FakePeerConnection.all[0].closed, true);
  assert.equal(ws.ofType('RequestPeerRefresh').length, 1);
  assert.deepEqual(ws.ofType('RequestPeerRefresh')[0], { type: 'RequestPeerRefresh', data: null });
  assert.equal(c.peers().alice.state, 'retrying');
  await until('the second offer', () => ws.ofType('SendOffer').length === 2);
  FakePeerConnection.all[1].setState('failed');
  await until('the third offer', () => ws.ofType('SendOffer').length === 3);
  FakePeerConnection.all[2].setState('failed');
  await tick(100);
  assert.equal(ws.ofType('SendOffer').length, 3, 'no more than peerRetryLimit retries');
  assert.equal(c.peers().alice.state, 'failed');
  assert.match(c.events.filter((e) => e.type === 'error').at(-1).message, /giving up on alice/);
  // Success resets the count: leave and come back.
  ws.push('NearbyPeers', []);
  ws.push('NearbyPeers', ['alice']);
  await until('a fresh offer', () => ws.ofType('SendOffer').length === 4);
});

test('an offer from a peer not in NearbyPeers is ignored', async () => {
  const { c, ws } = await connected({ clientId: 'alice' });
  ws.push('ReceiveOffer', { sender_id: 'zed', offer: JSON.stringify({ type: 'offer', sdp: 'late' }) });
  ws.push('ReceiveIceCandidate', { sender_id: 'zed', candidate: JSON.stringify({ candidate: 'z' }) });
  await tick(10);
  assert.deepEqual(c.peers(), {});
  assert.equal(FakePeerConnection.all.length, 0);
  assert.equal(ws.ofType('SendAnswer').length, 0);
  assert.deepEqual(c.events.filter((e) => e.type === 'error'), []);
});

test('malformed relays are reported, not thrown', async () => {
  const { c, ws } = await connected({ clientId: 'alice' });
  ws.push('NearbyPeers', ['bob']);
  ws.push('ReceiveOffer', { sender_id: 'bob', offer: 'not json' });
  ws.push('ReceiveIceCandidate', { sender_id: 'bob', candidate: '{' });
  await tick(10);
  const errors = c.events.filter((e) => e.type === 'error');
  assert.equal(errors.length, 2);
  assert.ok(errors.every((e) => e.source === 'protocol' && e.peerId === 'bob'));
  assert.equal(c.peers().bob.state, 'waiting');
  ws.onmessage({ data: 'garbage' });
  assert.equal(c.events.filter((e) => e.type === 'error').length, 3);
});

test('an offer on an existing connection replaces it (the other side restarted)', async () => {
  const { c, ws } = await connected({ clientId: 'alice' });
  ws.push('NearbyPeers', ['bob']);
  ws.push('ReceiveOffer', { sender_id: 'bob', offer: JSON.stringify({ type: 'offer', sdp: 'one' }) });
  await until('the answer', () => ws.ofType('SendAnswer').length === 1);
  ws.push('ReceiveOffer', { sender_id: 'bob', offer: JSON.stringify({ type: 'offer', sdp: 'two' }) });
  await until('the second answer', () => ws.ofType('SendAnswer').length === 2);
  assert.equal(FakePeerConnection.all[0].closed, true);
  assert.equal(c.peerConnection('bob'), FakePeerConnection.all[1]);
  assert.equal(FakePeerConnection.all[1].remoteDescription.sdp, 'two');
});

test('a dropped socket tears peers down and reconnects with capped exponential backoff', async () => {
  const { c, ws } = await connected({ clientId: 'bob', reconnectBaseMs: 20, reconnectMaxMs: 60 });
  ws.push('NearbyPeers', ['alice']);
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  ws.drop(1006);
  await until('the disconnected event', () => c.events.some((e) => e.type === 'disconnected'));
  assert.equal(FakePeerConnection.all[0].closed, true);
  assert.deepEqual(c.peers(), {});
  assert.equal(c.state, 'connecting');
  // Fail the next connections before they register: the delay grows to the cap.
  for (let i = 1; i <= 3; i++) {
    await until(`connection attempt ${i + 1}`, () => FakeWebSocket.all.length === i + 1);
    await tick(1);
    assert.equal(FakeWebSocket.all[i].sent[0].type, 'UpdatePosition', 're-registers');
    FakeWebSocket.all[i].drop(1006);
  }
  await until('four disconnects', () => c.events.filter((e) => e.type === 'disconnected').length === 4);
  const delays = c.events.filter((e) => e.type === 'disconnected').map((e) => e.retryInMs);
  const bases = [20, 40, 60, 60];
  delays.forEach((d, i) => assert.ok(d >= bases[i] * 0.75 && d <= bases[i] * 1.25, `delay ${i}: ${d} around ${bases[i]}`));
  await until('attempt 5', () => FakeWebSocket.all.length === 5);
  await tick(1);
  FakeWebSocket.all[4].push('NearbyPeers', ['alice']);
  assert.equal(c.state, 'connected');
  await until('a new offer', () => FakeWebSocket.all[4].ofType('SendOffer').length === 1);
});

test('disconnect() sends Disconnect, closes peers and does not reconnect', async () => {
  const { c, ws } = await connected({ clientId: 'bob', reconnectBaseMs: 5 });
  ws.push('NearbyPeers', ['alice']);
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  c.disconnect();
  assert.deepEqual(ws.sent.at(-1), { type: 'Disconnect', data: null });
  assert.equal(ws.closedWith, 1000);
  assert.equal(FakePeerConnection.all[0].closed, true);
  assert.equal(c.state, 'idle');
  assert.equal(track.stopped, undefined, "an app's stream is not stopped");
  await tick(30);
  assert.equal(FakeWebSocket.all.length, 1);
  assert.deepEqual(c.events.filter((e) => e.type === 'disconnected'), [{ type: 'disconnected', code: 1000, reason: 'client disconnect', willReconnect: false }]);
});

test('disconnect() while connecting settles connect()', async () => {
  FakeWebSocket.autoOpen = false;
  const c = makeClient({ clientId: 'bob' });
  let settled = false;
  const pending = c.connect().then(() => (settled = true));
  await tick(10);
  assert.equal(settled, false, 'the socket has not opened yet');
  c.disconnect();
  await pending;
  assert.equal(c.state, 'idle');
  assert.equal(FakeWebSocket.all[0].readyState, FakeWebSocket.CLOSED);
});

test('server errors are events; a takeover stops reconnecting', async () => {
  const { c, ws } = await connected({ clientId: 'bob', reconnectBaseMs: 5 });
  ws.push('Error', 'Client zed not found');
  assert.deepEqual(c.events.filter((e) => e.type === 'error'), [{ type: 'error', source: 'server', message: 'Client zed not found' }]);
  ws.push('Error', 'client_id bob was taken over by another connection');
  ws.close(1008);
  await tick(30);
  assert.equal(FakeWebSocket.all.length, 1, 'no reconnect after a takeover');
  assert.equal(c.state, 'idle');
  assert.equal(ws.ofType('Disconnect').length, 0, 'no Disconnect on a taken-over connection');
});

test('moves are throttled but the last one always goes out', async () => {
  const { c, ws } = await connected({ clientId: 'bob', moveThrottleMs: 40 });
  const n = ws.ofType('UpdatePosition').length;
  for (let x = 1; x <= 10; x++) c.move({ x });
  c.move({ x: 10 }); // no change: nothing to send
  await tick(100);
  const sent = ws.ofType('UpdatePosition').slice(n);
  assert.ok(sent.length >= 1 && sent.length <= 3, `${sent.length} updates for 10 moves`);
  assert.equal(sent.at(-1).data.x, 10);
  assert.throws(() => c.move({ x: 'east' }), TypeError);
});

// ---- ICE servers from the server (RequestIceServers) -------------------------

const STUN = { urls: ['stun:stun.example:3478'] };
const TURN = { urls: ['turn:turn.example:3478', 'turns:turn.example:5349'], username: '1700086400:bob', credential: 'c2VjcmV0' };
const nonIce = (ws) => ws.sent.map((m) => m.type).filter((t) => t !== 'UpdatePosition');

test('ICE servers: asked for after registering, before any peer connection, and used for every one', async () => {
  sdpCounter = 0;
  const c = makeClient({ clientId: 'bob', iceServersFromServer: true, iceServers: [{ urls: 'stun:given.example' }] });
  await c.connect();
  const ws = FakeWebSocket.all[0];
  assert.deepEqual(ws.sent.map((m) => m.type), ['UpdatePosition'], 'nothing asked before registration');
  ws.push('NearbyPeers', ['alice']);
  assert.deepEqual(ws.ofType('RequestIceServers'), [{ type: 'RequestIceServers', data: null }]);
  // Until the answer: no peer, no connection, and what feeds one waits.
  ws.push('ReceiveIceCandidate', { sender_id: 'alice', candidate: JSON.stringify({ candidate: 'early', sdpMid: '0', sdpMLineIndex: 0 }) });
  await tick(5);
  assert.equal(c.state, 'connecting');
  assert.deepEqual(c.peers(), {});
  assert.equal(FakePeerConnection.all.length, 0);
  assert.deepEqual(nonIce(ws), ['RequestIceServers']);
  ws.push('IceServers', { ice_servers: [STUN, TURN], ttl: 86400, extra: 1 });
  assert.equal(c.state, 'connected');
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  assert.deepEqual(nonIce(ws), ['RequestIceServers', 'SendOffer', 'SendIceCandidate']);
  const pc = FakePeerConnection.all[0];
  assert.deepEqual(pc.config, { iceServers: [{ urls: 'stun:given.example' }, STUN, TURN] });
  assert.deepEqual(c.events.filter((e) => e.type === 'iceservers'), [{ type: 'iceservers', iceServers: [STUN, TURN], ttl: 86400 }]);
  // The held candidate was delivered in order, after the peer was made.
  ws.push('ReceiveAnswer', { sender_id: 'alice', answer: JSON.stringify({ type: 'answer', sdp: 'v=0 a' }) });
  await until('the held candidate', () => pc.added.length === 1);
  assert.equal(pc.added[0].candidate, 'early');
  // Later peers use the same list; nothing is asked again.
  ws.push('NearbyPeers', ['alice', 'amy']);
  await until('the second offer', () => ws.ofType('SendOffer').length === 2);
  assert.deepEqual(FakePeerConnection.all[1].config, pc.config);
  assert.equal(ws.ofType('RequestIceServers').length, 1);
  assert.deepEqual(c.events.filter((e) => e.type === 'error'), []);
});

test('ICE servers: a v1 server (Unknown message type) leaves the iceServers option alone, silently, for good', async () => {
  const c = makeClient({ clientId: 'bob', iceServersFromServer: true, iceServers: [{ urls: 'stun:given.example' }], reconnectBaseMs: 5, reconnectMaxMs: 5 });
  await c.connect();
  const ws = FakeWebSocket.all[0];
  ws.push('NearbyPeers', ['alice']);
  assert.equal(ws.ofType('RequestIceServers').length, 1);
  ws.push('Error', 'Unknown message type: RequestIceServers');
  assert.equal(c.state, 'connected');
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  assert.deepEqual(FakePeerConnection.all[0].config, { iceServers: [{ urls: 'stun:given.example' }] });
  assert.deepEqual(c.events.filter((e) => e.type === 'error'), [], 'the expected refusal is no error event');
  // Other Errors still are.
  ws.push('Error', 'Unknown message type: Teleport');
  assert.equal(c.events.filter((e) => e.type === 'error').length, 1);
  // After a reconnect it is not asked again: registration goes straight on.
  ws.drop(1006);
  await until('the reconnect', () => FakeWebSocket.all.length === 2);
  await tick(1);
  const ws2 = FakeWebSocket.all[1];
  ws2.push('NearbyPeers', ['alice']);
  assert.equal(c.state, 'connected');
  await until('the new offer', () => ws2.ofType('SendOffer').length === 1);
  assert.equal(ws2.ofType('RequestIceServers').length, 0);
});

test('ICE servers: asked for again at 80% of the ttl; new peer connections use the new list', async () => {
  const c = makeClient({ clientId: 'bob', iceServersFromServer: true });
  await c.connect();
  const ws = FakeWebSocket.all[0];
  ws.push('NearbyPeers', []);
  ws.push('IceServers', { ice_servers: [TURN], ttl: 0.1 });
  assert.equal(c.state, 'connected');
  await until('the second request', () => ws.ofType('RequestIceServers').length === 2);
  const renewed = { ...TURN, username: '1700090000:bob', credential: 'bmV3' };
  ws.push('IceServers', { ice_servers: [STUN, renewed], ttl: 0.5 }); // next refresh in 400 ms
  ws.push('NearbyPeers', ['alice']);
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  assert.deepEqual(FakePeerConnection.all[0].config, { iceServers: [STUN, renewed] });
  assert.equal(c.state, 'connected', 'a refresh holds nothing');
  await until('the third request', () => ws.ofType('RequestIceServers').length === 3);
  ws.push('IceServers', { ice_servers: [STUN, renewed], ttl: 0.5 });
  c.disconnect();
  assert.equal(c._ice.refreshTimer, null, 'disconnect() leaves no timer behind');
  // Connecting again while the list is fresh: nothing held, nothing asked
  // until the refresh is due, then asked on the new connection.
  await c.connect();
  const ws2 = FakeWebSocket.all[1];
  ws2.push('NearbyPeers', []);
  assert.equal(c.state, 'connected');
  assert.equal(ws2.ofType('RequestIceServers').length, 0);
  await until('the refresh on the new connection', () => ws2.ofType('RequestIceServers').length === 1);
  assert.equal(ws.ofType('RequestIceServers').length, 3, 'none on the old connection');
});

test('ICE servers: no answer within iceServersTimeoutMs, or an invalid one, and the client goes on without', async () => {
  const c = makeClient({ clientId: 'bob', iceServersFromServer: true, iceServersTimeoutMs: 20 });
  await c.connect();
  const ws = FakeWebSocket.all[0];
  ws.push('NearbyPeers', ['alice']);
  assert.equal(c.state, 'connecting');
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  assert.deepEqual(FakePeerConnection.all[0].config, { iceServers: [] });
  assert.equal(c.state, 'connected');

  const d = makeClient({ clientId: 'dan', iceServersFromServer: true });
  await d.connect();
  const ws2 = FakeWebSocket.all[1];
  ws2.push('NearbyPeers', ['alice']);
  ws2.push('IceServers', { ice_servers: [{ urls: ['turn:t'], username: 'u' }], ttl: 60 });
  assert.equal(d.state, 'connected');
  await until('the offer', () => ws2.ofType('SendOffer').length === 1);
  assert.deepEqual(FakePeerConnection.all[1].config, { iceServers: [] });
  const errors = d.events.filter((e) => e.type === 'error');
  assert.equal(errors.length, 1);
  assert.equal(errors[0].source, 'protocol');
  assert.match(errors[0].message, /^server sent an invalid IceServers/);
});

test('ICE servers: what a lost connection held is dropped; the next registration asks again', async () => {
  const c = makeClient({ clientId: 'bob', iceServersFromServer: true, reconnectBaseMs: 5, reconnectMaxMs: 5 });
  await c.connect();
  const ws = FakeWebSocket.all[0];
  ws.push('NearbyPeers', ['alice']);
  ws.drop(1006);
  await until('the reconnect', () => FakeWebSocket.all.length === 2);
  await tick(1);
  const ws2 = FakeWebSocket.all[1];
  ws2.push('NearbyPeers', ['amy']);
  assert.equal(ws2.ofType('RequestIceServers').length, 1);
  ws2.push('IceServers', { ice_servers: [], ttl: 600 });
  await until('the offer', () => ws2.ofType('SendOffer').length === 1);
  assert.deepEqual(Object.keys(c.peers()), ['amy']);
  assert.deepEqual(c.events.filter((e) => e.type === 'peerjoined').map((e) => e.id), ['amy'], "the lost connection's list was never applied");
  assert.equal(ws.ofType('SendOffer').length, 0);
});

test('iceTransportPolicy and ICE server errors', async () => {
  const { c, ws } = await connected({ clientId: 'bob', iceTransportPolicy: 'relay' });
  ws.push('NearbyPeers', ['alice']);
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  const pc = FakePeerConnection.all[0];
  assert.deepEqual(pc.config, { iceServers: [], iceTransportPolicy: 'relay' });
  pc.onicecandidateerror({ url: 'turn:127.0.0.1:3478?transport=udp', errorCode: 701, errorText: 'unreachable' });
  assert.deepEqual(c.events.filter((e) => e.type === 'error'), [], '7xx is routine');
  pc.onicecandidateerror({ url: 'turn:127.0.0.1:3478?transport=udp', errorCode: 401, errorText: 'Unauthorized' });
  assert.deepEqual(c.events.filter((e) => e.type === 'error'), [{
    type: 'error', source: 'webrtc', peerId: 'alice', url: 'turn:127.0.0.1:3478?transport=udp', errorCode: 401,
    message: 'ICE server turn:127.0.0.1:3478?transport=udp answered 401 Unauthorized (peer alice)',
  }]);
});

// ---- resuming a dropped connection (protocol v1.1) ---------------------------

async function withPeer(opts = {}) {
  const { c, ws } = await connected({ clientId: 'bob', reconnectBaseMs: 20, ...opts });
  ws.push('Session', { resume_token: 'tok-1', grace: 15 });
  ws.push('NearbyPeers', ['alice']);
  await until('the offer', () => ws.ofType('SendOffer').length === 1);
  const resumed = [];
  c.on('resumed', (d) => resumed.push(d));
  return { c, ws, pc: FakePeerConnection.all[0], resumed };
}

test('resume: opts in with its first UpdatePosition only', async () => {
  const { ws } = await connected({ clientId: 'bob', keepaliveMs: 30 });
  assert.equal(ws.sent[0].data.resumable, true);
  await until('a keepalive', () => ws.ofType('UpdatePosition').length >= 2);
  assert.equal('resumable' in ws.ofType('UpdatePosition')[1].data, false, 'only while not registered');
  const off = makeClient({ clientId: 'carol', resumable: false });
  await off.connect();
  assert.equal('resumable' in FakeWebSocket.all.at(-1).sent[0].data, false);
});

test('resume: a dropped socket keeps the peers and resumes with the latest token', async () => {
  const { c, ws, pc, resumed } = await withPeer();
  ws.push('Session', { resume_token: 'tok-2', grace: 15 }); // the latest wins
  ws.drop(1006);
  await until('the disconnected event', () => c.events.some((e) => e.type === 'disconnected'));
  const gone = c.events.find((e) => e.type === 'disconnected');
  assert.equal(gone.resuming, true);
  assert.equal(pc.closed, false, 'the peer connection stays up through the gap');
  assert.deepEqual(Object.keys(c.peers()), ['alice']);
  // the first attempt fails before it opens: still resuming
  await until('attempt 2', () => FakeWebSocket.all.length === 2);
  await tick(1);
  assert.equal(FakeWebSocket.all[1].sent[0].data.resume_token, 'tok-2');
  assert.equal('resumable' in FakeWebSocket.all[1].sent[0].data, false);
  FakeWebSocket.all[1].drop(1006);
  await until('attempt 3', () => FakeWebSocket.all.length === 3);
  await tick(1);
  const ws3 = FakeWebSocket.all[2];
  assert.equal(ws3.sent[0].data.resume_token, 'tok-2');
  ws3.push('NearbyPeers', ['alice']);
  ws3.push('Session', { resume_token: 'tok-3', grace: 15 });
  assert.equal(resumed.length, 1);
  assert.equal(c.state, 'connected');
  assert.equal(pc.closed, false);
  assert.equal(FakePeerConnection.all.length, 1, 'no new peer connection');
  assert.equal(ws3.ofType('SendOffer').length, 0, 'no new offer');
  assert.equal(c.events.filter((e) => e.type === 'peerleft').length, 0);
  // the next loss uses the newest token
  ws3.drop(1006);
  await until('attempt 4', () => FakeWebSocket.all.length === 4);
  await tick(1);
  assert.equal(FakeWebSocket.all[3].sent[0].data.resume_token, 'tok-3');
});

test('resume: a refused resume tears the peers down and registers afresh', async () => {
  const { c, ws, pc } = await withPeer();
  ws.drop(1006);
  await until('attempt 2', () => FakeWebSocket.all.length === 2);
  await tick(1);
  const ws2 = FakeWebSocket.all[1];
  assert.equal(ws2.sent[0].data.resume_token, 'tok-1');
  ws2.push('Error', 'invalid resume token');
  assert.equal(pc.closed, true);
  assert.deepEqual(c.peers(), {});
  const fresh = ws2.sent.at(-1);
  assert.equal(fresh.type, 'UpdatePosition');
  assert.equal(fresh.data.resumable, true);
  assert.equal('resume_token' in fresh.data, false);
  assert.equal(c.events.filter((e) => e.type === 'error').length, 0, 'not reported as an error');
  ws2.push('NearbyPeers', ['alice']);
  await until('a new offer', () => ws2.ofType('SendOffer').length === 1);
});

test('resume: not after a close 1000 or 1008, nor past the grace', async () => {
  const { c, ws, pc } = await withPeer();
  ws.drop(1000);
  await until('the disconnected event', () => c.events.some((e) => e.type === 'disconnected'));
  assert.equal(pc.closed, true);
  await until('attempt 2', () => FakeWebSocket.all.length === 2);
  await tick(1);
  assert.equal('resume_token' in FakeWebSocket.all[1].sent[0].data, false);
  const late = await withPeer();
  late.ws.push('Session', { resume_token: 'tok-9', grace: 0.02 });
  const t0 = FakeWebSocket.all.length;
  late.ws.drop(1006);
  await until('a reconnect', () => FakeWebSocket.all.length === t0 + 1);
  await tick(40); // past the 20 ms grace
  FakeWebSocket.all.at(-1).drop(1006);
  await until('the peer torn down', () => late.pc.closed);
  await until('another attempt', () => FakeWebSocket.all.length === t0 + 2);
  await tick(1);
  assert.equal('resume_token' in FakeWebSocket.all.at(-1).sent[0].data, false);
});
