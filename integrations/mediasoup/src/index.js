// CallVault recorder for mediasoup: every Producer of a Router (or one Producer) is sent as plain RTP to
// CallVault through a PlainTransport + Consumer of its own. CallVault's ingest API says where to send it
// (POST /v1/ingest/rooms/{room}/participants/{participant}/streams with the Consumer's rtpParameters:
// no SDP). RTCP flows both ways on a separate port (rtcpMux: false), so CallVault's PLIs reach the
// Producer; the Consumer asks for a keyframe as it starts. Producer pause/resume are forwarded; a closed
// Producer finishes its track, a closed Router the room's recording. A heartbeat renews each room's lease
// (CallVault finishes the recording if the heartbeats stop) and re-registers streams CallVault lost
// (it restarted: the recording continues as new parts).

import { EventEmitter } from 'node:events';

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SAFE_MID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

/**
 * The layers a simulcast/SVC Producer is recorded at: `{ spatialLayer, temporalLayer? }`, integers >= 0
 * (mediasoup's Consumer `preferredLayers`; it records the highest available layer up to them). Undefined:
 * mediasoup's default, the highest layers.
 * @param {unknown} layers
 * @returns {{ spatialLayer: number, temporalLayer?: number } | undefined}
 */
function checkLayers(layers) {
  if (layers === undefined || layers === null) return undefined;
  const ok = (/** @type {unknown} */ n) => Number.isInteger(n) && /** @type {number} */ (n) >= 0 && /** @type {number} */ (n) < 16;
  const l = /** @type {any} */ (layers);
  if (typeof l !== 'object' || !ok(l.spatialLayer) || !(l.temporalLayer === undefined || ok(l.temporalLayer))) {
    throw new TypeError(`preferredLayers ${JSON.stringify(layers)} must be { spatialLayer, temporalLayer? } with integers 0-15`);
  }
  return l.temporalLayer === undefined ? { spatialLayer: l.spatialLayer } : { spatialLayer: l.spatialLayer, temporalLayer: l.temporalLayer };
}

/** An HTTP error answered by CallVault (RFC 9457 problem details). */
export class CallVaultError extends Error {
  /**
   * @param {number} status
   * @param {string} detail
   * @param {string | undefined} type
   */
  constructor(status, detail, type) {
    super(`CallVault answered ${status}: ${detail}`);
    this.name = 'CallVaultError';
    this.status = status;
    this.type = type;
  }
}

/** The HTTP client of CallVault's ingest API. */
class IngestClient {
  /**
   * @param {string} url
   * @param {string} apiKey
   * @param {number} timeoutMs
   */
  constructor(url, apiKey, timeoutMs) {
    this.base = url.replace(/\/+$/, '');
    this.apiKey = apiKey;
    this.timeoutMs = timeoutMs;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  async call(method, path, body) {
    const res = await fetch(this.base + path, {
      method,
      headers: {
        Authorization: `Bearer ${this.apiKey}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      throw new CallVaultError(res.status, data?.detail ?? text.slice(0, 200), data?.type);
    }
    return data;
  }
}

/**
 * @param {string} s
 */
const enc = (s) => encodeURIComponent(s);

/** One Producer being recorded: its PlainTransport, Consumer and CallVault registration. */
class StreamRecording {
  /**
   * @param {RoomRecording} room
   * @param {import('mediasoup').types.Producer} producer
   * @param {{ participantId: string, displayName?: string, mid: string, preferredLayers?: { spatialLayer: number, temporalLayer?: number } }} who
   */
  constructor(room, producer, who) {
    this.room = room;
    this.producer = producer;
    this.participantId = who.participantId;
    this.displayName = who.displayName;
    this.mid = who.mid;
    this.preferredLayers = who.preferredLayers;
    /** @type {import('mediasoup').types.PlainTransport | null} */
    this.transport = null;
    /** @type {import('mediasoup').types.Consumer | null} */
    this.consumer = null;
    /** @type {any} */
    this.ports = null;
    this.closed = false;
    /** @type {Promise<void> | null} */
    this.starting = null;
  }

  get path() {
    return `/v1/ingest/rooms/${enc(this.room.roomId)}/participants/${enc(this.participantId)}/streams`;
  }

  /** Create the PlainTransport + Consumer, register with CallVault, connect, resume, ask for a keyframe.
   * Safe to call again (CallVault restarted): the previous transport is replaced. */
  start() {
    if (!this.starting) {
      this.starting = this.#start().finally(() => {
        this.starting = null;
      });
    }
    return this.starting;
  }

  async #start() {
    const { recorder, router } = this.room;
    this.#closeTransport();
    const transport = await router.createPlainTransport({
      listenIp: recorder.listenIp,
      rtcpMux: false,
      comedia: false,
      appData: { callvault: true },
    });
    this.transport = transport;
    try {
      const consumer = await transport.consume({
        producerId: this.producer.id,
        rtpCapabilities: router.rtpCapabilities,
        paused: true,
        // Simulcast/SVC: the layers asked for (default: mediasoup's, the highest); ignored otherwise.
        ...(this.preferredLayers && this.producer.type !== 'simple' ? { preferredLayers: this.preferredLayers } : {}),
        appData: { callvault: true },
      });
      this.consumer = consumer;
      const ports = await recorder.client.call('POST', this.path, {
        kind: this.producer.kind,
        mid: this.mid,
        rtp_parameters: consumer.rtpParameters,
        display_name: this.displayName ?? null,
        paused: this.producer.paused,
        metadata: this.room.metadata,
      });
      if (this.closed || this.transport !== transport) {
        return;
      }
      this.ports = ports;
      await transport.connect({ ip: recorder.rtpHost, port: ports.port, rtcpPort: ports.rtcp_port });
      await consumer.resume();
      if (consumer.kind === 'video') {
        await consumer.requestKeyFrame();
      }
      recorder.emit('streamstart', {
        roomId: this.room.roomId,
        participantId: this.participantId,
        mid: this.mid,
        track: ports.track,
        recordingId: ports.recording_id,
      });
    } catch (err) {
      if (this.transport === transport) {
        this.#closeTransport();
      }
      throw err;
    }
  }

  /** @param {boolean} paused */
  async setPaused(paused) {
    if (!this.ports) return;
    await this.room.recorder.client.call('POST', `${this.path}/${enc(this.mid)}/${paused ? 'pause' : 'resume'}`);
  }

  /** The Producer closed (or recording stops): finish the track and free the transport. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    this.#closeTransport();
    if (this.ports) {
      this.ports = null;
      await this.room.recorder.client.call('DELETE', `${this.path}/${enc(this.mid)}`);
    }
  }

  #closeTransport() {
    const transport = this.transport;
    this.transport = null;
    this.consumer = null;
    if (transport && !transport.closed) {
      transport.close();
    }
  }
}

/** One room (a Router) being recorded, with its lease heartbeat. */
class RoomRecording {
  /**
   * @param {CallVaultRecorder} recorder
   * @param {import('mediasoup').types.Router} router
   * @param {string} roomId
   * @param {Record<string, string>} metadata
   */
  constructor(recorder, router, roomId, metadata) {
    this.recorder = recorder;
    this.router = router;
    this.roomId = roomId;
    this.metadata = metadata;
    /** @type {Map<string, StreamRecording>} producer id -> stream */
    this.streams = new Map();
    /** @type {Map<string, number>} participant -> streams named so far (for mids) */
    this.counters = new Map();
    this.leaseMs = 15000;
    /** @type {NodeJS.Timeout | null} */
    this.timer = null;
    this.closed = false;
    this.#schedule(0);
  }

  /** @param {number} ms */
  #schedule(ms) {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.heartbeat()
        .catch((err) => this.recorder._warn(err))
        .finally(() => this.#schedule(this.leaseMs / 3));
    }, ms);
    this.timer.unref();
  }

  /** Renew the room's lease; register again what CallVault does not record (it restarted), and what
   * could not be registered before (CallVault was unreachable). Only streams registered when the
   * heartbeat left are listed: one registering meanwhile is not "missing". */
  async heartbeat() {
    const registered = new Map(
      [...this.streams.values()].filter((s) => !s.closed && !s.starting && s.ports).map((s) => [s, s.ports]),
    );
    const answer = await this.recorder.client.call('PUT', `/v1/ingest/rooms/${enc(this.roomId)}/lease`, {
      streams: [...registered.keys()].map((s) => ({ participant_id: s.participantId, mid: s.mid })),
    });
    if (typeof answer?.lease_seconds === 'number' && answer.lease_seconds > 0) {
      this.leaseMs = answer.lease_seconds * 1000;
    }
    const missing = new Set((answer?.missing ?? []).map((m) => `${m.participant_id}\u0000${m.mid}`));
    for (const stream of [...this.streams.values()]) {
      if (stream.closed || stream.starting) continue;
      const lost = registered.get(stream) === stream.ports && missing.has(`${stream.participantId}\u0000${stream.mid}`);
      if (stream.ports && !lost) continue;
      stream.ports = null;
      await this.#start(stream).catch((err) => this.recorder._warn(err));
    }
  }

  /** Start (or restart) a stream; a refusal for good (4xx but timeouts and rate limits) drops it.
   * @param {StreamRecording} stream */
  async #start(stream) {
    try {
      await stream.start();
    } catch (err) {
      if (err instanceof CallVaultError && err.status >= 400 && err.status < 500 && ![408, 429].includes(err.status)) {
        this.streams.delete(stream.producer.id);
        stream.closed = true;
      }
      throw err;
    }
  }

  /**
   * @param {import('mediasoup').types.Producer} producer
   * @param {{ participantId: string, displayName?: string, mid?: string, preferredLayers?: unknown }} who
   */
  async addProducer(producer, who) {
    if (this.closed || this.streams.has(producer.id) || producer.closed) return;
    if (!SAFE_ID.test(who.participantId)) {
      throw new TypeError(`participant id ${JSON.stringify(who.participantId)} must be 1-128 letters, digits, '.', '_' or '-'`);
    }
    const preferredLayers = checkLayers(who.preferredLayers);
    const stream = new StreamRecording(this, producer, {
      ...who,
      preferredLayers,
      mid: who.mid ?? this.#mid(producer, who.participantId),
    });
    this.streams.set(producer.id, stream);
    producer.observer.on('pause', () => stream.setPaused(true).catch((err) => this.recorder._warn(err)));
    producer.observer.on('resume', () => stream.setPaused(false).catch((err) => this.recorder._warn(err)));
    producer.observer.once('close', () => {
      this.streams.delete(producer.id);
      stream.close().catch((err) => this.recorder._warn(err));
    });
    // CallVault unreachable: the heartbeat tries again while the Producer lives, unless CallVault said
    // no for good (the room is not recorded, the parameters are invalid).
    await this.#start(stream);
  }

  /**
   * @param {import('mediasoup').types.Producer} producer
   * @param {string} participantId
   */
  #mid(producer, participantId) {
    const mid = producer.rtpParameters.mid;
    if (typeof mid === 'string' && SAFE_MID.test(mid)) {
      const taken = [...this.streams.values()].some((s) => s.participantId === participantId && s.mid === mid);
      if (!taken) return mid;
    }
    // Like a browser's mids: 0, 1, 2... in the order the participant's Producers appear.
    let n = this.counters.get(participantId) ?? 0;
    const taken = (m) => [...this.streams.values()].some((s) => s.participantId === participantId && s.mid === m);
    while (taken(String(n))) n += 1;
    this.counters.set(participantId, n + 1);
    return String(n);
  }

  /** @param {boolean} finish ask CallVault to finish the recording now (the Router closed) */
  async close(finish) {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const streams = [...this.streams.values()];
    this.streams.clear();
    if (finish) {
      for (const s of streams) {
        s.closed = true;
        s.ports = null;
      }
      await Promise.allSettled(streams.map((s) => s.close()));
      await this.recorder.client.call('DELETE', `/v1/ingest/rooms/${enc(this.roomId)}`);
    } else {
      await Promise.allSettled(streams.map((s) => s.close()));
    }
  }
}

/**
 * Records mediasoup Routers and Producers with CallVault.
 *
 * Events: 'streamstart' ({ roomId, participantId, mid, track, recordingId }), 'error' (Error: a request
 * to CallVault failed; without a listener they are printed with console.warn).
 */
export class CallVaultRecorder extends EventEmitter {
  /** @param {import('./index.js').CallVaultRecorderOptions} options */
  constructor(options) {
    super();
    const { url, apiKey } = options ?? {};
    if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
      throw new TypeError('CallVaultRecorder: url must be the http(s) URL of CallVault, e.g. http://callvault:8080');
    }
    if (typeof apiKey !== 'string' || !apiKey) {
      throw new TypeError('CallVaultRecorder: apiKey is required (a key with the ingest or operator role)');
    }
    this.client = new IngestClient(url, apiKey, options.timeoutMs ?? 10000);
    this.rtpHost = options.rtpHost ?? new URL(url).hostname.replace(/^\[|\]$/g, '');
    this.listenIp = options.listenIp ?? '127.0.0.1';
    /** @type {Map<string, RoomRecording>} */
    this.rooms = new Map();
    /** @type {Map<import('mediasoup').types.Router, string>} */
    this.routerRooms = new Map();
  }

  /** @param {unknown} err */
  _warn(err) {
    if (this.listenerCount('error') > 0) {
      this.emit('error', err);
    } else {
      const cause = /** @type {any} */ (err)?.cause;
      const why = cause?.code ?? cause?.message;
      console.warn('callvault:', err instanceof Error ? err.message : err, why ? `(${why})` : '');
    }
  }

  /**
   * @param {import('mediasoup').types.Router} router
   * @param {string} roomId
   * @param {Record<string, string>} [metadata]
   */
  #room(router, roomId, metadata) {
    if (typeof roomId !== 'string' || !SAFE_ID.test(roomId)) {
      throw new TypeError(`roomId ${JSON.stringify(roomId)} must be 1-128 letters, digits, '.', '_' or '-'`);
    }
    let room = this.rooms.get(roomId);
    if (!room) {
      room = new RoomRecording(this, router, roomId, metadata ?? {});
      this.rooms.set(roomId, room);
      this.routerRooms.set(router, roomId);
      router.observer.once('close', () => {
        this.rooms.delete(roomId);
        this.routerRooms.delete(router);
        room?.close(true).catch((err) => this._warn(err));
      });
    }
    return room;
  }

  /**
   * Record every Producer that appears on the Router from now on, until the Router closes. Participants
   * are the Producers' transports: `participant(producer, transport)` names them (default: the
   * transport's appData.participantId / appData.displayName, else the transport id). Simulcast/SVC
   * Producers are recorded at `options.preferredLayers` (default: the highest), or at the
   * `preferredLayers` the participant function returns for that Producer.
   *
   * @param {import('mediasoup').types.Router} router
   * @param {import('./index.js').RecordRouterOptions} options
   */
  async recordRouter(router, options) {
    const room = this.#room(router, options.roomId, options.metadata);
    const who = options.participant ?? defaultParticipant;
    const layers = checkLayers(options.preferredLayers);
    router.observer.on('newtransport', (transport) => {
      if (transport.appData?.callvault) return;
      transport.observer.on('newproducer', (producer) => {
        const participant = who(producer, transport);
        if (!participant) return;
        room
          .addProducer(producer, { ...participant, preferredLayers: participant.preferredLayers ?? layers })
          .catch((err) => this._warn(err));
      });
    });
  }

  /**
   * Record one Producer (until it closes).
   *
   * @param {import('mediasoup').types.Producer} producer
   * @param {import('./index.js').RecordProducerOptions} options
   */
  async recordProducer(producer, options) {
    const room = this.#room(options.router, options.roomId, options.metadata);
    await room.addProducer(producer, {
      participantId: options.participantId,
      displayName: options.displayName,
      mid: options.mid,
      preferredLayers: options.preferredLayers,
    });
  }

  /**
   * Stop recording a room now and finish its recording.
   * @param {string} roomId
   */
  async stopRoom(roomId) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    this.rooms.delete(roomId);
    this.routerRooms.delete(room.router);
    await room.close(true);
  }

  /** Stop every recording (the process is shutting down): each room's recording is finished. */
  async close() {
    const rooms = [...this.rooms.keys()];
    await Promise.allSettled(rooms.map((r) => this.stopRoom(r)));
  }
}

/**
 * @param {import('mediasoup').types.Producer} producer
 * @param {import('mediasoup').types.Transport} transport
 * @returns {import('./index.js').Participant}
 */
function defaultParticipant(producer, transport) {
  const app = /** @type {Record<string, unknown>} */ ({ ...transport.appData, ...producer.appData });
  const id = typeof app.participantId === 'string' ? app.participantId : transport.id;
  const displayName = typeof app.displayName === 'string' ? app.displayName : undefined;
  return { participantId: id, displayName };
}

export default CallVaultRecorder;
