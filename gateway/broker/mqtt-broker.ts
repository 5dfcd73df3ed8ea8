// The embedded MQTT broker: aedes on a plain TCP listener.
import { Aedes, type AedesOptions, type Client } from 'aedes';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Logger } from 'pino';
import type { Counters } from '../metrics/counters.ts';
import { guardPacketSize } from './packet-size-guard.ts';

export interface MqttBrokerOptions {
  host: string;
  port: number;
  maxPacketBytes: number;
  maxConnections: number;
}

type Hooks = Required<Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>>;

/** A session opened, or ended: `lost` says why when the client sent no DISCONNECT, null when it did. */
export type SessionChange = { clientId: string; open: true } | { clientId: string; open: false; lost: string | null };

export class MqttBroker {
  private aedes: Aedes | null = null;
  private server: Server | null = null;
  /** By client object: a session taken over by a new connection must not mark the new one offline when the old one closes. */
  private readonly connected = new Map<string, Client>();
  private readonly sessionListeners: Array<(change: SessionChange) => void> = [];
  /** Clients aedes is closing for a missed keepalive, so their disconnect can say so. */
  private readonly keepaliveExpired = new WeakSet<Client>();

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
      this.emitSession({ clientId: client.id, open: true });
    });
    aedes.on('keepaliveTimeout', (client) => this.keepaliveExpired.add(client));
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

  /** Sessions opening and ending; a takeover ends the old session just before the new one opens. */
  onSession(listener: (change: SessionChange) => void): void {
    this.sessionListeners.push(listener);
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
