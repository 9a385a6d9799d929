#!/usr/bin/env node
// Socket.IO fan-out load generator (measurement harness only, not product code).
// DroneCast's copy of ../shared/bench/loadgen, adapted (see bench/README.md):
//   --publish lua   publish through the product's publish.lua (ids, retention stream, snapshot,
//                   PUBLISH of the product envelope), the same keys/args RedisBroker.publish uses;
//                   --publish raw (default) publishes the harness's raw JSON, for the peers.
//   --publish lua-cluster  the same script on a Redis Cluster (--redis-url names any node), with
//                   ClusterBroker.publish's hash-tagged keys and args: the slot's log, SPUBLISH on
//                   drone:{serial}:updated and the slot's fleet channel. (Not the WAIT for a
//                   replica that follows it in the product: that delays the publisher's next
//                   event, not the delivery of this one.)
//   --test storm    (--client c) N-OBSERVERS clients on the first gateway, OBSERVERS on the
//                   second; after --warmup s the first is SIGKILLed and its clients reconnect to
//                   the second with lastEventId, with socket.io-client's jittered backoff, while
//                   events keep flowing. --tokens FILE: one token per client (auth on).
//   --urls a,b      spread clients round-robin over several gateways (replica scaling).
//   --server-pid    may be a comma-separated list (CPU and RSS are summed).
//   --test patch    REST PATCH -> Socket.IO latency through `dronecast api`.
//   --client raw    a lean Socket.IO client on the `ws` package (the one socket.io-client
//                   itself uses): same wire protocol (engine.io v4 over WebSocket, namespace
//                   connect, `subscribe` emit, ping/pong), but it reads bseq/bsseq/bts out of
//                   the frame without decoding the whole JSON. Several times cheaper per message,
//                   so the server, not the loadgen, saturates. --client sio (default) is the
//                   official socket.io-client.
//   --client tcp    the same lean client on a bare TCP socket: WebSocket handshake and frame
//                   parsing done here (text, ping/pong, close), no stream machinery per
//                   message.
//   --client c      the receiving clients in C on one epoll loop (creceiver.c, --creceiver
//                   PATH to its binary); this process still publishes and orchestrates. By far
//                   the cheapest per message, so the server is what saturates.
//
// Opens N socket.io-client connections (websocket transport only) to a gateway,
// waits for the server's `connected` event, subscribes each client ({all:true} or
// {droneSerial}), verifies subscriptions with probe messages, then publishes events
// on Redis channels drone:<serial>:telemetry at a target rate and measures delivery.
// The publisher lives in this process, so send and receive timestamps share a clock.
//
// Tests:
//   --test fanout    : publish R events/s for D seconds; print one JSON line.
//   --test capacity  : ramp idle connected+subscribed clients through --steps;
//                      print one JSON line per step.
// All diagnostics go to stderr; result lines (JSON) go to stdout.
'use strict';

const fs = require('fs');
const { execSync } = require('child_process');
const { performance } = require('perf_hooks');
const { io } = require('socket.io-client');
const { createClient } = require('redis');

// ---------------------------------------------------------------- options
function parseArgs(argv) {
  const o = {};
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) { o[a.slice(2, eq)] = a.slice(eq + 1); continue; }
    const k = a.slice(2);
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) o[k] = 'true';
    else { o[k] = v; i++; }
  }
  return o;
}
const A = parseArgs(process.argv);
const opt = {
  test: A.test || 'fanout',
  impl: A.impl || 'unknown',
  url: A.url || 'http://127.0.0.1:8100',
  path: A.path || '/ws/events',
  redisUrl: A['redis-url'] || 'redis://127.0.0.1:6390',
  clients: Number(A.clients || 1000),
  mode: A.mode || 'all', // all | targeted
  serials: Number(A.serials || 100),
  rate: Number(A.rate || 100),
  duration: Number(A.duration || 10),
  steps: (A.steps || '1000,5000,10000').split(',').map(Number).filter((x) => x > 0),
  serverPids: A['server-pid'] ? String(A['server-pid']).split(',').map(Number) : [],
  urls: A.urls ? String(A.urls).split(',') : null,
  publish: A.publish || 'raw', // raw | lua
  client: A.client || 'sio', // sio | raw | tcp | c
  creceiver: A.creceiver || null,
  stalled: Number(A.stalled || 0), // --client c: clients that stop reading (slow consumers)
  luaScript: A['lua-script'] || null,
  retentionMs: Number(A['retention-ms'] || 600000),
  maxEvents: Number(A['max-events'] || 100000),
  apiUrl: A['api-url'] || 'http://127.0.0.1:8200',
  apiPid: A['api-pid'] ? Number(A['api-pid']) : null,
  patchConcurrency: Number(A['patch-concurrency'] || 64),
  redisPid: A['redis-pid'] ? String(A['redis-pid']).split(',').map(Number) : null, // a cluster: every node
  connectConcurrency: Number(A['connect-concurrency'] || 200),
  connectTimeoutMs: Number(A['connect-timeout-ms'] || 30000),
  drainIdleMs: Number(A['drain-idle-ms'] || 2000),
  drainMaxMs: Number(A['drain-max-ms'] || 20000),
  probeTimeoutMs: Number(A['probe-timeout-ms'] || 15000),
  settleMs: Number(A['settle-ms'] || 2000),
  padBytes: Number(A['pad-bytes'] || 0),
  readyEvent: A['ready-event'] || 'connected',
  sampleMs: Number(A['sample-ms'] || 500),
  observers: Number(A.observers || 500), // storm: clients on the surviving replica from the start
  warmup: Number(A.warmup || 3), // storm: seconds of events before the SIGKILL
  after: Number(A.after || 3), // storm: seconds of events after every client resumed
  reconnectMinMs: Number(A['reconnect-min-ms'] || 500), // storm: socket.io-client's 1000 ms x (1 - 0.5)
  reconnectJitterMs: Number(A['reconnect-jitter-ms'] || 1000), // storm: ... up to x (1 + 0.5)
  stormTimeoutS: Number(A['storm-timeout'] || 60),
  tokens: A.tokens || '',
};
if (!['all', 'targeted'].includes(opt.mode)) throw new Error('--mode must be all|targeted');
if (!['fanout', 'capacity', 'patch', 'storm'].includes(opt.test)) throw new Error('--test must be fanout|capacity|patch|storm');
if (!['raw', 'lua', 'lua-cluster'].includes(opt.publish)) throw new Error('--publish must be raw|lua|lua-cluster');

const log = (...a) => console.error(`[loadgen ${new Date().toISOString()}]`, ...a);
const now = () => performance.timeOrigin + performance.now(); // ms, sub-ms resolution
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const r1 = (x) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 1000) / 1000);

// ---------------------------------------------------------------- /proc sampling
let CLK_TCK = 100;
try { CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100; } catch (e) { /* default */ }

function readStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0]=state f[1]=ppid ... f[11]=utime f[12]=stime (fields 14,15)
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch (e) { return null; }
}
function readRssKb(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(s);
    return m ? Number(m[1]) : 0;
  } catch (e) { return 0; }
}
// root pid plus all descendants (so a wrapper shell / worker processes are included)
function pidTree(root) {
  const children = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const st = readStat(d);
    if (!st) continue;
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(Number(d));
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const c of children.get(out[i]) || []) out.push(c);
  return out;
}
function sampleTree(roots) {
  if (!roots || !roots.length) return null;
  let rssKb = 0; let ticks = 0; let n = 0;
  const all = [];
  for (const r of roots) all.push(...pidTree(r));
  for (const p of all) {
    const st = readStat(p);
    if (!st) continue;
    ticks += st.ticks; rssKb += readRssKb(p); n++;
  }
  return { t: now(), rssKb, ticks, procs: n };
}
class Sampler {
  constructor(pid) { this.pid = Array.isArray(pid) ? (pid.length ? pid : null) : (pid ? [pid] : null); this.first = null; this.last = null; this.peakRssKb = 0; this.h = null; }
  start() {
    if (!this.pid) return this;
    this.first = sampleTree(this.pid); this.last = this.first; this.peakRssKb = this.first.rssKb;
    this.h = setInterval(() => this.tick(), opt.sampleMs);
    return this;
  }
  tick() {
    const s = sampleTree(this.pid);
    if (!s) return;
    this.last = s;
    if (s.rssKb > this.peakRssKb) this.peakRssKb = s.rssKb;
  }
  stop() {
    if (!this.pid) return null;
    clearInterval(this.h); this.tick();
    const dt = (this.last.t - this.first.t) / 1000;
    return {
      cpuPct: dt > 0 ? ((this.last.ticks - this.first.ticks) / CLK_TCK / dt) * 100 : null,
      peakRssMb: this.peakRssKb / 1024,
      endRssMb: this.last.rssKb / 1024,
      startRssMb: this.first.rssKb / 1024,
      procs: this.last.procs,
    };
  }
}
class SelfCpu {
  start() { this.c0 = process.cpuUsage(); this.t0 = performance.now(); return this; }
  stop() {
    const c = process.cpuUsage(this.c0); const dt = (performance.now() - this.t0) * 1000;
    return dt > 0 ? ((c.user + c.system) / dt) * 100 : null;
  }
}

// ---------------------------------------------------------------- clients
const MAXC = Math.max(opt.clients, ...(opt.test === 'capacity' ? opt.steps : [0]));
const SERIALS = Array.from({ length: Math.max(1, opt.serials) }, (_, i) => `SN${String(i).padStart(5, '0')}`);
const sockets = new Array(MAXC);
const clientOk = new Uint8Array(MAXC); // got ready event and subscribed
const clientSerial = new Int32Array(MAXC).fill(-1); // targeted: serial index
const recvCount = new Uint32Array(MAXC);
const lastSeq = new Float64Array(MAXC).fill(-1);
const gapCount = new Float64Array(MAXC);
const dupOoo = new Uint32Array(MAXC);
const probeSeen = new Uint32Array(MAXC); // last probe round seen
let probeRound = 0;
let probeLat = [];
let connectLat = [];
let connectFailed = 0;
let missingReadyEvent = 0;
const connectErrors = new Map();
let unexpectedDisconnects = 0;
let closing = false;
let badPayload = 0;

// latency samples (measured events only)
let lat = new Float64Array(1 << 20);
let latN = 0;
function pushLat(v) {
  if (latN === lat.length) { const n = new Float64Array(lat.length * 2); n.set(lat); lat = n; }
  lat[latN++] = v;
}
let measuring = false;
let delivered = 0;
let firstRecvT = 0;
let lastRecvT = 0;
let strayMeasured = 0; // measured-seq events received when not measuring (should be 0)

function findMeta(p, depth) {
  if (typeof p === 'string') {
    if (p[0] !== '{') return null;
    try { p = JSON.parse(p); } catch (e) { return null; }
  }
  if (!p || typeof p !== 'object') return null;
  if (p.bts !== undefined) return p;
  if (depth > 3) return null;
  for (const k of Object.keys(p)) {
    const r = findMeta(p[k], depth + 1);
    if (r) return r;
  }
  return null;
}

function onEvent(i, p) {
  const t = now();
  // raw harness body has bts on top; the product envelope carries it in `data`
  const m = (p && p.bts !== undefined) ? p : (p && p.data && p.data.bts !== undefined) ? p.data : findMeta(p, 0);
  if (!m) { if (opt.test === 'patch') onPatchEvent(i, p, t); else badPayload++; return; }
  if (m.bseq < 0) { // probe
    if (m.bprobe === probeRound && probeSeen[i] !== probeRound) {
      probeSeen[i] = probeRound;
      if (m.biter === 0) probeLat.push(t - m.bts);
    }
    return;
  }
  if (!measuring) { strayMeasured++; return; }
  const s = opt.mode === 'all' ? m.bseq : m.bsseq;
  const expectedNext = lastSeq[i] + 1;
  if (s === expectedNext) lastSeq[i] = s;
  else if (s > expectedNext) { gapCount[i] += s - expectedNext; lastSeq[i] = s; }
  else dupOoo[i]++;
  recvCount[i]++;
  delivered++;
  if (firstRecvT === 0) firstRecvT = t;
  lastRecvT = t;
  pushLat(t - m.bts);
}

function subPayload(i) {
  if (opt.mode === 'all') return { all: true };
  return { droneSerial: SERIALS[clientSerial[i]] };
}

// ---------------------------------------------------------------- lean client (--client raw)
const WebSocket = require('ws');
const EVENT_PREFIX = Buffer.from('42["drone:event",');
const K_BSEQ = Buffer.from('"bseq":');
const K_BSSEQ = Buffer.from('"bsseq":');
const K_BTS = Buffer.from('"bts":');
const K_BPROBE = Buffer.from('"bprobe":');
const K_BITER = Buffer.from('"biter":');
function numAt(buf, key, from) {
  const at = buf.indexOf(key, from);
  if (at < 0) return undefined;
  let j = at + key.length; let end = j;
  while (end < buf.length) { const c = buf[end]; if (c === 44 || c === 125 || c === 93) break; end++; }
  return Number(buf.latin1Slice(j, end));
}
function rawMessage(i, buf) {
  // engine.io: '2' ping, '4' message; socket.io inside a message: '0' connect, '2' event
  const c0 = buf[0];
  if (c0 === 50) return 'ping';
  if (c0 !== 52) return null;
  if (buf[1] === 48) return 'sio-connect';
  if (buf[1] !== 50) return null;
  if (buf.compare(EVENT_PREFIX, 0, EVENT_PREFIX.length, 0, EVENT_PREFIX.length) !== 0) {
    const str = buf.toString();
    if (str.startsWith('42["connected"')) return 'connected';
    if (str.startsWith('42["error"')) log(`client ${i} error event: ${str.slice(0, 200)}`);
    return null;
  }
  const bts = numAt(buf, K_BTS, EVENT_PREFIX.length);
  if (bts === undefined) { onEvent(i, JSON.parse(buf.toString().slice(2))[1]); return null; }
  const bseq = numAt(buf, K_BSEQ, EVENT_PREFIX.length);
  const m = { bts, bseq, bsseq: numAt(buf, K_BSSEQ, EVENT_PREFIX.length) };
  if (bseq < 0) { m.bprobe = numAt(buf, K_BPROBE, EVENT_PREFIX.length); m.biter = numAt(buf, K_BITER, EVENT_PREFIX.length); }
  onEvent(i, m);
  return null;
}
function openRawClient(i, cb) {
  const t0 = now();
  if (opt.mode === 'targeted') clientSerial[i] = i % SERIALS.length;
  const base = (opt.urls ? opt.urls[i % opt.urls.length] : opt.url).replace(/^http/, 'ws');
  const ws = new WebSocket(`${base}${opt.path.replace(/\/$/, '')}/?EIO=4&transport=websocket`,
    { perMessageDeflate: false, skipUTF8Validation: true });
  sockets[i] = { disconnect: () => { try { ws.close(); } catch (e) { /* closed */ } } };
  let finished = false;
  const hardTimer = setTimeout(() => finish(false, 'timeout'), opt.connectTimeoutMs + 5000);
  function finish(ok, why) {
    if (finished) return;
    finished = true; clearTimeout(hardTimer);
    if (ok) connectLat.push(now() - t0);
    else { connectFailed++; connectErrors.set(why, (connectErrors.get(why) || 0) + 1); }
    cb(ok);
  }
  ws.on('message', (data) => {
    const what = rawMessage(i, data);
    if (what === null) return;
    if (what === 'ping') { ws.send('3'); return; }
    if (data[0] === 48) return; // engine.io open
    if (what === 'connected' && !finished) {
      ws.send(`42["subscribe",${JSON.stringify(subPayload(i))}]`);
      clientOk[i] = 1;
      finish(true);
    }
  });
  ws.on('open', () => ws.send('40'));
  ws.on('error', (e) => finish(false, `error: ${e && e.message}`));
  ws.on('close', () => {
    if (!closing && clientOk[i]) { unexpectedDisconnects++; clientOk[i] = 0; if (unexpectedDisconnects <= 5) log(`client ${i} closed`); }
    finish(false, 'closed');
  });
}

const net = require('net');
function maskedFrame(opcode, text) {
  const payload = Buffer.from(text);
  if (payload.length > 125) throw new Error('client frame too long');
  const f = Buffer.alloc(6 + payload.length); // zero mask key: the payload goes as it is
  f[0] = 0x80 | opcode; f[1] = 0x80 | payload.length;
  payload.copy(f, 6);
  return f;
}
const PONG3 = maskedFrame(1, '3');
function openTcpClient(i, cb) {
  const t0 = now();
  if (opt.mode === 'targeted') clientSerial[i] = i % SERIALS.length;
  const u = new URL(opt.urls ? opt.urls[i % opt.urls.length] : opt.url);
  const sock = net.connect({ host: u.hostname, port: Number(u.port) });
  sock.setNoDelay(true);
  sockets[i] = { disconnect: () => sock.destroy() };
  let finished = false; let upgraded = false; let rest = null;
  const hardTimer = setTimeout(() => finish(false, 'timeout'), opt.connectTimeoutMs + 5000);
  function finish(ok, why) {
    if (finished) return;
    finished = true; clearTimeout(hardTimer);
    if (ok) connectLat.push(now() - t0);
    else { connectFailed++; connectErrors.set(why, (connectErrors.get(why) || 0) + 1); }
    cb(ok);
  }
  sock.on('connect', () => {
    sock.write(`GET ${opt.path.replace(/\/$/, '')}/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${u.host}\r\n` +
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
      'Sec-WebSocket-Version: 13\r\n\r\n');
  });
  function onText(buf) {
    const what = rawMessage(i, buf);
    if (what === null) return;
    if (what === 'ping') { sock.write(PONG3); return; }
    if (what === 'connected' && !finished) {
      sock.write(maskedFrame(1, `42["subscribe",${JSON.stringify(subPayload(i))}]`));
      clientOk[i] = 1;
      finish(true);
    }
  }
  sock.on('data', (chunk) => {
    let buf = rest === null ? chunk : Buffer.concat([rest, chunk]);
    rest = null;
    let p = 0;
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) { rest = buf; return; }
      if (buf.latin1Slice(0, 12) !== 'HTTP/1.1 101') { finish(false, `handshake ${buf.latin1Slice(0, 40)}`); sock.destroy(); return; }
      upgraded = true; p = end + 4;
      sock.write(maskedFrame(1, '40'));
    }
    const n = buf.length;
    while (p + 2 <= n) {
      const b0 = buf[p]; let len = buf[p + 1] & 0x7f; let h = 2;
      if (len === 126) { if (p + 4 > n) break; len = buf.readUInt16BE(p + 2); h = 4; }
      else if (len === 127) { if (p + 10 > n) break; len = Number(buf.readBigUInt64BE(p + 2)); h = 10; }
      if (p + h + len > n) break;
      const op = b0 & 0x0f; const start = p + h; p = start + len;
      if (op === 1) onText(buf.subarray(start, p));
      else if (op === 9) { const pl = buf.subarray(start, p); const f = Buffer.alloc(6 + pl.length); f[0] = 0x8a; f[1] = 0x80 | pl.length; pl.copy(f, 6); sock.write(f); }
      else if (op === 8) { sock.destroy(); return; }
    }
    if (p < n) rest = buf.subarray(p);
  });
  sock.on('error', (e) => finish(false, `error: ${e && e.message}`));
  sock.on('close', () => {
    if (!closing && clientOk[i]) { unexpectedDisconnects++; clientOk[i] = 0; if (unexpectedDisconnects <= 5) log(`client ${i} closed`); }
    finish(false, 'closed');
  });
}

function openClient(i, cb) {
  if (opt.client === 'raw') { openRawClient(i, cb); return; }
  if (opt.client === 'tcp') { openTcpClient(i, cb); return; }
  const t0 = now();
  if (opt.mode === 'targeted') clientSerial[i] = i % SERIALS.length;
  const s = io(opt.urls ? opt.urls[i % opt.urls.length] : opt.url, {
    path: opt.path,
    transports: ['websocket'],
    forceNew: true, // one engine.io connection per client (no multiplexing)
    reconnection: false,
    timeout: opt.connectTimeoutMs,
  });
  sockets[i] = s;
  let finished = false;
  let readyTimer = null;
  const hardTimer = setTimeout(() => finish(false, 'timeout'), opt.connectTimeoutMs + 5000);
  function finish(ok, why) {
    if (finished) return;
    finished = true;
    clearTimeout(hardTimer);
    if (readyTimer) clearTimeout(readyTimer);
    if (ok) connectLat.push(now() - t0);
    else { connectFailed++; connectErrors.set(why, (connectErrors.get(why) || 0) + 1); }
    cb(ok);
  }
  function subscribe() {
    if (finished) return;
    s.emit('subscribe', subPayload(i));
    clientOk[i] = 1;
    finish(true);
  }
  if (opt.readyEvent === 'connect') s.once('connect', subscribe);
  else {
    s.once(opt.readyEvent, subscribe);
    s.once('connect', () => {
      readyTimer = setTimeout(() => { missingReadyEvent++; subscribe(); }, 5000);
    });
  }
  s.once('connect_error', (e) => finish(false, `connect_error: ${e && e.message}`));
  s.on('disconnect', (reason) => {
    if (!closing) { unexpectedDisconnects++; clientOk[i] = 0; if (unexpectedDisconnects <= 5) log(`client ${i} disconnected: ${reason}`); }
  });
  s.on('drone:event', (p) => onEvent(i, p));
}

function connectRange(from, to) {
  return new Promise((resolve) => {
    const total = to - from;
    if (total <= 0) { resolve(); return; }
    let next = from; let inflight = 0; let done = 0;
    const launch = () => {
      while (inflight < opt.connectConcurrency && next < to) {
        const i = next++;
        inflight++;
        openClient(i, () => {
          inflight--; done++;
          if (done % 1000 === 0) log(`connected ${done}/${total}`);
          if (done === total) resolve(); else launch();
        });
      }
    };
    launch();
  });
}

function okCount(from, to) { let n = 0; for (let i = from; i < to; i++) n += clientOk[i]; return n; }

// ---------------------------------------------------------------- redis publisher
let pub;
const serialSeq = new Float64Array(SERIALS.length);
const publishedPerSerial = new Float64Array(SERIALS.length);
let gseq = 0;
let publishErrors = 0;
const pad = opt.padBytes > 0 ? 'x'.repeat(opt.padBytes) : undefined;

// The product's publish path: publish.lua with RedisBroker.publish's keys and args, for a
// `drone.updated` event (channel drone:{serial}:updated, Socket.IO event `drone:event`) whose
// data is the harness body and whose snapshot is that body too.
let luaSha = null;
// On a cluster (shared/channels.py): a slot's tag is the smallest decimal string hashing to it.
const clusterKeySlot = opt.publish === 'lua-cluster' ? require('cluster-key-slot') : null;
let slotTags = null;
function slotTag(slot) {
  if (!slotTags) {
    slotTags = new Array(16384); let missing = 16384;
    for (let n = 0; missing; n++) { const s = clusterKeySlot(String(n)); if (slotTags[s] === undefined) { slotTags[s] = String(n); missing--; } }
  }
  return slotTags[slot];
}
function isoNow() { return new Date().toISOString(); }
function randomUid() { return require('crypto').randomBytes(16).toString('hex'); }
function sendEvent(serial, body) {
  if (opt.publish === 'raw') return pub.publish(`drone:${serial}:telemetry`, JSON.stringify(body));
  const data = JSON.stringify(body);
  // PendingEvent.body_without_id(): the envelope's JSON after its "id" member
  const envelopeTail = `"event":"drone.updated","serial":${JSON.stringify(serial)},"timestamp":"${isoNow()}","data":${data}}`;
  if (opt.publish === 'lua-cluster') {
    const tag = slotTag(clusterKeySlot(serial));
    const log = `dronecast:log:{${tag}}`;
    return pub.sendCommand(log, false, ['EVALSHA', luaSha, '4',
      log, `dronecast:published:{${tag}}:${randomUid()}`, `dronecast:snapshot:{${serial}}`, `dronecast:epoch:{${tag}}`,
      `drone:${serial}:updated`, serial, envelopeTail, String(opt.maxEvents), String(opt.retentionMs), 'set', data,
      'SPUBLISH', `drone:{${serial}}:updated`, `dronecast:fleet:{${tag}}`]);
  }
  return pub.sendCommand(['EVALSHA', luaSha, '4',
    'dronecast:events', `dronecast:published:${randomUid()}`, `dronecast:snapshot:${serial}`, 'dronecast:epoch',
    `drone:${serial}:updated`, serial, envelopeTail, String(opt.maxEvents), String(opt.retentionMs), 'set', data]);
}

function publishEvent() {
  const k = gseq % SERIALS.length;
  const body = {
    bseq: gseq, bsseq: serialSeq[k], bts: now(),
    serial: SERIALS[k], kind: 'telemetry',
    lat: 47.3769 + (gseq % 100) * 1e-5, lon: 8.5417, alt: 120.5, battery: 87, speed: 12.3,
  };
  if (pad) body.pad = pad;
  sendEvent(SERIALS[k], body).catch(() => { publishErrors++; });
  serialSeq[k]++; publishedPerSerial[k]++; gseq++;
}

// Publish probes (bseq=-1) until every ok client in [from,to) has seen this round.
async function probe(from, to) {
  probeRound++;
  probeLat = [];
  const targets = okCount(from, to);
  const serialIdx = opt.mode === 'all' ? [0] : [...new Set(Array.from({ length: to - from }, (_, j) => clientSerial[from + j]))].filter((x) => x >= 0);
  const t0 = now();
  let iter = 0; let seen = 0;
  while (true) {
    for (const k of serialIdx) {
      sendEvent(SERIALS[k], { bseq: -1, bprobe: probeRound, biter: iter, bts: now(), serial: SERIALS[k], kind: 'probe' }).catch(() => { publishErrors++; });
    }
    iter++;
    const tEnd = now() + 250;
    while (now() < tEnd) {
      await sleep(10);
      seen = 0;
      for (let i = from; i < to; i++) if (clientOk[i] && probeSeen[i] === probeRound) seen++;
      if (seen >= targets) break;
    }
    if (seen >= targets || now() - t0 > opt.probeTimeoutMs) break;
  }
  await sleep(300); // let straggling probe copies drain before anything else
  probeLat.sort((a, b) => a - b);
  return { targets, seen, iterations: iter, probeMs: now() - t0, firstProbeMaxMs: probeLat.length ? probeLat[probeLat.length - 1] : null, firstProbeP50Ms: probeLat.length ? probeLat[Math.floor((probeLat.length - 1) * 0.5)] : null };
}

async function waitNumpat() {
  if (opt.publish === 'lua-cluster') return 1; // sharded channels: no patterns on a cluster
  const t0 = Date.now();
  while (Date.now() - t0 < 15000) {
    const n = Number(await pub.sendCommand(['PUBSUB', 'NUMPAT']));
    if (n >= 1) return n;
    await sleep(100);
  }
  return 0;
}

function pct(sorted, n, q) { return n ? sorted[Math.min(n - 1, Math.floor(q * (n - 1)))] : null; }

// ---------------------------------------------------------------- tests
// ---------------------------------------------------------------- C receiver (--client c)
class CReceiver {
  constructor(extra = []) {
    const { spawn } = require('child_process');
    const u = (opt.urls || [opt.url]).map((x) => new URL(x).port).join(',');
    this.p = spawn(opt.creceiver, [u, opt.path.replace(/\/$/, ''), String(opt.clients), opt.mode, String(SERIALS.length), ...extra],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = []; this.waiters = []; let buf = '';
    this.p.stdin.on('error', () => {});
    this.p.stdout.on('data', (d) => {
      buf += d.toString();
      let k;
      while ((k = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, k); buf = buf.slice(k + 1);
        const w = this.waiters.shift();
        if (w) w(line); else this.lines.push(line);
      }
    });
  }
  next() { return this.lines.length ? Promise.resolve(this.lines.shift()) : new Promise((r) => this.waiters.push(r)); }
  send(cmd) { this.p.stdin.write(cmd + '\n'); }
  async ask(cmd) { this.send(cmd); return this.next(); }
}

async function startC(extra = []) {
  const cr = new CReceiver(extra);
  const tc0 = now();
  const ready = (await cr.next()).split(' ');
  // clock offset between the two processes: the round trip with the smallest delay wins
  let best = Infinity; let offset = 0;
  for (let k = 0; k < 50; k++) {
    const t1 = now(); const tc = Number((await cr.ask('T')).split(' ')[1]); const t2 = now();
    if (t2 - t1 < best) { best = t2 - t1; offset = tc - (t1 + t2) / 2; }
  }
  cr.send(`O ${offset}`);
  log(`C receiver clock offset ${offset.toFixed(3)} ms (round trip ${best.toFixed(3)} ms)`);
  const connectS = (now() - tc0) / 1000;
  const nOk = Number(ready[1]); connectFailed = Number(ready[2]);
  log(`C receiver: ${nOk}/${opt.clients} subscribed in ${connectS.toFixed(2)} s`);
  // probe until every client saw one (the subscribe emits are in flight when READY comes)
  probeRound++;
  const serialIdx = opt.mode === 'all' ? [0] : SERIALS.map((_, k) => k);
  let seen = 0; let iter = 0; const tp0 = now();
  while (seen < nOk && now() - tp0 < opt.probeTimeoutMs) {
    for (const k of serialIdx) {
      sendEvent(SERIALS[k], { bseq: -1, bprobe: probeRound, biter: iter, bts: now(), serial: SERIALS[k], kind: 'probe' }).catch(() => { publishErrors++; });
    }
    iter++;
    const tEnd = now() + 250;
    while (now() < tEnd) { await sleep(10); seen = Number((await cr.ask(`Q ${probeRound}`)).split(' ')[2]); if (seen >= nOk) break; }
  }
  log(`probe: ${seen}/${nOk} confirmed after ${iter} round(s)`);
  await sleep(300);
  return { cr, nOk, seen, connectS };
}

// Publish at --rate from now until `until()` says stop (checked every tick); returns the count.
function publishUntil(until) {
  const tPub0 = performance.now(); const start = gseq;
  return new Promise((resolve) => {
    const tick = () => {
      const el = performance.now() - tPub0;
      let due = Math.floor((el / 1000) * opt.rate) + 1 - (gseq - start);
      while (due-- > 0) publishEvent();
      if (until()) { resolve(gseq - start); return; }
      setTimeout(tick, Math.max(0, ((gseq - start) / opt.rate) * 1000 - (performance.now() - tPub0) - 0.5));
    };
    tick();
  });
}

async function stormC() {
  const spec = `${opt.observers},${opt.reconnectMinMs},${opt.reconnectJitterMs}${opt.tokens ? ',' + opt.tokens : ''}`;
  const { cr, nOk, seen, connectS } = await startC([spec]);
  const [killed, survivor] = opt.serverPids;
  const sampler = new Sampler([survivor]).start();
  const rsampler = new Sampler(opt.redisPid).start();
  const crs = new Sampler(cr.p.pid).start();
  cr.send('M 1');
  const tPub0abs = now();
  let phase = 'warmup'; let tKill = 0; let stormSampler = null; let stormSrv = null; let resumedAt = 0;
  let lastPoll = 0; let status = [0, 0, 0];
  await publishUntil(() => {
    const t = now();
    if (phase === 'warmup' && t - tPub0abs >= opt.warmup * 1000) {
      cr.send('K'); process.kill(killed, 'SIGKILL'); tKill = t; phase = 'storm';
      stormSampler = new Sampler([survivor]).start();
      log(`storm: SIGKILL gateway ${killed}; ${opt.clients - opt.observers} clients reconnect to ${survivor}`);
    }
    if (phase === 'storm' && t - lastPoll > 100) {
      lastPoll = t;
      cr.ask('P').then((line) => { status = line.split(' ').slice(1).map(Number); });
      if (status[0] >= status[1] && status[1] > 0) {
        phase = 'after'; resumedAt = t; stormSrv = stormSampler.stop();
        log(`storm: all ${status[1]} resumed ${(t - tKill).toFixed(0)} ms after the kill`);
      } else if (t - tKill > opt.stormTimeoutS * 1000) {
        phase = 'after'; resumedAt = t; stormSrv = stormSampler.stop();
        log(`storm: only ${status[0]}/${status[1]} resumed after ${opt.stormTimeoutS} s`);
      }
    }
    return phase === 'after' && t - resumedAt >= opt.after * 1000;
  });
  const tPubEnd = now();
  while (true) {
    await sleep(50);
    const [, , ago] = (await cr.ask('D')).split(' ').map(Number);
    if (now() - tPubEnd > opt.drainMaxMs) break;
    if (now() - tPubEnd > opt.drainIdleMs && (ago < 0 || ago > opt.drainIdleMs)) break;
  }
  cr.send('M 0');
  const srv = sampler.stop(); const rds = rsampler.stop(); const crCpu = crs.stop();
  const rep = JSON.parse(await cr.ask(`R ${gseq} ${Array.from(publishedPerSerial).join(',')}`));
  cr.send('X');
  const res = {
    impl: opt.impl, test: 'storm', clients: opt.clients, storm_clients: rep.c_storm_clients,
    observers: rep.c_observers, connected: rep.c_connected, mode: opt.mode, serials: SERIALS.length,
    rate: opt.rate, published: gseq, connect_s: r1(connectS), probe_confirmed: seen, subscribed: nOk,
    resumed: rep.c_resumed, never_resumed: rep.c_never_resumed,
    all_resumed_s: rep.c_all_resumed_ms >= 0 ? r1(rep.c_all_resumed_ms / 1000) : null,
    resume_p50_s: r1(rep.c_resume_p50_ms / 1000), resume_p99_s: r1(rep.c_resume_p99_ms / 1000),
    recovered_false: rep.c_recovered_false, ack_not_ok: rep.c_ack_not_ok,
    reconnect_attempts: rep.c_reconnect_attempts, replayed: rep.c_replayed,
    expected: rep.c_expected, delivered: rep.c_delivered, lost: rep.c_lost,
    clients_with_loss: rep.c_clients_with_loss, seq_gaps: rep.c_seq_gaps, duplicated: rep.c_dup_or_ooo,
    survivor_p50_ms_during_storm: r1(rep.c_obs_storm_p50), survivor_p99_ms_during_storm: r1(rep.c_obs_storm_p99),
    survivor_max_ms_during_storm: r1(rep.c_obs_storm_max), survivor_samples_during_storm: rep.c_obs_storm_n,
    p50_ms: r1(rep.c_p50), p99_ms: r1(rep.c_p99), max_ms: r1(rep.c_max),
    survivor_cpu_pct_during_storm: stormSrv ? r1(stormSrv.cpuPct) : null,
    server_cpu_pct: srv ? r1(srv.cpuPct) : null, server_rss_mb: srv ? r1(srv.peakRssMb) : null,
    loadgen_cpu_pct: r1(crCpu ? crCpu.cpuPct : null), redis_cpu_pct: rds ? r1(rds.cpuPct) : null,
    reconnect_min_ms: opt.reconnectMinMs, reconnect_jitter_ms: opt.reconnectJitterMs,
    auth: Boolean(opt.tokens), publish: opt.publish, client: opt.client, publish_errors: publishErrors,
    unexpected_disconnects: rep.c_unexpected, bad_payload: rep.c_bad,
  };
  process.stdout.write(JSON.stringify(res) + '\n');
}

async function fanoutC() {
  const { cr, nOk, seen, connectS } = await startC();
  if (opt.stalled) cr.send(`Z ${opt.stalled}`);
  const total = Math.round(opt.rate * opt.duration);
  const sampler = new Sampler(opt.serverPids).start();
  const rsampler = new Sampler(opt.redisPid).start();
  const self = new SelfCpu().start();
  const crs = new Sampler(cr.p.pid).start();
  cr.send('M 1');
  const tPub0 = performance.now(); const tPub0abs = now();
  await new Promise((resolve) => {
    const tick = () => {
      const el = performance.now() - tPub0;
      let due = Math.min(total, Math.floor((el / 1000) * opt.rate) + 1) - gseq;
      while (due-- > 0) publishEvent();
      if (gseq >= total) { resolve(); return; }
      const nextAt = (gseq / opt.rate) * 1000;
      setTimeout(tick, Math.max(0, nextAt - (performance.now() - tPub0) - 0.5));
    };
    tick();
  });
  const tPubEnd = now();
  const publishWallS = (tPubEnd - tPub0abs) / 1000 + 1 / opt.rate;
  const expected = opt.mode === 'all' ? gseq * (nOk - opt.stalled) : null;
  let drainCapped = false;
  while (true) {
    await sleep(50);
    const [, d, ago] = (await cr.ask('D')).split(' ').map(Number);
    if (expected !== null && d >= expected) break;
    if (now() - tPubEnd > opt.drainMaxMs) { drainCapped = true; break; }
    if (now() - tPubEnd > opt.drainIdleMs && (ago < 0 || ago > opt.drainIdleMs)) break;
  }
  const tEnd = now();
  cr.send('M 0');
  const srv = sampler.stop(); const rds = rsampler.stop(); const lgCpu = self.stop(); const crCpu = crs.stop();
  const rep = JSON.parse(await cr.ask(`R ${gseq} ${Array.from(publishedPerSerial).join(',')}`));
  cr.send('X');
  const spanS = rep.c_last_recv > 0 ? Math.max(opt.duration, (rep.c_last_recv - tPub0abs) / 1000) : null;
  const ratio = rep.c_expected ? rep.c_delivered / rep.c_expected : null;
  const res = {
    impl: opt.impl, test: 'fanout', clients: opt.clients, connected: rep.c_connected, mode: opt.mode,
    serials: SERIALS.length, rate: opt.rate, duration: opt.duration,
    published: gseq, publish_wall_s: r1(publishWallS), publish_actual_rate: r1(gseq / publishWallS),
    expected: rep.c_expected, delivered: rep.c_delivered, lost: rep.c_lost, delivered_ratio: r1(ratio),
    clients_with_loss: rep.c_clients_with_loss, seq_gaps: rep.c_seq_gaps, dup_or_ooo: rep.c_dup_or_ooo,
    offered_deliveries_per_s: r1(rep.c_expected / opt.duration),
    deliveries_per_s: spanS ? r1(rep.c_delivered / spanS) : 0,
    p50_ms: r1(rep.c_p50), p90_ms: r1(rep.c_p90), p99_ms: r1(rep.c_p99), p999_ms: r1(rep.c_p999),
    max_ms: r1(rep.c_max), mean_ms: r1(rep.c_mean),
    server_rss_mb: srv ? r1(srv.peakRssMb) : null, server_rss_start_mb: srv ? r1(srv.startRssMb) : null,
    server_cpu_pct: srv ? r1(srv.cpuPct) : null, server_procs: srv ? srv.procs : null,
    // the receiving clients run in the C process: its CPU is the loadgen's bottleneck
    loadgen_cpu_pct: r1(crCpu ? crCpu.cpuPct : null), loadgen_publisher_cpu_pct: r1(lgCpu),
    loadgen_bound: (crCpu && crCpu.cpuPct >= 90) || (lgCpu !== null && lgCpu >= 90),
    loadgen_rss_mb: r1(process.memoryUsage().rss / 1048576),
    redis_cpu_pct: rds ? r1(rds.cpuPct) : null,
    connect_s: r1(connectS), connect_failed: connectFailed, probe_confirmed: seen,
    drain_s: r1((tEnd - tPubEnd) / 1000), drain_capped: drainCapped,
    unexpected_disconnects: rep.c_unexpected, bad_payload: rep.c_bad, stray: rep.c_stray,
    publish_errors: publishErrors, publish: opt.publish, client: opt.client,
    stalled_clients: rep.c_stalled, global_order_inversions: rep.c_global_ooo,
    saturated: ratio === null || ratio < 0.99 || rep.c_p99 > 1000 || connectFailed > 0,
  };
  process.stdout.write(JSON.stringify(res) + '\n');
}

async function fanout() {
  if (opt.client === 'c') { await fanoutC(); return; }
  const tc0 = now();
  await connectRange(0, opt.clients);
  const connectS = (now() - tc0) / 1000;
  const nOk = okCount(0, opt.clients);
  log(`connected+subscribed ${nOk}/${opt.clients} in ${connectS.toFixed(2)} s (failed ${connectFailed})`);
  const pr = await probe(0, opt.clients);
  log(`probe: ${pr.seen}/${pr.targets} clients confirmed subscribed after ${pr.iterations} round(s)`);

  const total = Math.round(opt.rate * opt.duration);
  const sampler = new Sampler(opt.serverPids).start();
  const rsampler = new Sampler(opt.redisPid).start();
  const self = new SelfCpu().start();
  measuring = true;
  const tPub0 = performance.now();
  const tPub0abs = now();
  // Event i is due at tPub0 + i/rate; a late timer publishes the backlog at once
  // (catch-up), so the average rate holds even if the event loop is busy.
  await new Promise((resolve) => {
    const tick = () => {
      const el = performance.now() - tPub0;
      let due = Math.min(total, Math.floor((el / 1000) * opt.rate) + 1) - gseq;
      while (due-- > 0) publishEvent();
      if (gseq >= total) { resolve(); return; }
      const nextAt = (gseq / opt.rate) * 1000; // ms after tPub0
      setTimeout(tick, Math.max(0, nextAt - (performance.now() - tPub0) - 0.5));
    };
    tick();
  });
  const tPubEnd = now();
  const publishWallS = (tPubEnd - tPub0abs) / 1000 + 1 / opt.rate; // n events span (n-1) intervals

  // expected deliveries per client
  let expected = 0;
  const expectedFor = (i) => (opt.mode === 'all' ? gseq : publishedPerSerial[clientSerial[i]]);
  for (let i = 0; i < opt.clients; i++) if (clientOk[i]) expected += expectedFor(i);

  // drain
  let drainCapped = false;
  while (true) {
    await sleep(50);
    const t = now();
    if (delivered >= expected) break;
    if (t - tPubEnd > opt.drainMaxMs) { drainCapped = true; break; }
    if (t - Math.max(lastRecvT, tPubEnd) > opt.drainIdleMs) break;
  }
  const tEnd = now();
  measuring = false;
  const srv = sampler.stop();
  const rds = rsampler.stop();
  const lgCpu = self.stop();

  let lost = 0; let gaps = 0; let dups = 0; let clientsWithLoss = 0;
  for (let i = 0; i < opt.clients; i++) {
    if (!clientOk[i] && recvCount[i] === 0) continue;
    const miss = Math.max(0, expectedFor(i) - recvCount[i]);
    lost += miss; if (miss > 0) clientsWithLoss++;
    gaps += gapCount[i]; dups += dupOoo[i];
  }
  const sorted = lat.subarray(0, latN).sort();
  let sum = 0; for (let i = 0; i < latN; i++) sum += sorted[i];
  // throughput over max(nominal duration, first publish -> last delivery)
  const spanS = lastRecvT > 0 ? Math.max(opt.duration, (lastRecvT - tPub0abs) / 1000) : null;
  const deliveredRatio = expected ? delivered / expected : null;
  const p99 = pct(sorted, latN, 0.99);
  const res = {
    impl: opt.impl, test: 'fanout', clients: opt.clients, connected: nOk, mode: opt.mode,
    serials: SERIALS.length, rate: opt.rate, duration: opt.duration,
    published: gseq, publish_wall_s: r1(publishWallS), publish_actual_rate: r1(gseq / publishWallS),
    expected, delivered, lost, delivered_ratio: r1(deliveredRatio), clients_with_loss: clientsWithLoss,
    seq_gaps: gaps, dup_or_ooo: dups,
    offered_deliveries_per_s: r1(expected / opt.duration),
    deliveries_per_s: spanS ? r1(delivered / spanS) : 0,
    p50_ms: r1(pct(sorted, latN, 0.5)), p90_ms: r1(pct(sorted, latN, 0.9)), p99_ms: r1(p99),
    p999_ms: r1(pct(sorted, latN, 0.999)), max_ms: r1(latN ? sorted[latN - 1] : null), mean_ms: r1(latN ? sum / latN : null),
    server_rss_mb: srv ? r1(srv.peakRssMb) : null, server_rss_start_mb: srv ? r1(srv.startRssMb) : null,
    server_cpu_pct: srv ? r1(srv.cpuPct) : null, server_procs: srv ? srv.procs : null,
    loadgen_cpu_pct: r1(lgCpu), loadgen_bound: lgCpu !== null && lgCpu >= 90, loadgen_rss_mb: r1(process.memoryUsage().rss / 1048576),
    redis_cpu_pct: rds ? r1(rds.cpuPct) : null,
    connect_s: r1(connectS), connect_failed: connectFailed, probe_confirmed: pr.seen,
    drain_s: r1((tEnd - tPubEnd) / 1000), drain_capped: drainCapped,
    unexpected_disconnects: unexpectedDisconnects, bad_payload: badPayload, stray: strayMeasured,
    publish_errors: publishErrors, publish: opt.publish, client: opt.client,
    saturated: deliveredRatio === null || deliveredRatio < 0.99 || (p99 !== null && p99 > 1000) || connectFailed > 0,
  };
  process.stdout.write(JSON.stringify(res) + '\n');
}

async function capacity() {
  const steps = [...opt.steps].sort((a, b) => a - b);
  await sleep(500);
  const base = sampleTree(opt.serverPids);
  log(`server baseline RSS ${(base.rssKb / 1024).toFixed(1)} MB`);
  let have = 0;
  for (const target of steps) {
    connectLat = [];
    const failed0 = connectFailed;
    const sampler = new Sampler(opt.serverPids).start();
    const self = new SelfCpu().start();
    const t0 = now();
    await connectRange(have, target);
    const connectS = (now() - t0) / 1000;
    const srvConn = sampler.stop();
    const lgCpu = self.stop();
    const pr = await probe(0, target);
    await sleep(opt.settleMs);
    const s = sampleTree(opt.serverPids);
    const nOk = okCount(0, target);
    connectLat.sort((a, b) => a - b);
    const stepN = target - have;
    const res = {
      impl: opt.impl, test: 'capacity', mode: opt.mode, serials: SERIALS.length, clients: target,
      connected: nOk, connect_failed: connectFailed, step_new_clients: stepN, step_connect_failed: connectFailed - failed0,
      step_connect_s: r1(connectS), step_connect_rate_per_s: r1(stepN / connectS),
      connect_p50_ms: r1(pct(connectLat, connectLat.length, 0.5)), connect_p99_ms: r1(pct(connectLat, connectLat.length, 0.99)),
      server_cpu_pct_during_connect: srvConn ? r1(srvConn.cpuPct) : null, loadgen_cpu_pct_during_connect: r1(lgCpu),
      server_rss_base_mb: r1(base.rssKb / 1024), server_rss_mb: r1(s.rssKb / 1024),
      rss_per_conn_kb: nOk ? r1((s.rssKb - base.rssKb) / nOk) : null,
      client: opt.client,
      probe_confirmed: pr.seen, probe_rounds: pr.iterations,
      broadcast_one_p50_ms: r1(pr.firstProbeP50Ms), broadcast_one_max_ms: r1(pr.firstProbeMaxMs),
      unexpected_disconnects: unexpectedDisconnects,
      loadgen_rss_mb: r1(process.memoryUsage().rss / 1048576),
      errors: Object.fromEntries(connectErrors),
    };
    log(`step ${target}: ok ${nOk}, connect ${connectS.toFixed(2)} s, server RSS ${(s.rssKb / 1024).toFixed(1)} MB`);
    process.stdout.write(JSON.stringify(res) + '\n');
    have = target;
  }
}

// ---------------------------------------------------------------- REST PATCH -> Socket.IO
// Drones SN00000.. are registered through the api, clients subscribe (all or targeted), then
// PATCH /api/v1/drones/sn/{serial} {deviceName: "b<seq>"} goes out at --rate for --duration.
// Each PATCH yields one `drone.updated` event whose data.changes.deviceName.new names it.
const http = require('http');
const patchSentAt = [];
const patchSerial = [];
let patchLat = [];
// Order: every client must see event ids (Redis stream ids, "<ms>-<seq>") strictly increasing.
// (PATCHes to one drone that overlap in flight may be applied in either order: the order
// that counts is the stream's.) Duplicates: the same PATCH twice at one client.
const patchLastId = []; // per client: [ms, seq] of the last event id
const patchSeen = []; // per client: Set of PATCH seqs seen
let patchDelivered = 0; let patchDup = 0; let patchStray = 0;
const patchRecv = new Uint32Array(MAXC);
let httpLat = []; let httpErrors = 0; const httpStatus = new Map();

function onPatchEvent(i, p, t) {
  const ch = p && p.data && p.data.changes && p.data.changes.deviceName;
  if (!ch || typeof ch.new !== 'string' || ch.new[0] !== 'b') { patchStray++; return; }
  const seq = Number(ch.new.slice(1));
  const t0 = patchSentAt[seq];
  if (t0 === undefined || !measuring) { patchStray++; return; }
  const [ms, sq] = String(p.id || '0-0').split('-').map(Number);
  const last = patchLastId[i];
  if (last && (ms < last[0] || (ms === last[0] && sq <= last[1]))) patchDup++;
  else patchLastId[i] = [ms, sq];
  const seen = patchSeen[i] || (patchSeen[i] = new Set());
  if (seen.has(seq)) patchDup++; else seen.add(seq);
  patchRecv[i]++; patchDelivered++; lastRecvT = t;
  patchLat.push(t - t0);
}

function apiRequest(agent, method, path, body) {
  return new Promise((resolve) => {
    const u = new URL(opt.apiUrl + path);
    const data = body ? Buffer.from(JSON.stringify(body)) : null;
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method, agent,
      headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} }, (res) => {
      res.resume(); res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', (e) => resolve(`error ${e.code || e.message}`));
    if (data) req.write(data);
    req.end();
  });
}

async function patchTest() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opt.patchConcurrency });
  for (const serial of SERIALS) {
    const st = await apiRequest(agent, 'POST', '/api/v1/drones/register',
      { deviceSerialNumber: serial, deviceName: 'bench', deviceCategory: 'Surveillance', streamIsOn: false });
    if (st !== 201 && st !== 409) throw new Error(`register ${serial}: ${st}`);
  }
  const tc0 = now();
  await connectRange(0, opt.clients);
  const connectS = (now() - tc0) / 1000;
  const nOk = okCount(0, opt.clients);
  const pr = await probe(0, opt.clients);
  log(`patch: ${nOk} clients, probe ${pr.seen}/${pr.targets}`);
  const total = Math.round(opt.rate * opt.duration);
  const sampler = new Sampler(opt.serverPids).start();
  const asampler = new Sampler(opt.apiPid).start();
  const self = new SelfCpu().start();
  measuring = true;
  const tPub0 = performance.now();
  const tPub0abs = now();
  let sent = 0; let inflight = 0; const done = [];
  await new Promise((resolve) => {
    const tick = () => {
      const el = performance.now() - tPub0;
      let due = Math.min(total, Math.floor((el / 1000) * opt.rate) + 1) - sent;
      while (due-- > 0) {
        const seq = sent++;
        const k = seq % SERIALS.length;
        patchSerial[seq] = k;
        const t0 = now();
        patchSentAt[seq] = t0;
        inflight++;
        done.push(apiRequest(agent, 'PATCH', `/api/v1/drones/sn/${SERIALS[k]}`, { deviceName: `b${seq}` }).then((st) => {
          inflight--;
          httpLat.push(now() - t0);
          if (st !== 200) { httpErrors++; httpStatus.set(String(st), (httpStatus.get(String(st)) || 0) + 1); }
        }));
      }
      if (sent >= total) { resolve(); return; }
      const nextAt = (sent / opt.rate) * 1000;
      setTimeout(tick, Math.max(0, nextAt - (performance.now() - tPub0) - 0.5));
    };
    tick();
  });
  await Promise.all(done);
  const tPubEnd = now();
  let expected = 0;
  const perSerial = new Float64Array(SERIALS.length);
  for (let q = 0; q < sent; q++) perSerial[patchSerial[q]]++;
  for (let i = 0; i < opt.clients; i++) {
    if (!clientOk[i]) continue;
    expected += opt.mode === 'all' ? sent : perSerial[clientSerial[i]];
  }
  while (true) {
    await sleep(50);
    const t = now();
    if (patchDelivered >= expected) break;
    if (t - tPubEnd > opt.drainMaxMs) break;
    if (t - Math.max(lastRecvT, tPubEnd) > opt.drainIdleMs) break;
  }
  measuring = false;
  const srv = sampler.stop(); const api = asampler.stop(); const lgCpu = self.stop();
  const sorted = Float64Array.from(patchLat).sort();
  const hs = Float64Array.from(httpLat).sort();
  const res = {
    impl: opt.impl, test: 'patch', clients: opt.clients, connected: nOk, mode: opt.mode, serials: SERIALS.length,
    rate: opt.rate, duration: opt.duration, patches: sent, patch_errors: httpErrors, patch_status: Object.fromEntries(httpStatus),
    patch_actual_rate: r1(sent / ((tPubEnd - tPub0abs) / 1000)),
    expected, delivered: patchDelivered, lost: Math.max(0, expected - patchDelivered), dup_or_ooo: patchDup, stray: patchStray,
    deliveries_per_s: r1(patchDelivered / Math.max(opt.duration, (lastRecvT - tPub0abs) / 1000)),
    p50_ms: r1(pct(sorted, sorted.length, 0.5)), p90_ms: r1(pct(sorted, sorted.length, 0.9)),
    p99_ms: r1(pct(sorted, sorted.length, 0.99)), max_ms: r1(sorted.length ? sorted[sorted.length - 1] : null),
    http_p50_ms: r1(pct(hs, hs.length, 0.5)), http_p99_ms: r1(pct(hs, hs.length, 0.99)),
    server_rss_mb: srv ? r1(srv.peakRssMb) : null, server_cpu_pct: srv ? r1(srv.cpuPct) : null,
    api_rss_mb: api ? r1(api.peakRssMb) : null, api_cpu_pct: api ? r1(api.cpuPct) : null,
    loadgen_cpu_pct: r1(lgCpu), loadgen_bound: lgCpu !== null && lgCpu >= 90,
    connect_s: r1(connectS), connect_failed: connectFailed, probe_confirmed: pr.seen,
    unexpected_disconnects: unexpectedDisconnects, publish: opt.publish, client: opt.client,
  };
  process.stdout.write(JSON.stringify(res) + '\n');
}

async function main() {
  if (opt.publish === 'lua-cluster') {
    const { createCluster } = require('redis');
    pub = createCluster({ rootNodes: [{ url: opt.redisUrl }], useReplicas: false });
  } else {
    pub = createClient({ url: opt.redisUrl });
  }
  pub.on('error', (e) => log('redis error', e.message));
  await pub.connect();
  if (opt.publish === 'lua' || opt.publish === 'lua-cluster') {
    if (!opt.luaScript) throw new Error('--publish lua needs --lua-script');
    const lua = fs.readFileSync(opt.luaScript, 'utf8');
    const clients = opt.publish === 'lua' ? [pub] : await Promise.all(pub.masters.map((m) => pub.nodeClient(m)));
    for (const c of clients) luaSha = await c.sendCommand(['SCRIPT', 'LOAD', lua]);
  }
  if (opt.test === 'patch') { await patchTest(); closing = true; for (const s of sockets) if (s) s.disconnect(); await pub.quit().catch(() => {}); setTimeout(() => process.exit(0), 200); return; }
  const numpat = await waitNumpat();
  if (!numpat) log('WARNING: no pattern subscription seen on Redis (PUBSUB NUMPAT = 0)');
  if (opt.test === 'storm') {
    if (opt.client !== 'c') throw new Error('--test storm needs --client c');
    await stormC();
  } else if (opt.test === 'fanout') await fanout(); else await capacity();
  closing = true;
  for (const s of sockets) if (s) s.disconnect();
  await pub.quit().catch(() => {});
  if (connectErrors.size) log('connect errors:', JSON.stringify(Object.fromEntries(connectErrors)));
  setTimeout(() => process.exit(0), 200);
}

main().catch((e) => { log('fatal', e && e.stack); process.exit(1); });
