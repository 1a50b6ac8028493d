// The package against a real mediasoup worker and a stand-in for CallVault's ingest API (an HTTP server
// that records requests and answers like CallVault; the real CallVault is tested end to end in
// tests/mediasoup/ of the repository). Needs the worker: MEDIASOUP_WORKER_BIN, or the one
// scripts/build-worker.sh built into ~/.cache/callvault/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

import { CallVaultRecorder, CallVaultError } from '../src/index.js';

const cache = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache');
const workerBin = process.env.MEDIASOUP_WORKER_BIN ?? path.join(cache, 'callvault', 'mediasoup-worker-3.12.16', 'mediasoup-worker');
const haveWorker = fs.existsSync(workerBin);
process.env.MEDIASOUP_WORKER_BIN = workerBin;
const skip = haveWorker ? false : `no mediasoup worker at ${workerBin} (run scripts/build-worker.sh)`;

/** @returns {Promise<number>} a UDP port free a moment ago */
async function udpSocket(onMessage) {
  const sock = dgram.createSocket('udp4');
  sock.on('message', onMessage);
  await new Promise((resolve) => sock.bind(0, '127.0.0.1', resolve));
  return sock;
}

async function until(check, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** CallVault's ingest API as the package sees it: ports from real UDP sockets, RTP counted. */
class FakeCallVault {
  constructor() {
    this.requests = [];
    this.sockets = [];
    this.rtp = 0;
    this.registered = new Set();
    this.refuse = null;
    this.server = http.createServer((req, res) => this.#handle(req, res).catch((e) => { console.error("fake:", e); res.destroy(); }));
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
  }

  async #handle(req, res) {
    let body = '';
    for await (const chunk of req) body += chunk;
    const json = body ? JSON.parse(body) : null;
    this.requests.push({ method: req.method, url: req.url, body: json, auth: req.headers.authorization });
    const send = (status, data) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(data));
    };
    const m = req.url.match(/^\/v1\/ingest\/rooms\/([^/]+)\/participants\/([^/]+)\/streams$/);
    if (req.method === 'POST' && m) {
      if (this.refuse) return send(this.refuse, { detail: 'room is not recorded', type: 'x/not-recorded' });
      const rtp = await udpSocket((msg) => {
        if (msg.length > 1 && (msg[1] < 192 || msg[1] > 223)) this.rtp += 1;
      });
      const rtcp = await udpSocket(() => {});
      this.sockets.push(rtp, rtcp);
      this.registered.add(`${m[2]}/${json.mid}`);
      return send(201, {
        recording_id: 'rec-1', room_id: m[1], participant_id: m[2], mid: json.mid, track: `${m[2]}-${json.kind}-${json.mid}`,
        codec: 'OPUS', payload_type: 100, ssrc: json.rtp_parameters.encodings[0].ssrc,
        port: rtp.address().port, rtcp_port: rtcp.address().port, lease_seconds: 0.3,
      });
    }
    if (req.method === 'PUT' && req.url.endsWith('/lease')) {
      const missing = json.streams.filter((s) => !this.registered.has(`${s.participant_id}/${s.mid}`));
      return send(200, { room_id: 'room-1', lease_seconds: 0.3, missing });
    }
    return send(200, { room_id: 'room-1', tracks: [] });
  }

  count(method, suffix) {
    return this.requests.filter((r) => r.method === method && r.url.endsWith(suffix)).length;
  }

  close() {
    this.sockets.forEach((s) => s.close());
    this.server.close();
  }
}

let mediasoup;
let worker;
before(async () => {
  if (!haveWorker) return;
  mediasoup = createRequire(import.meta.url)('mediasoup');
  worker = await mediasoup.createWorker({ logLevel: 'error' });
});
after(() => worker?.close());

/** A Router recorded from its creation (recordRouter sees transports created after it), and a
 * PlainTransport of participant alice. */
async function room(recorder, options) {
  const router = await worker.createRouter({
    mediaCodecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }],
  });
  await recorder.recordRouter(router, options);
  const transport = await router.createPlainTransport({
    listenIp: '127.0.0.1', rtcpMux: false, comedia: true, appData: { participantId: 'alice', displayName: 'Alice' },
  });
  return { router, transport };
}

function rtpSender(port) {
  const sock = dgram.createSocket('udp4');
  let seq = 0;
  const timer = setInterval(() => {
    const pkt = Buffer.alloc(12 + 20);
    pkt[0] = 0x80; pkt[1] = 100; pkt.writeUInt16BE(seq & 0xffff, 2); pkt.writeUInt32BE(seq * 960, 4);
    pkt.writeUInt32BE(4242, 8); pkt.fill(0xfc, 12);
    seq += 1;
    sock.send(pkt, port, '127.0.0.1');
  }, 20);
  return () => { clearInterval(timer); sock.close(); };
}

test('options are checked', () => {
  assert.throws(() => new CallVaultRecorder({ url: 'callvault:8080', apiKey: 'k' }), /url must be/);
  assert.throws(() => new CallVaultRecorder({ url: 'http://callvault:8080' }), /apiKey is required/);
});

test('recordRouter records each new Producer: rtpParameters in, RTP out, pause, close', { skip }, async () => {
  const cv = new FakeCallVault();
  await cv.start();
  const recorder = new CallVaultRecorder({ url: cv.url, apiKey: 'cv_key' });
  const started = [];
  recorder.on('streamstart', (e) => started.push(e));
  const { router, transport } = await room(recorder, { roomId: 'room-1', metadata: { queue: 'claims' } });
  const producer = await transport.produce({
    kind: 'audio',
    rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 4242 }] },
  });
  const stop = rtpSender(transport.tuple.localPort);
  try {
    await until(() => started.length === 1);
    const reg = cv.requests.find((r) => r.method === 'POST');
    assert.equal(reg.url, '/v1/ingest/rooms/room-1/participants/alice/streams');
    assert.equal(reg.auth, 'Bearer cv_key');
    assert.equal(reg.body.kind, 'audio');
    assert.equal(reg.body.mid, '0');
    assert.equal(reg.body.display_name, 'Alice');
    assert.deepEqual(reg.body.metadata, { queue: 'claims' });
    assert.equal(reg.body.rtp_parameters.codecs[0].mimeType, 'audio/opus');
    assert.equal(typeof reg.body.rtp_parameters.encodings[0].ssrc, 'number');
    await until(() => cv.rtp >= 10); // the Consumer sends to the port CallVault answered
    await producer.pause();
    await until(() => cv.count('POST', '/streams/0/pause') === 1);
    await producer.resume();
    await until(() => cv.count('POST', '/streams/0/resume') === 1);
    await until(() => cv.count('PUT', '/lease') >= 2); // heartbeats
    producer.close();
    await until(() => cv.count('DELETE', '/streams/0') === 1);
    router.close();
    await until(() => cv.count('DELETE', '/rooms/room-1') === 1);
  } finally {
    stop();
    cv.close();
  }
});

test('streams CallVault lost (it restarted) are registered again on new ports', { skip }, async () => {
  const cv = new FakeCallVault();
  await cv.start();
  const recorder = new CallVaultRecorder({ url: cv.url, apiKey: 'k' });
  const started = [];
  recorder.on('streamstart', (e) => started.push(e));
  const { router, transport } = await room(recorder, { roomId: 'room-1' });
  await transport.produce({
    kind: 'audio',
    rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 4242 }] },
  });
  const stop = rtpSender(transport.tuple.localPort);
  try {
    await until(() => started.length === 1);
    cv.registered.clear(); // CallVault forgot everything
    await until(() => started.length === 2);
    assert.equal(cv.count('POST', '/participants/alice/streams'), 2);
    const before = cv.rtp;
    await until(() => cv.rtp > before + 5);
  } finally {
    stop();
    router.close();
    cv.close();
  }
});

test('a refusal from CallVault is reported and not retried', { skip }, async () => {
  const cv = new FakeCallVault();
  await cv.start();
  cv.refuse = 409;
  const recorder = new CallVaultRecorder({ url: cv.url, apiKey: 'k' });
  const errors = [];
  recorder.on('error', (e) => errors.push(e));
  const { router, transport } = await room(recorder, { roomId: 'room-1' });
  await transport.produce({
    kind: 'audio',
    rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 1 }] },
  });
  try {
    await until(() => errors.length === 1);
    assert.ok(errors[0] instanceof CallVaultError);
    assert.equal(errors[0].status, 409);
    await until(() => cv.count('PUT', '/lease') >= 3);
    assert.equal(cv.count('POST', '/streams'), 1);
  } finally {
    router.close();
    cv.close();
  }
});

test('recordProducer records one Producer of a Router not recorded as a whole', { skip }, async () => {
  const cv = new FakeCallVault();
  await cv.start();
  const recorder = new CallVaultRecorder({ url: cv.url, apiKey: 'k' });
  const started = [];
  recorder.on('streamstart', (e) => started.push(e));
  const router = await worker.createRouter({
    mediaCodecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }],
  });
  const transport = await router.createPlainTransport({ listenIp: '127.0.0.1', rtcpMux: false, comedia: true });
  const producer = await transport.produce({
    kind: 'audio',
    rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 4242 }] },
  });
  const stop = rtpSender(transport.tuple.localPort);
  try {
    await assert.rejects(
      recorder.recordProducer(producer, { router, roomId: 'room-1', participantId: '../bob' }),
      /participant id "..\/bob" must be/,
    );
    await assert.rejects(
      recorder.recordProducer(producer, { router, roomId: 'room-1', participantId: 'bob', preferredLayers: { spatialLayer: -1 } }),
      /preferredLayers {"spatialLayer":-1} must be/,
    );
    await recorder.recordProducer(producer, { router, roomId: 'room-1', participantId: 'bob', displayName: 'Bob', mid: 'mic' });
    assert.equal(started.length, 1);
    assert.equal(started[0].track, 'bob-audio-mic');
    await until(() => cv.rtp >= 5);
    await recorder.stopRoom('room-1');
    assert.equal(cv.count('DELETE', '/rooms/room-1'), 1);
  } finally {
    stop();
    router.close();
    cv.close();
  }
});
