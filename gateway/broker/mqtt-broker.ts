// The embedded MQTT broker: aedes on plain TCP, and optionally on TLS and
// WebSocket listeners. Every client's parser sits behind the packet-size guard.
import { Aedes, type AedesOptions, type Client } from 'aedes';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Counters } from '../metrics/counters.ts';
import {
  listenTcp, listenTls, listenWebSocket, type ListenerHandle, type OnListenerError, type StreamMeta, type TlsFiles, type Transport,
} from './listeners.ts';
import { forgetConnectPacket, plainParserBuffer } from './parser-memory.ts';
import { guardPacketSize } from './packet-size-guard.ts';
import { publishLane, type PublishLane } from './publish-lane.ts';
import { indexedMemoryPersistence } from './retained-index.ts';

export interface MqttBrokerOptions {
  host: string;
  port: number;
  maxPacketBytes: number;
  /** Open connections at most, per listener. */
  maxConnections: number;
  connectTimeoutMs: number;
  tls?: (TlsFiles & { port: number }) | undefined;
  ws?: { port: number; path: string; tls: boolean } | undefined;
}

/** Above the ack and integrator publishes the commit queue's 20,000 pending writes can cause at once. */
const BROKER_CONCURRENCY = 100_000;

type Hooks = Required<Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>> & {
  /** Publishes the gateway handles in full before aedes sees them (heartbeats); null = none. */
  lane?: PublishLane | null;
};

/** A session opened, or ended: `lost` says why when the client sent no DISCONNECT, null when it did. */
export type SessionChange = { clientId: string; open: true } | { clientId: string; open: false; lost: string | null };

export class MqttBroker {
  private aedes: Aedes | null = null;
  private listeners: ListenerHandle[] = [];
  /** By client object: a session taken over by a new connection must not mark the new one offline when the old one closes. */
  private readonly connected = new Map<string, Client>();
  private readonly sessionListeners: Array<(change: SessionChange) => void> = [];
  private readonly subscribeListeners: Array<(filter: string) => void> = [];
  /** Clients aedes is closing for a missed keepalive, so their disconnect can say so. */
  private readonly keepaliveExpired = new WeakSet<Client>();

  constructor(
    private readonly opts: MqttBrokerOptions,
    private readonly hooks: Hooks,
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { lane, ...hooks } = this.hooks;
    const aedes = await Aedes.createBroker({
      ...hooks,
      // A client that opens a connection and never completes CONNECT is closed after this.
      connectTimeout: this.opts.connectTimeoutMs,
      // A device that stops reading its acks is dropped instead of stalling delivery to everyone.
      drainTimeout: 10_000,
      // Publishes in flight inside aedes' emitter before it queues them. Its queue
      // drains recursively, so a burst (20,000 stored alerts → 40,000 ack and
      // integrator publishes at once) queued behind the default of 100 overflows
      // the stack and kills the gateway. What the gateway publishes is already
      // bounded upstream (the commit queue's maxPending), so this only has to sit above it.
      concurrency: BROKER_CONCURRENCY,
      persistence: indexedMemoryPersistence(),
    });
    aedes.on('clientError', (client, err) => {
      this.counters.inc('mqtt_client_errors_total');
      this.log.debug({ clientId: client.id, err: err.message }, 'MQTT client error');
    });
    aedes.on('connectionError', (_client, err) => {
      this.counters.inc('mqtt_connection_errors_total');
      this.log.debug({ err: err.message }, 'MQTT connection error before CONNECT');
    });
    aedes.on('clientReady', (client) => {
      forgetConnectPacket(client);
      this.connected.set(client.id, client);
      this.log.debug({ clientId: client.id }, 'device connected');
      this.emitSession({ clientId: client.id, open: true });
    });
    aedes.on('keepaliveTimeout', (client) => this.keepaliveExpired.add(client));
    aedes.on('subscribe', (subscriptions) => {
      // Refused filters are in the list too, granted 0x80 (SUBACK failure).
      for (const { topic, qos } of subscriptions) if ((qos as number) !== 0x80) for (const listener of this.subscribeListeners) listener(topic);
    });
    aedes.on('clientDisconnect', (client) => {
      // aedes sets _disconnected only for a valid DISCONNECT packet (it then skips the will too).
      const clean = (client as unknown as { _disconnected?: boolean })._disconnected === true;
      const lost = clean ? null : this.keepaliveExpired.has(client) ? 'keepalive timeout' : 'closed without DISCONNECT';
      this.log.debug({ clientId: client.id, lost }, 'device disconnected');
      if (this.connected.get(client.id) !== client) return;
      this.connected.delete(client.id);
      this.emitSession({ clientId: client.id, open: false, lost });
    });
    this.aedes = aedes;

    // One function for every connection, not one closure each: with 10,000 devices connected they add up.
    const laneInstaller = lane ? publishLane(lane) : null;
    const onOversized = (_client: unknown, meta: StreamMeta, declared: number | null) => {
      this.counters.inc('mqtt_oversized_packets_total');
      this.log.warn({ remote: meta.remoteAddress, transport: meta.transport, declared, limit: this.opts.maxPacketBytes, code: 'MQTT_PACKET_TOO_LARGE' },
        'MQTT packet over the size limit: connection closed before reading it');
    };
    const onStream = (stream: Duplex, meta: StreamMeta, req?: IncomingMessage) => {
      const client = aedes.handle(stream, req);
      plainParserBuffer(client);
      guardPacketSize(client, this.opts.maxPacketBytes, meta, onOversized);
      laneInstaller?.(client);

    };
    const onError: OnListenerError = (err, meta) => {
      this.counters.inc('mqtt_listener_errors_total', { transport: meta.transport });
      this.log.debug({ err: err.message, code: err.code, ...meta }, 'MQTT listener error');
    };
    const { host, maxConnections, connectTimeoutMs, tls, ws } = this.opts;
    const common = { host, maxConnections, onError };
    // TCP_NODELAY is set by every listener: without it an ack written right
    // after a PUBACK waits for the device's delayed TCP ACK (Nagle), ~40 ms.
    this.listeners.push(await listenTcp({ ...common, port: this.opts.port }, onStream));
    if (tls) this.listeners.push(await listenTls({ ...common, ...tls, handshakeTimeoutMs: connectTimeoutMs }, onStream));
    if (ws) {
      this.listeners.push(await listenWebSocket({
        ...common, port: ws.port, path: ws.path, maxPayload: this.opts.maxPacketBytes, handshakeTimeoutMs: connectTimeoutMs, ...(ws.tls && tls ? { tls } : {}),
      }, onStream));
    }
  }

  /** The plain TCP port; `port('tls')`, `port('ws')` or `port('wss')` for the others (0 if not listening). */
  port(kind: Transport = 'tcp'): number {
    return this.listeners.find((l) => l.kind === kind)?.port() ?? 0;
  }

  /** Every listener, for the start-up banner. */
  endpoints(): Array<{ kind: Transport; port: number }> {
    return this.listeners.map((l) => ({ kind: l.kind, port: l.port() }));
  }

  /** Sessions opening and ending; a takeover ends the old session just before the new one opens. */
  onSession(listener: (change: SessionChange) => void): void {
    this.sessionListeners.push(listener);
  }

  /** Every filter a client was granted, as it is granted. */
  onSubscribe(listener: (filter: string) => void): void {
    this.subscribeListeners.push(listener);
  }

  private emitSession(change: SessionChange): void {
    for (const listener of this.sessionListeners) {
      try {
        listener(change);
      } catch (err) {
        this.log.error({ err, clientId: change.clientId }, 'session listener failed');
      }
    }
  }

  /** The live connection holding this client id. */
  client(clientId: string): Client | undefined {
    return this.connected.get(clientId);
  }

  isConnected(clientId: string): boolean {
    return this.connected.has(clientId);
  }

  connectedClients(): number {
    return this.aedes?.connectedClients ?? 0;
  }

  /** Publishes from the gateway itself; resolves when handed to aedes (QoS 1 to each subscriber). */
  publish(topic: string, payload: string, opts: { qos: 0 | 1; retain: boolean }): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return Promise.resolve();
    return new Promise((resolve, reject) => {
      aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: opts.qos, retain: opts.retain, dup: false }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Closes every client (wills, disconnects), then the listeners and any socket aedes never got to know. */
  async stop(): Promise<void> {
    const aedes = this.aedes;
    this.aedes = null;
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await Promise.all(this.listeners.splice(0).map((l) => l.close()));
  }
}
