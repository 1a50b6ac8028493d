// A mediasoup application for the tests: one real worker and Router recorded with the CallVault package
// (recordRouter), and Producers on PlainTransports that ffmpeg feeds (rtcpMux false + comedia, ffmpeg's
// RTCP to the rtcp port: see the reference notes). Driven by JSON lines on stdin; answers and events as
// JSON lines on stdout.
//
//   node harness.mjs <callvault url> <api key> <room id> [<rtpHost>: where the package sends RTP]
//   {"op":"produce","participant":"alice","display":"Alice","codec":"vp8","pt":101,"ssrc":1111}
//   {"op":"pause"|"resume"|"close","id":"<producer id>"}   {"op":"closeRouter"}
//   WebRTC publishers (aiortc, Chromium) in the test's network namespace:
//   {"op":"webrtcTransport","participant":"carol","display":"Carol","ip":"10.200.0.1"[,"preferredLayers":{...}]}
//     -> {id, iceParameters, iceCandidates, dtlsParameters}
//   {"op":"connectWebRtc","id":"<transport id>","dtlsParameters":{...}}
//   {"op":"produceOn","transport":"<transport id>","kind":"video","rtpParameters":{...}} -> {id}
//   {"op":"consumerStats"} -> what the recording Consumers send (layers of simulcast ones)
//   {"op":"produceSimulcast","participant":"fred","display":"Fred","pt":101,"ssrcs":[low, high]} -> {id, port}
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, '../../integrations/mediasoup');
const mediasoup = createRequire(path.join(pkg, 'package.json'))('mediasoup');
const { CallVaultRecorder } = await import(path.join(pkg, 'src/index.js'));

const [url, apiKey, roomId, rtpHost] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const CODECS = {
  opus: { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  vp8: { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
  h264: {
    kind: 'video',
    mimeType: 'video/H264',
    clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 },
  },
};

const worker = await mediasoup.createWorker({ logLevel: 'warn' });
worker.on('died', () => {
  out({ event: 'workerdied' });
  process.exit(3);
});
const router = await worker.createRouter({ mediaCodecs: Object.values(CODECS) });
const recorder = new CallVaultRecorder({ url, apiKey, ...(rtpHost ? { rtpHost } : {}) });
recorder.on('streamstart', (e) => out({ event: 'streamstart', ...e }));
recorder.on('error', (e) => out({ event: 'error', message: String(e?.message ?? e) }));
await recorder.recordRouter(router, {
  roomId,
  metadata: { source: 'mediasoup-test' },
  // The transport's appData names the participant (and, for a test, the simulcast layers to record).
  participant: (producer, transport) => ({
    participantId: transport.appData.participantId ?? transport.id,
    displayName: transport.appData.displayName,
    preferredLayers: transport.appData.preferredLayers,
  }),
});

const producers = new Map();
const webrtc = new Map();

async function handle(cmd) {
  if (cmd.op === 'produce') {
    const spec = CODECS[cmd.codec];
    const transport = await router.createPlainTransport({
      listenIp: '127.0.0.1',
      rtcpMux: false,
      comedia: true,
      appData: { participantId: cmd.participant, displayName: cmd.display },
    });
    const { kind, ...codec } = spec;
    const producer = await transport.produce({
      kind,
      rtpParameters: { codecs: [{ ...codec, payloadType: cmd.pt }], encodings: [{ ssrc: cmd.ssrc }] },
    });
    producers.set(producer.id, { producer, transport });
    return { id: producer.id, port: transport.tuple.localPort, rtcpPort: transport.rtcpTuple.localPort };
  }
  if (cmd.op === 'produceSimulcast') {
    // A VP8 simulcast Producer fed from ONE UDP socket (RTP and RTCP muxed): encodings by SSRC, smallest
    // first (the spatial layer is the encoding's index).
    const transport = await router.createPlainTransport({
      listenIp: '127.0.0.1',
      rtcpMux: true,
      comedia: true,
      appData: { participantId: cmd.participant, displayName: cmd.display },
    });
    const { kind, ...codec } = CODECS.vp8;
    const producer = await transport.produce({
      kind,
      rtpParameters: {
        codecs: [{ ...codec, payloadType: cmd.pt }],
        encodings: cmd.ssrcs.map((ssrc) => ({ ssrc })),
      },
    });
    producers.set(producer.id, { producer, transport });
    return { id: producer.id, port: transport.tuple.localPort, type: producer.type };
  }
  if (cmd.op === 'webrtcTransport') {
    const transport = await router.createWebRtcTransport({
      listenIps: [{ ip: cmd.ip }],
      enableUdp: true,
      enableTcp: false,
      initialAvailableOutgoingBitrate: 3000000,
      appData: { participantId: cmd.participant, displayName: cmd.display, preferredLayers: cmd.preferredLayers },
    });
    webrtc.set(transport.id, transport);
    const { id, iceParameters, iceCandidates, dtlsParameters } = transport;
    return { id, iceParameters, iceCandidates, dtlsParameters };
  }
  if (cmd.op === 'connectWebRtc') {
    await webrtc.get(cmd.id).connect({ dtlsParameters: cmd.dtlsParameters });
    return {};
  }
  if (cmd.op === 'produceOn') {
    const transport = webrtc.get(cmd.transport);
    const producer = await transport.produce({ kind: cmd.kind, rtpParameters: cmd.rtpParameters });
    producers.set(producer.id, { producer, transport });
    return { id: producer.id };
  }
  if (cmd.op === 'consumerStats') {
    // The recording Consumers (on the package's PlainTransports): their layers and what they sent.
    const out = [];
    for (const room of recorder.rooms.values()) {
      for (const stream of room.streams.values()) {
        const c = stream.consumer;
        if (!c) continue;
        const stats = (await c.getStats()).filter((s) => s.type === 'outbound-rtp');
        out.push({
          participant: stream.participantId, kind: c.kind, type: c.type,
          preferredLayers: c.preferredLayers ?? null, currentLayers: c.currentLayers ?? null,
          packets: stats.reduce((n, s) => n + (s.packetCount ?? 0), 0),
        });
      }
    }
    return { consumers: out };
  }
  if (cmd.op === 'pause' || cmd.op === 'resume') {
    await producers.get(cmd.id).producer[cmd.op]();
    return {};
  }
  if (cmd.op === 'close') {
    const p = producers.get(cmd.id);
    producers.delete(cmd.id);
    p.transport.close();
    return {};
  }
  if (cmd.op === 'stats') {
    // What the worker received from the publishers: loss there happened before any recorder.
    let packets = 0;
    let lost = 0;
    for (const { producer } of producers.values()) {
      for (const s of await producer.getStats()) {
        packets += s.packetCount ?? 0;
        lost += s.packetsLost ?? 0;
      }
    }
    return { packets, lost };
  }
  if (cmd.op === 'closeRouter') {
    router.close();
    return {};
  }
  if (cmd.op === 'exit') {
    worker.close();
    setTimeout(() => process.exit(0), 200);
    return {};
  }
  throw new Error(`unknown op ${cmd.op}`);
}

out({ event: 'ready', pid: process.pid, workerPid: worker.pid });
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  try {
    out({ reply: cmd.op, seq: cmd.seq, ok: true, ...(await handle(cmd)) });
  } catch (err) {
    out({ reply: cmd.op, seq: cmd.seq, ok: false, message: String(err?.message ?? err) });
  }
}
