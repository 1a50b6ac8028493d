// A minimal mediasoup server that records its rooms with CallVault.
//
// Rooms are Routers; a participant publishes through a PlainTransport here (ffmpeg, GStreamer, or an
// RTP gateway), or through a WebRtcTransport in a real application: the recording code is the same.
// Everything CallVault needs is the five lines marked "CallVault".
//
//   CALLVAULT_URL=http://127.0.0.1:8080 CALLVAULT_API_KEY=cv_... node examples/server.mjs
//   curl -X POST localhost:3000/rooms/demo/participants/alice/produce -d '{"kind":"video"}'
//     -> {"port": ..., "rtcpPort": ..., "payloadType": 101, "ssrc": ...}: send RTP there, e.g.
//   ffmpeg -re -f lavfi -i testsrc2 -c:v libvpx -deadline realtime -payload_type 101 -ssrc <ssrc> \
//     -f rtp "rtp://127.0.0.1:<port>?rtcpport=<rtcpPort>&pkt_size=1200"
//   curl -X DELETE localhost:3000/rooms/demo      (closes the Router: the recording is finished)
import http from 'node:http';
import * as mediasoup from 'mediasoup';
import { CallVaultRecorder } from '@callvault/mediasoup'; // CallVault

const recorder = new CallVaultRecorder({ url: process.env.CALLVAULT_URL, apiKey: process.env.CALLVAULT_API_KEY }); // CallVault
recorder.on('streamstart', (e) => console.log(`recording ${e.track} of room ${e.roomId} into ${e.recordingId}`)); // CallVault
recorder.on('error', (err) => console.warn('recording:', err.message)); // CallVault

const worker = await mediasoup.createWorker({ logLevel: 'warn' });
const mediaCodecs = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
  { kind: 'video', mimeType: 'video/H264', clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 } },
];
const rooms = new Map();

async function getRoom(roomId) {
  if (!rooms.has(roomId)) {
    const router = await worker.createRouter({ mediaCodecs });
    await recorder.recordRouter(router, { roomId, metadata: { app: 'example' } }); // CallVault
    rooms.set(roomId, router);
  }
  return rooms.get(roomId);
}

const PT = { audio: 100, video: 101 };
let nextSsrc = 1000;

async function produce(roomId, participantId, kind) {
  const router = await getRoom(roomId);
  const transport = await router.createPlainTransport({
    listenIp: '127.0.0.1', rtcpMux: false, comedia: true, appData: { participantId, displayName: participantId },
  });
  const codec = mediaCodecs.find((c) => c.kind === kind);
  const ssrc = nextSsrc++;
  await transport.produce({
    kind,
    rtpParameters: { codecs: [{ mimeType: codec.mimeType, clockRate: codec.clockRate, channels: codec.channels, payloadType: PT[kind] }], encodings: [{ ssrc }] },
  });
  return { port: transport.tuple.localPort, rtcpPort: transport.rtcpTuple.localPort, payloadType: PT[kind], ssrc };
}

const server = http.createServer(async (req, res) => {
  const reply = (status, body) => { res.writeHead(status, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(body)); };
  try {
    let body = '';
    for await (const chunk of req) body += chunk;
    const produceMatch = req.url.match(/^\/rooms\/([\w.-]+)\/participants\/([\w.-]+)\/produce$/);
    const roomMatch = req.url.match(/^\/rooms\/([\w.-]+)$/);
    if (req.method === 'POST' && produceMatch) {
      const { kind } = JSON.parse(body || '{}');
      if (kind !== 'audio' && kind !== 'video') return reply(400, { error: 'kind: audio or video' });
      return reply(200, await produce(produceMatch[1], produceMatch[2], kind));
    }
    if (req.method === 'DELETE' && roomMatch && rooms.has(roomMatch[1])) {
      rooms.get(roomMatch[1]).close();
      rooms.delete(roomMatch[1]);
      return reply(200, { closed: roomMatch[1] });
    }
    return reply(404, { error: 'not found' });
  } catch (err) {
    return reply(500, { error: err.message });
  }
});
const port = Number(process.env.PORT ?? 3000);
server.listen(port, '127.0.0.1', () => console.log(`mediasoup example on http://127.0.0.1:${server.address().port}`));
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    await recorder.close(); // finishes every room's recording
    worker.close();
    process.exit(0);
  });
}
