// earshot-client.js: the browser client of earshot, the proximity signaling
// server for WebRTC voice chat in games.
//
// A dependency-free ES module. A game embeds it, tells it where its player is,
// and it keeps a direct WebRTC connection (voice + a `position` data channel)
// to every player the server says is near. See README.md next to this file
// for the API; docs/protocol.md in the earshot repository for the wire protocol.
//
// It interoperates with the desktop client of the original proximity chat:
//  - the peer whose client_id sorts higher (plain JS string `<`, UTF-16 code
//    units) creates the `position` data channel and the offer;
//  - offers and answers travel as JSON.stringify(RTCSessionDescription),
//    ICE candidates as JSON.stringify(RTCIceCandidate.toJSON());
//  - positions travel over the data channel as
//    {"map_id": int, "x": int, "y": int, "character_name": string}.

const DEFAULTS = Object.freeze({
  characterName: null, // null: the client id
  mapId: 0,
  x: 0,
  y: 0,
  channel: 0,
  gameId: null, // null: not sent (the server uses 0)
  iceServers: [],
  iceServersFromServer: true, // ask the server (RequestIceServers) after registering
  iceServersTimeoutMs: 5000, // wait that long for its answer, then go on without
  iceTransportPolicy: null, // null: the browser's default ("all"); "relay": TURN only
  localStream: null, // null: getUserMedia({audio: true}) on connect()
  leaveRadius: 25,
  keepaliveMs: 5000,
  moveThrottleMs: 50,
  speakingThreshold: 0.01,
  statsIntervalMs: 200,
  reconnectBaseMs: 500,
  reconnectMaxMs: 30000,
  resumable: true, // ask the server to hold the session through a dropped connection (protocol v1.1)
  peerRetryLimit: 5,
  peerRetryBaseMs: 1000,
  peerRetryMaxMs: 16000,
  audioContainer: null, // null: document.body
  playAudio: true,
});

const DATA_CHANNEL_LABEL = 'position';

/** Distance-based volume: 1 at distance 0, falling linearly to 0 at `leaveRadius`. */
export function volumeForDistance(distance, leaveRadius) {
  if (!(leaveRadius > 0)) return distance === 0 ? 1 : 0;
  return Math.min(1, Math.max(0, 1 - distance / leaveRadius));
}

/** True when the client `myId` makes the offer to `peerId` (ordinal string comparison). */
export function isInitiator(myId, peerId) {
  return myId > peerId;
}

function toInt(value, name) {
  const n = Math.round(Number(value));
  if (!Number.isFinite(n)) throw new TypeError(`${name} must be a number, not ${value}`);
  return n;
}

// Accept both the browser's camelCase RTCIceCandidateInit and a snake_case
// variant some native WebRTC stacks serialise.
function parseCandidate(text) {
  const c = JSON.parse(text);
  if (!c || typeof c !== 'object') throw new Error('candidate is not a JSON object');
  const init = { candidate: c.candidate ?? '' };
  const mid = c.sdpMid ?? c.sdp_mid;
  const index = c.sdpMLineIndex ?? c.sdp_mline_index;
  const ufrag = c.usernameFragment ?? c.username_fragment;
  if (mid !== undefined) init.sdpMid = mid;
  if (index !== undefined) init.sdpMLineIndex = index;
  if (ufrag !== undefined && ufrag !== null) init.usernameFragment = ufrag;
  return init;
}

function parseDescription(text, expectedType) {
  const d = JSON.parse(text);
  if (!d || typeof d !== 'object' || typeof d.sdp !== 'string') {
    throw new Error(`${expectedType} is not a session description`);
  }
  return { type: d.type || expectedType, sdp: d.sdp };
}

// What the client knows of the server's ICE servers (see "ICE servers from
// the server" in EarshotClient).
function newIceState() {
  return {
    servers: null, // the last IceServers list, validated
    refreshAt: 0, // Date.now() past which it is asked for again (ttl * 0.8)
    expires: 0, // Date.now() past which its credentials are no longer used
    refreshTimer: null,
    unsupported: false, // the server answered "Unknown message type" (a v1 server)
    askedWs: null, // the connection a request went out on
    outstanding: false, // a request is unanswered
    waitingWs: null, // the connection whose peer messages are held for the answer
    held: [], // those messages, raw, in order
    timer: null, // gives up waiting after iceServersTimeoutMs
  };
}

// One entry of an IceServers list, shaped as RTCIceServer, or null.
function iceServerEntry(e) {
  if (!e || typeof e !== 'object') return null;
  const urls = typeof e.urls === 'string' ? [e.urls] : e.urls;
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string')) return null;
  const out = { urls: [...urls] };
  if (e.username !== undefined || e.credential !== undefined) {
    if (typeof e.username !== 'string' || typeof e.credential !== 'string') return null;
    out.username = e.username;
    out.credential = e.credential;
  }
  return out;
}

// The messages that make or feed peer connections: held while the ICE servers are asked for.
const HELD_FOR_ICE = new Set(['NearbyPeers', 'ReceiveOffer', 'ReceiveAnswer', 'ReceiveIceCandidate']);

function newResumeState() {
  // token: the latest Session's; lostAt: when the registered connection was
  // lost (null while connected), so a resume is under way while it is set.
  return { token: null, grace: 0, lostAt: null };
}

function errorMessage(err) {
  return err && err.message ? err.message : String(err);
}

/**
 * One earshot connection: a WebSocket to the server plus a WebRTC peer
 * connection to each nearby player. An EventTarget: listen with
 * addEventListener(type, e => e.detail) or with on(type, detail => ...).
 */
export class EarshotClient extends EventTarget {
  constructor(options = {}) {
    super();
    const o = { ...DEFAULTS, ...options };
    if (!o.url) throw new TypeError('EarshotClient: url is required');
    if (typeof o.clientId !== 'string' || o.clientId.length === 0) {
      throw new TypeError('EarshotClient: clientId must be a non-empty string');
    }
    this.url = o.url;
    this.clientId = o.clientId;
    this.characterName = o.characterName ?? o.clientId;
    this.mapId = toInt(o.mapId, 'mapId');
    this.x = toInt(o.x, 'x');
    this.y = toInt(o.y, 'y');
    this.channel = toInt(o.channel, 'channel');
    this.gameId = o.gameId === null || o.gameId === undefined ? null : toInt(o.gameId, 'gameId');
    this.iceServers = o.iceServers;
    this.iceServersFromServer = o.iceServersFromServer;
    this.iceServersTimeoutMs = o.iceServersTimeoutMs;
    this.iceTransportPolicy = o.iceTransportPolicy;
    this._ice = newIceState();
    this.leaveRadius = o.leaveRadius;
    this.keepaliveMs = o.keepaliveMs;
    this.moveThrottleMs = o.moveThrottleMs;
    this.speakingThreshold = o.speakingThreshold;
    this.statsIntervalMs = o.statsIntervalMs;
    this.reconnectBaseMs = o.reconnectBaseMs;
    this.reconnectMaxMs = o.reconnectMaxMs;
    this.resumable = o.resumable !== false;
    this.peerRetryLimit = o.peerRetryLimit;
    this.peerRetryBaseMs = o.peerRetryBaseMs;
    this.peerRetryMaxMs = o.peerRetryMaxMs;
    this.audioContainer = o.audioContainer;
    this.playAudio = o.playAudio;

    this._localStream = o.localStream;
    this._ownsLocalStream = false;
    this._ws = null;
    this._wanted = false; // connect() called and disconnect() not
    this._registered = false;
    this._reconnectAttempts = 0;
    this._reconnectTimer = null;
    this._resume = newResumeState();
    this._keepaliveTimer = null;
    this._moveTimer = null;
    this._lastPositionSent = 0;
    this._statsTimer = null;
    this._statsBusy = false;
    this._peers = new Map(); // id -> peer record (see _newPeer)
    this._nearby = new Set(); // ids in the latest NearbyPeers
    this._lastError = null; // the last Error text, the reason of a 4000-range close
    this._selfSpeaking = false;
    this._selfEnergy = null;
    this._handlers = new Map(); // on() handler -> listener, per type
  }

  // ---- public API -------------------------------------------------------

  /** "idle" (not connected, or after disconnect()), "connecting" (also while reconnecting) or "connected" (registered). */
  get state() {
    if (!this._wanted) return 'idle';
    return this._registered ? 'connected' : 'connecting';
  }

  /** The local audio stream in use (null before connect() or without a microphone). */
  get localStream() {
    return this._localStream;
  }

  /**
   * Connect to the server and register. Resolves once the WebSocket is open
   * and the first UpdatePosition was sent; the `connected` event follows when
   * the server confirms with NearbyPeers. Reconnects by itself until disconnect().
   */
  async connect() {
    if (this._wanted) return;
    this._wanted = true;
    this._reconnectAttempts = 0;
    if (!this._localStream) await this._acquireLocalStream();
    if (!this._wanted) {
      // disconnect() while waiting for the microphone
      this._releaseLocalStream();
      return;
    }
    this._keepaliveTimer = setInterval(() => this._keepaliveIfDue(), Math.max(100, this.keepaliveMs / 5));
    this._statsTimer = setInterval(() => this._pollStats(), this.statsIntervalMs);
    await this._open();
  }

  /**
   * Move the local player. Integers are sent (values are rounded). Sends
   * UpdatePosition to the server (at most every moveThrottleMs, the last move
   * always goes out) and the new position to every open data channel.
   */
  move({ x = this.x, y = this.y, mapId = this.mapId, channel = this.channel } = {}) {
    const nx = toInt(x, 'x');
    const ny = toInt(y, 'y');
    const nm = toInt(mapId, 'mapId');
    const nc = toInt(channel, 'channel');
    if (nx === this.x && ny === this.y && nm === this.mapId && nc === this.channel) return;
    this.x = nx;
    this.y = ny;
    this.mapId = nm;
    this.channel = nc;
    this._schedulePositionSend();
    for (const peer of this._peers.values()) {
      this._sendDataPosition(peer);
      this._updateVolume(peer);
    }
  }

  /** Change the character name sent to peers over the data channel (sent to open channels at once). */
  setCharacterName(name) {
    this.characterName = String(name);
    for (const peer of this._peers.values()) this._sendDataPosition(peer);
  }

  /** Leave: sends Disconnect, closes every peer connection and stops reconnecting. */
  disconnect() {
    this._shutdown(true, 1000, 'client disconnect');
  }

  _shutdown(sendDisconnect, code, reason) {
    if (!this._wanted && !this._ws) return;
    const wasWanted = this._wanted;
    this._wanted = false;
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._moveTimer);
    clearInterval(this._keepaliveTimer);
    clearInterval(this._statsTimer);
    this._reconnectTimer = this._moveTimer = this._keepaliveTimer = this._statsTimer = null;
    this._iceStop();
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      this._detach(ws);
      if (sendDisconnect && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: 'Disconnect', data: null }));
      }
      try {
        ws.close(1000);
      } catch (_) {
        /* already closing */
      }
    }
    this._closeAllPeers('disconnect');
    this._registered = false;
    this._resume = newResumeState();
    this._releaseLocalStream();
    if (wasWanted) this._emit('disconnected', { code, reason, willReconnect: false });
  }

  /**
   * The peers, as a plain object: id -> {state, position, volume, speaking,
   * level, initiator}. `position` is the peer's last data-channel message
   * ({map_id, x, y, character_name}) or null.
   */
  peers() {
    const out = {};
    for (const [id, p] of this._peers) {
      out[id] = {
        state: p.state,
        position: p.position ? { ...p.position } : null,
        volume: p.volume,
        speaking: p.speaking,
        level: p.level,
        initiator: p.initiator,
      };
    }
    return out;
  }

  /** The RTCPeerConnection to one peer (null if none now), for stats or debugging. */
  peerConnection(id) {
    const p = this._peers.get(id);
    return p ? p.pc : null;
  }

  /** True while the local microphone is above the speaking threshold (needs a connected peer). */
  get speaking() {
    return this._selfSpeaking;
  }

  /** Listen to an event with a handler that receives event.detail. Returns an unsubscribe function. */
  on(type, handler) {
    let byType = this._handlers.get(type);
    if (!byType) this._handlers.set(type, (byType = new Map()));
    if (!byType.has(handler)) {
      const listener = (e) => handler(e.detail, e);
      byType.set(handler, listener);
      this.addEventListener(type, listener);
    }
    return () => this.off(type, handler);
  }

  /** Remove a handler added with on(). */
  off(type, handler) {
    const byType = this._handlers.get(type);
    const listener = byType && byType.get(handler);
    if (listener) {
      this.removeEventListener(type, listener);
      byType.delete(handler);
    }
  }

  // ---- events -----------------------------------------------------------

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _error(source, message, extra = {}) {
    this._emit('error', { source, message, ...extra });
  }

  // ---- local audio ------------------------------------------------------

  async _acquireLocalStream() {
    const md = typeof navigator !== 'undefined' ? navigator.mediaDevices : undefined;
    if (!md || !md.getUserMedia) {
      this._error('media', 'no microphone access here (getUserMedia needs https:// or localhost); receiving audio only');
      return;
    }
    try {
      this._localStream = await md.getUserMedia({ audio: true });
      this._ownsLocalStream = true;
    } catch (err) {
      this._error('media', `microphone unavailable (${errorMessage(err)}); receiving audio only`);
    }
  }

  // Stop the microphone if we opened it; a stream the app passed in is the app's.
  _releaseLocalStream() {
    if (this._ownsLocalStream && this._localStream) {
      for (const t of this._localStream.getTracks()) t.stop();
      this._localStream = null;
      this._ownsLocalStream = false;
    }
  }

  _localAudioTrack() {
    const s = this._localStream;
    return s ? s.getAudioTracks()[0] || null : null;
  }

  // ---- the WebSocket ----------------------------------------------------

  _open() {
    return new Promise((resolve) => {
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        this._error('socket', `cannot connect to ${this.url}: ${errorMessage(err)}`);
        this._wanted = false;
        clearInterval(this._keepaliveTimer);
        clearInterval(this._statsTimer);
        resolve();
        return;
      }
      this._ws = ws;
      this._registered = false;
      ws._earshotSettle = resolve; // so that disconnect() while connecting settles connect()
      ws.onopen = () => {
        this._lastPositionSent = 0;
        this._sendPosition();
        resolve();
      };
      ws.onmessage = (e) => this._onMessage(e.data);
      ws.onerror = () => {
        /* the close event follows and says what happened */
      };
      ws.onclose = (e) => {
        resolve();
        this._onSocketClosed(ws, e.code, e.reason);
      };
    });
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    if (ws._earshotSettle) ws._earshotSettle();
  }

  _onSocketClosed(ws, code, reason) {
    if (ws !== this._ws) return;
    // 4000-4999: an operator removed us (kicked, banned): coming back on our
    // own would undo their decision, so stop as disconnect() does.
    if (code >= 4000 && code <= 4999) {
      this._shutdown(false, code, reason || this._lastError || 'removed by the server');
      return;
    }
    this._detach(ws);
    this._ws = null;
    const wasRegistered = this._registered;
    this._registered = false;
    // A connection lost without a goodbye is resumed when the server gave us a
    // token: the peer connections stay up through the gap.
    const resuming = this._wanted && this._resumeAfter(code, wasRegistered);
    if (!resuming) {
      this._resume = newResumeState();
      this._nearby.clear();
      this._closeAllPeers('disconnected');
    }
    if (!this._wanted) return;
    // Resuming: retry often enough to come back within the server's grace.
    const cap = resuming ? Math.min(this.reconnectMaxMs, Math.max(this.reconnectBaseMs, this._resume.grace * 250)) : this.reconnectMaxMs;
    const delay = Math.min(cap, this.reconnectBaseMs * 2 ** this._reconnectAttempts);
    const jittered = Math.round(delay * (0.75 + Math.random() * 0.5));
    this._reconnectAttempts++;
    const detail = { code, reason, wasRegistered, willReconnect: true, retryInMs: jittered };
    if (resuming) detail.resuming = true;
    this._emit('disconnected', detail);
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      if (this._wanted) this._open();
    }, jittered);
  }

  // Resume after losing the socket with `code`? Only with a token, within the
  // grace, and not after the server closed us on purpose (1000: another
  // connection resumed us, or a timeout; 1008: taken over or dropped).
  _resumeAfter(code, wasRegistered) {
    const r = this._resume;
    if (!r.token || !(r.grace > 0) || code === 1000 || code === 1008) return false;
    if (wasRegistered) r.lostAt = Date.now();
    else if (r.lostAt === null) return false;
    return Date.now() - r.lostAt < r.grace * 1000;
  }

  // The resume was refused (expired, or the server restarted): register afresh.
  _abandonResume() {
    this._resume = newResumeState();
    this._nearby.clear();
    this._closeAllPeers('disconnected');
    this._sendPosition();
  }

  _send(type, data) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify({ type, data }));
    return true;
  }

  _positionPayload() {
    const d = { client_id: this.clientId, map_id: this.mapId, x: this.x, y: this.y, channel: this.channel };
    if (this.gameId !== null) d.game_id = this.gameId;
    if (!this._registered) {
      if (this._resume.lostAt !== null && this._resume.token) d.resume_token = this._resume.token;
      else if (this.resumable) d.resumable = true;
    }
    return d;
  }

  _sendPosition() {
    clearTimeout(this._moveTimer);
    this._moveTimer = null;
    if (this._send('UpdatePosition', this._positionPayload())) this._lastPositionSent = Date.now();
  }

  // The server drops a client silent for its idle timeout (15 s by default).
  // Besides the timer, every server message (NearbyPeers comes every 5 s)
  // checks the keepalive: browsers throttle timers in background tabs hard,
  // but not network events.
  _keepaliveIfDue() {
    if (Date.now() - this._lastPositionSent >= this.keepaliveMs * 0.9) this._sendPosition();
  }

  _schedulePositionSend() {
    const wait = this._lastPositionSent + this.moveThrottleMs - Date.now();
    if (wait <= 0) this._sendPosition();
    else if (!this._moveTimer) this._moveTimer = setTimeout(() => this._sendPosition(), wait);
  }

  _onMessage(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch (err) {
      this._error('protocol', `server sent invalid JSON: ${errorMessage(err)}`);
      return;
    }
    if (this._registered) this._keepaliveIfDue();
    if (!msg || typeof msg !== 'object') return;
    if (this._iceGate(msg, raw)) return;
    const d = msg.data;
    switch (msg.type) {
      case 'NearbyPeers':
        if (Array.isArray(d)) this._onNearby(d.filter((id) => typeof id === 'string' && id !== this.clientId));
        break;
      case 'ReceiveOffer':
        if (d && typeof d.sender_id === 'string') this._onOffer(d.sender_id, d.offer);
        break;
      case 'ReceiveAnswer':
        if (d && typeof d.sender_id === 'string') this._onAnswer(d.sender_id, d.answer);
        break;
      case 'ReceiveIceCandidate':
        if (d && typeof d.sender_id === 'string') this._onCandidate(d.sender_id, d.candidate);
        break;
      case 'Session':
        if (d && typeof d.resume_token === 'string') {
          const resumed = this._resume.lostAt !== null;
          const gapMs = resumed ? Date.now() - this._resume.lostAt : 0;
          this._resume = { token: d.resume_token, grace: typeof d.grace === 'number' ? d.grace : 0, lostAt: null };
          if (resumed) this._emit('resumed', { gapMs });
        }
        break;
      case 'Error': {
        const message = typeof d === 'string' ? d : JSON.stringify(d);
        if (message === 'invalid resume token' && this._resume.lostAt !== null && !this._registered) {
          this._abandonResume();
          break;
        }
        this._lastError = message;
        this._error('server', message);
        // Another connection took our client_id: reconnecting would take it
        // back and the two would fight forever.
        if (/taken over/i.test(message)) this._shutdown(false, 1008, message);
        break;
      }
      default:
        break; // unknown types are ignored, like unknown fields
    }
  }

  // ---- peers ------------------------------------------------------------

  _newPeer(id) {
    const peer = {
      id,
      initiator: isInitiator(this.clientId, id),
      pc: null,
      dc: null,
      state: 'new',
      position: null,
      volume: 1,
      speaking: false,
      level: 0,
      audio: null,
      pendingCandidates: [], // received before the remote description
      outgoing: [], // local candidates gathered before our description was sent
      descriptionSent: false,
      attempts: 0,
      retryTimer: null,
      lastEnergy: null,
      quietPolls: 0,
    };
    this._peers.set(id, peer);
    this._emit('peerjoined', { id, initiator: peer.initiator });
    return peer;
  }

  _setState(peer, state) {
    if (peer.state === state) return;
    peer.state = state;
    this._emit('peerstate', { id: peer.id, state });
  }

  _onNearby(ids) {
    const wasRegistered = this._registered;
    this._registered = true;
    this._reconnectAttempts = 0;
    this._nearby = new Set(ids);
    if (!wasRegistered) this._emit('connected', { url: this.url, clientId: this.clientId });
    for (const id of [...this._peers.keys()]) {
      if (!this._nearby.has(id)) this._removePeer(id, 'left');
    }
    for (const id of this._nearby) {
      if (this._peers.has(id)) continue;
      const peer = this._newPeer(id);
      if (peer.initiator) this._startOffer(peer);
      else this._setState(peer, 'waiting'); // for the peer's offer
    }
  }

  _createPc(peer) {
    const pc = new RTCPeerConnection(this._rtcConfiguration());
    this._watchIceErrors(peer, pc);
    peer.pc = pc;
    peer.dc = null;
    peer.descriptionSent = false;
    peer.outgoing = [];
    peer.lastEnergy = null;
    pc.onicecandidate = (e) => {
      if (peer.pc !== pc || !e.candidate || !e.candidate.candidate) return; // end of candidates
      const text = JSON.stringify(e.candidate.toJSON());
      if (peer.descriptionSent) this._send('SendIceCandidate', { target_id: peer.id, candidate: text });
      else peer.outgoing.push(text);
    };
    pc.onconnectionstatechange = () => {
      if (peer.pc !== pc) return;
      const s = pc.connectionState;
      this._setState(peer, s);
      if (s === 'connected') peer.attempts = 0;
      else if (s === 'failed') this._peerFailed(peer);
    };
    pc.ontrack = (e) => {
      if (peer.pc !== pc || e.track.kind !== 'audio') return;
      this._attachAudio(peer, e.streams[0] || new MediaStream([e.track]));
    };
    pc.ondatachannel = (e) => {
      if (peer.pc === pc && e.channel.label === DATA_CHANNEL_LABEL) this._setupDataChannel(peer, e.channel);
    };
    this._setState(peer, 'new');
    return pc;
  }

  _addLocalAudio(pc) {
    const track = this._localAudioTrack();
    if (track) pc.addTrack(track, this._localStream);
    return !!track;
  }

  _sendDescription(peer, kind) {
    const text = JSON.stringify(peer.pc.localDescription);
    if (kind === 'offer') this._send('SendOffer', { target_id: peer.id, offer: text });
    else this._send('SendAnswer', { target_id: peer.id, answer: text });
    peer.descriptionSent = true;
    for (const c of peer.outgoing) this._send('SendIceCandidate', { target_id: peer.id, candidate: c });
    peer.outgoing = [];
  }

  async _startOffer(peer) {
    const pc = this._createPc(peer);
    this._setupDataChannel(peer, pc.createDataChannel(DATA_CHANNEL_LABEL));
    if (!this._addLocalAudio(pc)) pc.addTransceiver('audio', { direction: 'recvonly' });
    try {
      await pc.setLocalDescription(await pc.createOffer());
      if (peer.pc !== pc) return;
      this._sendDescription(peer, 'offer');
    } catch (err) {
      if (peer.pc !== pc) return;
      this._error('webrtc', `offer to ${peer.id} failed: ${errorMessage(err)}`, { peerId: peer.id });
      this._peerFailed(peer);
    }
  }

  async _onOffer(id, text) {
    let desc;
    try {
      desc = parseDescription(text, 'offer');
    } catch (err) {
      this._error('protocol', `bad offer from ${id}: ${errorMessage(err)}`, { peerId: id });
      return;
    }
    // earshot tells both sides of a new pair at once, so a peer's offer never
    // arrives before the NearbyPeers that lists it. An offer from a peer that
    // is not listed is a late one from a pair that already parted (relay_guard
    // lets them through for a grace period): answering it would only make a
    // connection that the next NearbyPeers tears down again.
    const peer = this._peers.get(id);
    if (!peer || !this._nearby.has(id)) {
      console.debug(`earshot: offer from ${id}, who is not near, ignored`);
      return;
    }
    if (peer.pc && peer.initiator && peer.pc.signalingState === 'have-local-offer') {
      return; // glare: we are the designated offerer, ours wins
    }
    if (peer.pc) {
      // The remote side restarted (a retry after a failure, or a reload): start over.
      this._closePc(peer);
    }
    clearTimeout(peer.retryTimer);
    peer.retryTimer = null;
    peer.pendingCandidates = [];
    const pc = this._createPc(peer);
    try {
      await pc.setRemoteDescription(desc);
      if (peer.pc !== pc) return;
      this._addLocalAudio(pc);
      await this._flushCandidates(peer);
      await pc.setLocalDescription(await pc.createAnswer());
      if (peer.pc !== pc) return;
      this._sendDescription(peer, 'answer');
    } catch (err) {
      if (peer.pc !== pc) return;
      this._error('webrtc', `answering ${id} failed: ${errorMessage(err)}`, { peerId: id });
      this._peerFailed(peer);
    }
  }

  async _onAnswer(id, text) {
    const peer = this._peers.get(id);
    const pc = peer && peer.pc;
    if (!pc || pc.signalingState !== 'have-local-offer') return; // stale
    let desc;
    try {
      desc = parseDescription(text, 'answer');
    } catch (err) {
      this._error('protocol', `bad answer from ${id}: ${errorMessage(err)}`, { peerId: id });
      return;
    }
    try {
      await pc.setRemoteDescription(desc);
      if (peer.pc === pc) await this._flushCandidates(peer);
    } catch (err) {
      if (peer.pc !== pc) return;
      this._error('webrtc', `answer from ${id} refused: ${errorMessage(err)}`, { peerId: id });
      this._peerFailed(peer);
    }
  }

  async _onCandidate(id, text) {
    const peer = this._peers.get(id);
    if (!peer) return;
    let init;
    try {
      init = parseCandidate(text);
    } catch (err) {
      this._error('protocol', `bad ICE candidate from ${id}: ${errorMessage(err)}`, { peerId: id });
      return;
    }
    const pc = peer.pc;
    if (!pc || !pc.remoteDescription) {
      peer.pendingCandidates.push(init);
      return;
    }
    try {
      await pc.addIceCandidate(init);
    } catch (err) {
      // A candidate of an older negotiation, or for an m-line we do not have: harmless.
      if (peer.pc === pc) console.debug(`earshot: ICE candidate from ${id} ignored: ${errorMessage(err)}`);
    }
  }

  async _flushCandidates(peer) {
    const pc = peer.pc;
    const queued = peer.pendingCandidates;
    peer.pendingCandidates = [];
    for (const init of queued) {
      if (peer.pc !== pc) return;
      try {
        await pc.addIceCandidate(init);
      } catch (err) {
        console.debug(`earshot: queued ICE candidate from ${peer.id} ignored: ${errorMessage(err)}`);
      }
    }
  }

  _peerFailed(peer) {
    if (this._peers.get(peer.id) !== peer) return;
    this._closePc(peer);
    peer.attempts++;
    this._setState(peer, 'failed');
    this._send('RequestPeerRefresh', null);
    clearTimeout(peer.retryTimer);
    if (peer.attempts > this.peerRetryLimit) {
      this._error('webrtc', `giving up on ${peer.id} after ${peer.attempts} failed connection attempts`, {
        peerId: peer.id,
      });
      return; // stays "failed" until the peer leaves NearbyPeers and comes back
    }
    const delay = Math.min(this.peerRetryMaxMs, this.peerRetryBaseMs * 2 ** (peer.attempts - 1));
    this._setState(peer, 'retrying');
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = null;
      if (this._peers.get(peer.id) !== peer || peer.pc) return; // gone, or the peer already re-offered
      if (peer.initiator) this._startOffer(peer);
      else this._setState(peer, 'waiting');
    }, delay);
  }

  _closePc(peer) {
    const pc = peer.pc;
    peer.pc = null;
    if (peer.dc) {
      peer.dc.onopen = peer.dc.onmessage = peer.dc.onclose = null;
      try {
        peer.dc.close();
      } catch (_) {
        /* already closed */
      }
      peer.dc = null;
    }
    if (pc) {
      pc.onicecandidate = pc.onconnectionstatechange = pc.ontrack = pc.ondatachannel = null;
      pc.close();
    }
    this._detachAudio(peer);
    if (peer.speaking) {
      peer.speaking = false;
      this._emit('speaking', { id: peer.id, speaking: false, level: 0 });
    }
    peer.level = 0;
  }

  _removePeer(id, reason) {
    const peer = this._peers.get(id);
    if (!peer) return;
    clearTimeout(peer.retryTimer);
    this._closePc(peer);
    this._peers.delete(id);
    peer.state = 'closed';
    this._emit('peerstate', { id, state: 'closed' });
    this._emit('peerleft', { id, reason });
  }

  _closeAllPeers(reason) {
    for (const id of [...this._peers.keys()]) this._removePeer(id, reason);
  }

  // ---- ICE servers from the server ---------------------------------------
  //
  // After registering (the first NearbyPeers on a connection) the client
  // sends RequestIceServers and holds every message that makes or feeds a
  // peer connection until the IceServers answer (or iceServersTimeoutMs):
  // so no peer connection starts without the TURN credentials. The list is
  // asked for again at 80% of its ttl. A server that does not know the
  // message (Error "Unknown message type: RequestIceServers") is not asked
  // again; the iceServers option alone is used then.

  /** The RTCConfiguration of a new peer connection: the iceServers option, then the server's. */
  _rtcConfiguration() {
    const ice = this._ice;
    const fromServer = ice.servers && Date.now() < ice.expires ? ice.servers : [];
    const config = { iceServers: [...this.iceServers, ...fromServer] };
    if (this.iceTransportPolicy) config.iceTransportPolicy = this.iceTransportPolicy;
    return config;
  }

  // Takes the server messages that concern the ICE servers, and holds the
  // ones that must wait for them. True when msg was taken.
  _iceGate(msg, raw) {
    const ice = this._ice;
    const ws = this._ws;
    if (msg.type === 'IceServers') {
      this._onIceServers(msg.data);
      return true;
    }
    if (msg.type === 'Error' && ice.outstanding && typeof msg.data === 'string' && msg.data.startsWith('Unknown message type: RequestIceServers')) {
      ice.unsupported = true;
      ice.outstanding = false;
      if (ice.waitingWs) this._iceRelease(true);
      return true;
    }
    if (ice.waitingWs && ice.waitingWs !== ws) this._iceRelease(false); // a connection gone since
    if (ice.waitingWs) {
      if (!HELD_FOR_ICE.has(msg.type)) return false;
      ice.held.push(raw);
      return true;
    }
    if (msg.type !== 'NearbyPeers' || this._registered || !this.iceServersFromServer || ice.unsupported) return false;
    const now = Date.now();
    if (ice.servers && now < ice.refreshAt) {
      // Registered again while the list is fresh: only its refresh is due.
      if (!ice.refreshTimer) ice.refreshTimer = setTimeout(() => this._refreshIceServers(), ice.refreshAt - now);
      return false;
    }
    if (ice.askedWs === ws) return false; // asked on this connection already (and gave up waiting)
    // Registered just now: ask before any peer connection is made.
    this._requestIceServers();
    ice.waitingWs = ws;
    ice.held.push(raw);
    ice.timer = setTimeout(() => {
      console.debug(`earshot: no IceServers within ${this.iceServersTimeoutMs} ms; going on without`);
      this._iceRelease(true);
    }, this.iceServersTimeoutMs);
    return true;
  }

  _requestIceServers() {
    const ice = this._ice;
    ice.askedWs = this._ws;
    ice.outstanding = this._send('RequestIceServers', null);
  }

  _onIceServers(d) {
    const ice = this._ice;
    ice.outstanding = false;
    const entries = d && Array.isArray(d.ice_servers) ? d.ice_servers.map(iceServerEntry) : null;
    const ttl = d ? d.ttl : undefined;
    if (!entries || entries.includes(null) || !Number.isFinite(ttl) || ttl <= 0) {
      this._error('protocol', `server sent an invalid IceServers: ${JSON.stringify(d)}`);
    } else {
      const now = Date.now();
      ice.servers = entries;
      ice.expires = now + ttl * 1000;
      ice.refreshAt = now + ttl * 800;
      clearTimeout(ice.refreshTimer);
      ice.refreshTimer = setTimeout(() => this._refreshIceServers(), Math.min(ttl * 800, 0x7fffffff));
      this._emit('iceservers', { iceServers: entries.map((e) => ({ ...e })), ttl });
    }
    if (ice.waitingWs) this._iceRelease(true);
  }

  _refreshIceServers() {
    this._ice.refreshTimer = null;
    // Not registered now: the next registration asks (the list is due).
    if (this._registered && !this._ice.unsupported) this._requestIceServers();
  }

  // Stop holding; replay what was held when its connection is still the current one.
  _iceRelease(replay) {
    const ice = this._ice;
    clearTimeout(ice.timer);
    ice.timer = null;
    const { held, waitingWs } = ice;
    ice.held = [];
    ice.waitingWs = null;
    if (replay && waitingWs === this._ws) for (const raw of held) this._onMessage(raw);
  }

  _iceStop() {
    const ice = this._ice;
    clearTimeout(ice.refreshTimer);
    ice.refreshTimer = null;
    ice.askedWs = null;
    ice.outstanding = false;
    this._iceRelease(false);
  }

  // A STUN or TURN server answered with an error (401: the TURN server
  // refused the credentials). 7xx codes (no answer, unreachable from one
  // interface) are routine and only logged.
  _watchIceErrors(peer, pc) {
    pc.onicecandidateerror = (e) => {
      if (peer.pc !== pc) return;
      const text = `ICE server ${e.url || '?'} answered ${e.errorCode} ${e.errorText || ''}`.trim();
      if (e.errorCode >= 300 && e.errorCode < 700) {
        this._error('webrtc', `${text} (peer ${peer.id})`, { peerId: peer.id, url: e.url, errorCode: e.errorCode });
      } else {
        console.debug(`earshot: ${text}`);
      }
    };
  }

  // ---- data channel -----------------------------------------------------

  _setupDataChannel(peer, dc) {
    peer.dc = dc;
    dc.onopen = () => {
      this._emit('peerstate', { id: peer.id, state: peer.state, dataChannel: 'open' });
      this._sendDataPosition(peer);
    };
    dc.onmessage = (e) => this._onDataMessage(peer, e.data);
    dc.onclose = () => {
      if (peer.dc === dc) peer.dc = null;
    };
  }

  _sendDataPosition(peer) {
    const dc = peer.dc;
    if (!dc || dc.readyState !== 'open') return;
    dc.send(JSON.stringify({ map_id: this.mapId, x: this.x, y: this.y, character_name: this.characterName }));
  }

  _onDataMessage(peer, raw) {
    if (typeof raw !== 'string') return;
    let m;
    try {
      m = JSON.parse(raw);
    } catch (_) {
      return;
    }
    if (!m || typeof m !== 'object' || ![m.map_id, m.x, m.y].every(Number.isFinite)) return;
    peer.position = {
      map_id: m.map_id,
      x: m.x,
      y: m.y,
      character_name: typeof m.character_name === 'string' ? m.character_name : peer.id,
    };
    this._updateVolume(peer);
    this._emit('position', { id: peer.id, ...peer.position, volume: peer.volume });
  }

  // ---- audio ------------------------------------------------------------

  _updateVolume(peer) {
    const p = peer.position;
    if (!p) return; // unknown yet: full volume (the server says the peer is near)
    const v = p.map_id !== this.mapId ? 0 : volumeForDistance(Math.hypot(p.x - this.x, p.y - this.y), this.leaveRadius);
    peer.volume = v;
    if (peer.audio) peer.audio.volume = v;
  }

  _attachAudio(peer, stream) {
    if (!peer.audio) {
      if (typeof document === 'undefined') return;
      const el = document.createElement('audio');
      el.autoplay = true;
      el.dataset.earshotPeer = peer.id;
      el.style.display = 'none';
      (this.audioContainer || document.body).appendChild(el);
      peer.audio = el;
    }
    peer.audio.srcObject = stream;
    peer.audio.volume = peer.volume;
    peer.audio.muted = !this.playAudio;
    const played = peer.audio.play();
    if (played && played.catch) {
      played.catch((err) => {
        if (err && err.name === 'AbortError') return; // replaced by a newer stream
        this._error('media', `cannot play audio of ${peer.id} (${errorMessage(err)}); a click on the page allows it`, {
          peerId: peer.id,
        });
      });
    }
  }

  _detachAudio(peer) {
    const el = peer.audio;
    if (!el) return;
    peer.audio = null;
    el.pause();
    el.srcObject = null;
    el.remove();
  }

  /** Resume audio playback blocked by the browser's autoplay policy (call it from a click). */
  resumeAudio() {
    for (const peer of this._peers.values()) if (peer.audio) peer.audio.play().catch(() => {});
  }

  // ---- speaking detection (getStats, ~5 times a second) -----------------

  // Loudness since the previous poll from totalAudioEnergy/totalSamplesDuration
  // (RMS over the interval), falling back to the instantaneous audioLevel.
  static _level(stat, prev) {
    if (typeof stat.totalAudioEnergy === 'number' && typeof stat.totalSamplesDuration === 'number') {
      if (prev) {
        const dt = stat.totalSamplesDuration - prev.duration;
        const de = stat.totalAudioEnergy - prev.energy;
        if (dt > 0 && de >= 0) return { level: Math.sqrt(de / dt), sample: { energy: stat.totalAudioEnergy, duration: stat.totalSamplesDuration } };
      }
      return { level: stat.audioLevel || 0, sample: { energy: stat.totalAudioEnergy, duration: stat.totalSamplesDuration } };
    }
    return { level: stat.audioLevel || 0, sample: null };
  }

  async _pollStats() {
    if (this._statsBusy || this._peers.size === 0) return;
    this._statsBusy = true;
    try {
      let selfLevel = null;
      for (const peer of [...this._peers.values()]) {
        const pc = peer.pc;
        if (!pc || pc.connectionState !== 'connected') continue;
        let report;
        try {
          report = await pc.getStats();
        } catch (_) {
          continue;
        }
        if (peer.pc !== pc) continue;
        let level = 0;
        report.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'audio') {
            const r = EarshotClient._level(s, peer.lastEnergy);
            peer.lastEnergy = r.sample;
            level = Math.max(level, r.level);
          } else if (s.type === 'media-source' && s.kind === 'audio' && selfLevel === null) {
            const r = EarshotClient._level(s, this._selfEnergy);
            this._selfEnergy = r.sample;
            selfLevel = r.level;
          }
        });
        peer.level = level;
        const now = level > this.speakingThreshold;
        // A short hangover so that gaps between words do not flicker.
        if (now) peer.quietPolls = 0;
        else peer.quietPolls++;
        const speaking = now || (peer.speaking && peer.quietPolls < 3);
        if (speaking !== peer.speaking) {
          peer.speaking = speaking;
          this._emit('speaking', { id: peer.id, speaking, level });
        }
      }
      if (selfLevel !== null) {
        const speaking = selfLevel > this.speakingThreshold;
        if (speaking !== this._selfSpeaking) {
          this._selfSpeaking = speaking;
          this._emit('speaking', { id: this.clientId, self: true, speaking, level: selfLevel });
        }
      }
    } finally {
      this._statsBusy = false;
    }
  }
}

export default EarshotClient;
