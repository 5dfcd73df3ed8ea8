// The embedded MQTT broker: aedes on a plain TCP listener.
import { Aedes, type AedesOptions, type Client } from 'aedes';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Logger } from 'pino';
import type { Counters } from '../metrics/counters.ts';
import { guardPacketSize } from './packet-size-guard.ts';
import { indexedMemoryPersistence } from './retained-index.ts';

export interface MqttBrokerOptions {
  host: string;
  port: number;
  maxPacketBytes: number;
  maxConnections: number;
}

/** Above the ack and integrator publishes the commit queue's 20,000 pending writes can cause at once. */
const BROKER_CONCURRENCY = 100_000;

type Hooks = Required<Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>>;

export class MqttBroker {
  private aedes: Aedes | null = null;
  private server: Server | null = null;
  /** By client object: a session taken over by a new connection must not mark the new one offline when the old one closes. */
  private readonly connected = new Map<string, Client>();

  constructor(
    private readonly opts: MqttBrokerOptions,
    private readonly hooks: Hooks,
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const aedes = await Aedes.createBroker({
      ...this.hooks,
      // A client that opens TCP and never sends CONNECT is closed after this.
      connectTimeout: 10_000,
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
      this.connected.set(client.id, client);
      this.log.debug({ clientId: client.id }, 'device connected');
    });
    aedes.on('clientDisconnect', (client) => {
      if (this.connected.get(client.id) === client) this.connected.delete(client.id);
      this.log.debug({ clientId: client.id }, 'device disconnected');
    });
    this.aedes = aedes;

    const server = createServer((socket) => {
      // Without this, an ack written right after a PUBACK waits for the
      // device's delayed TCP ACK (Nagle): ~40 ms added to "help is coming".
      socket.setNoDelay(true);
      aedes.handle(guardPacketSize(socket, this.opts.maxPacketBytes, (declared) => {
        this.counters.inc('mqtt_oversized_packets_total');
        this.log.warn({ remote: socket.remoteAddress, declared, limit: this.opts.maxPacketBytes, code: 'MQTT_PACKET_TOO_LARGE' },
          'MQTT packet over the size limit: connection closed before reading it');
      }));
    });
    server.maxConnections = this.opts.maxConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err }, 'MQTT listener error'));
    this.server = server;
  }

  port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
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

  /** Stops accepting connections, then closes every client. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    // server.close() only completes once every connection has ended, and it
    // is aedes.close() that ends them: start the first, await it after the second.
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    const aedes = this.aedes;
    this.aedes = null;
    if (aedes) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await closed;
  }
}
