import { EventEmitter } from 'node:events';
import type { types } from 'mediasoup';

export interface CallVaultRecorderOptions {
  /** CallVault's HTTP URL, e.g. `http://callvault:8080`. */
  url: string;
  /** An API key with the `ingest` (or `operator`) role. */
  apiKey: string;
  /** Where the PlainTransports send RTP: CallVault's address as this host reaches it (default: the URL's host). */
  rtpHost?: string;
  /** The local IP the PlainTransports bind (default `127.0.0.1`; use your LAN address when CallVault is elsewhere). */
  listenIp?: string;
  /** Timeout of each request to CallVault, in milliseconds (default 10000). */
  timeoutMs?: number;
}

/** The layers of a simulcast/SVC Producer to record (mediasoup's Consumer `preferredLayers`): the
 * highest available layers up to these. Integers 0-15; spatial layer 0 is the smallest picture. */
export interface PreferredLayers {
  spatialLayer: number;
  temporalLayer?: number;
}

export interface Participant {
  /** 1-128 letters, digits, '.', '_' or '-'. */
  participantId: string;
  displayName?: string;
  /** The stream's name inside the participant (default: the Producer's mid, else 0, 1, 2... in the order its Producers appear). */
  mid?: string;
  /** Simulcast/SVC Producers: the layers to record (default: the highest). Ignored for other Producers. */
  preferredLayers?: PreferredLayers;
}

export interface RecordRouterOptions {
  /** The room's id in CallVault (1-128 letters, digits, '.', '_' or '-'). */
  roomId: string;
  /** Tags of the room's recording. */
  metadata?: Record<string, string>;
  /** Simulcast/SVC Producers: the layers to record (default: the highest); the participant function's
   * `preferredLayers` wins for its Producer. */
  preferredLayers?: PreferredLayers;
  /** Who a Producer belongs to (default: its transport's appData.participantId / displayName, else the
   * transport id). Return null to leave a Producer unrecorded. */
  participant?: (producer: types.Producer, transport: types.Transport) => Participant | null;
}

export interface RecordProducerOptions extends Participant {
  /** The Router the Producer belongs to (its Consumer is created there). */
  router: types.Router;
  roomId: string;
  metadata?: Record<string, string>;
}

export interface StreamStartEvent {
  roomId: string;
  participantId: string;
  mid: string;
  /** The track's name in the recording. */
  track: string;
  recordingId: string;
}

export declare class CallVaultError extends Error {
  readonly status: number;
  readonly type: string | undefined;
}

export declare class CallVaultRecorder extends EventEmitter {
  constructor(options: CallVaultRecorderOptions);
  /** Record every Producer that appears on the Router from now on, until the Router closes. */
  recordRouter(router: types.Router, options: RecordRouterOptions): Promise<void>;
  /** Record one Producer until it closes. */
  recordProducer(producer: types.Producer, options: RecordProducerOptions): Promise<void>;
  /** Stop recording a room now and finish its recording. */
  stopRoom(roomId: string): Promise<void>;
  /** Stop every recording (each room's recording is finished). */
  close(): Promise<void>;

  on(event: 'streamstart', listener: (event: StreamStartEvent) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
}

export default CallVaultRecorder;
