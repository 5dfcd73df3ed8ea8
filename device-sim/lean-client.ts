// A minimal MQTT 3.1.1 client: mqtt-packet over one `net` socket, nothing
// else. mqtt.js keeps stores, timers and an event emitter per client, which is
// fine for one device and too much for 50,000 in one process; this keeps a
// socket, a parser and the QoS 1 publishes awaiting their PUBACK. It does what
// a device does: CONNECT with its credentials, SUBSCRIBE to its ack and config
// topics, PUBLISH at QoS 0 or 1, PUBACK what the gateway sends it, PINGREQ
// when idle. No reconnect logic: the fleet decides when a device comes back.
import { connect as netConnect, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';

export interface LeanClientOptions {
  host: string;
  port: number;
  /** Source address: connections spread over 127.0.0.x get past the ~28,000 ephemeral ports of one address pair. */
  localAddress?: string;
  clientId: string;
  username: string;
  password: string;
  keepaliveSec: number;
  connectTimeoutMs: number;
  /** Deadline of one QoS 1 publish or subscribe. */
  ackTimeoutMs: number;
  will?: { topic: string; payload: string; qos: 0 | 1; retain: boolean };
}

export class LeanClientError extends Error {
  constructor(readonly code: 'CONNECT_REFUSED' | 'CONNECT_TIMEOUT' | 'CLOSED' | 'ACK_TIMEOUT' | 'PROTOCOL', message: string) {
    super(message);
  }
}

interface Waiter {
  resolve: (granted?: number[]) => void;
  reject: (err: LeanClientError) => void;
  timer: NodeJS.Timeout;
}

/** Packet ids are 16 bits, never 0. */
const MAX_PACKET_ID = 0xffff;

export class LeanClient {
  private socket: Socket | null = null;
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;
  private lastSentAt = 0;
  private closedListener: ((err: LeanClientError | null) => void) | null = null;
  private messageListener: ((topic: string, payload: Buffer) => void) | null = null;
  private closed = false;

  constructor(private readonly opts: LeanClientOptions) {}

  /** Resolves on CONNACK 0; rejects on any other return code, a closed socket or the deadline. */
  connect(): Promise<void> {
    const { opts } = this;
    return new Promise<void>((resolve, reject) => {
      const socket = netConnect({ host: opts.host, port: opts.port, localAddress: opts.localAddress, noDelay: true });
      this.socket = socket;
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      let connected = false;
      const timer = setTimeout(() => fail(new LeanClientError('CONNECT_TIMEOUT', `${opts.clientId}: no CONNACK within ${opts.connectTimeoutMs} ms`)), opts.connectTimeoutMs);
      const fail = (err: LeanClientError) => {
        clearTimeout(timer);
        if (!connected) reject(err);
        this.shut(err);
      };
      parser.on('packet', (packet: Packet) => {
        if (packet.cmd === 'connack') {
          clearTimeout(timer);
          if (packet.returnCode !== 0) return fail(new LeanClientError('CONNECT_REFUSED', `${opts.clientId}: CONNACK return code ${packet.returnCode}`));
          connected = true;
          return resolve();
        }
        this.onPacket(packet);
      });
      parser.on('error', (err: Error) => fail(new LeanClientError('PROTOCOL', `${opts.clientId}: ${err.message}`)));
      socket.on('data', (bytes: Buffer) => parser.parse(bytes));
      socket.on('error', (err) => fail(new LeanClientError('CLOSED', `${opts.clientId}: ${err.message}`)));
      socket.on('close', () => fail(new LeanClientError('CLOSED', `${opts.clientId}: connection closed`)));
      this.send({
        cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: opts.clientId, keepalive: opts.keepaliveSec,
        username: opts.username, password: Buffer.from(opts.password),
        ...(opts.will ? { will: { ...opts.will, payload: Buffer.from(opts.will.payload) } } : {}),
      });
    });
  }

  get connected(): boolean {
    return this.socket !== null && !this.closed;
  }

  /** Called once when the connection ends (null: closed by us). */
  onClose(listener: (err: LeanClientError | null) => void): void {
    this.closedListener = listener;
  }

  onMessage(listener: (topic: string, payload: Buffer) => void): void {
    this.messageListener = listener;
  }

  /** QoS 0 resolves once written; QoS 1 on its PUBACK. `dup` marks a resend of an unacknowledged publish. */
  publish(topic: string, payload: string | Buffer, qos: 0 | 1, dup = false): Promise<void> {
    if (qos === 0) {
      this.send({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false });
      return Promise.resolve();
    }
    return this.withAck((messageId) => this.send({ cmd: 'publish', topic, payload, qos: 1, messageId, retain: false, dup })).then(() => undefined);
  }

  /** Resolves with the granted QoS per topic (128 = refused). */
  subscribe(topicList: string[]): Promise<number[]> {
    return this.withAck((messageId) => this.send({ cmd: 'subscribe', messageId, subscriptions: topicList.map((topic) => ({ topic, qos: 1 })) }))
      .then((granted) => granted ?? []);
  }

  /** A PINGREQ if nothing was sent for half the keepalive: call it from a shared timer, not one timer per client. */
  keepAlive(now: number): void {
    if (this.connected && this.opts.keepaliveSec > 0 && now - this.lastSentAt > (this.opts.keepaliveSec * 1000) / 2) this.send({ cmd: 'pingreq' });
  }

  /** A clean goodbye (DISCONNECT: no will). */
  end(): void {
    if (!this.connected) return;
    this.send({ cmd: 'disconnect' });
    this.socket?.end();
    this.shut(null);
  }

  /** The connection drops as when a device loses power or its network: the will fires. */
  drop(): void {
    this.socket?.destroy();
    this.shut(new LeanClientError('CLOSED', `${this.opts.clientId}: dropped`));
  }

  private withAck(sendIt: (messageId: number) => void): Promise<number[] | undefined> {
    if (!this.connected) return Promise.reject(new LeanClientError('CLOSED', `${this.opts.clientId}: not connected`));
    const messageId = this.takeId();
    return new Promise<number[] | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(messageId);
        reject(new LeanClientError('ACK_TIMEOUT', `${this.opts.clientId}: no ack for packet ${messageId} within ${this.opts.ackTimeoutMs} ms`));
      }, this.opts.ackTimeoutMs);
      this.waiters.set(messageId, { resolve, reject, timer });
      sendIt(messageId);
    });
  }

  private takeId(): number {
    for (let i = 0; i < MAX_PACKET_ID; i++) {
      const id = this.nextId;
      this.nextId = id === MAX_PACKET_ID ? 1 : id + 1;
      if (!this.waiters.has(id)) return id;
    }
    throw new LeanClientError('PROTOCOL', `${this.opts.clientId}: all 65,535 packet ids in use`);
  }

  private onPacket(packet: Packet): void {
    switch (packet.cmd) {
      case 'puback':
      case 'suback': {
        const waiter = this.waiters.get(packet.messageId ?? 0);
        if (!waiter) return;
        this.waiters.delete(packet.messageId!);
        clearTimeout(waiter.timer);
        waiter.resolve(packet.cmd === 'suback' ? packet.granted.map((g) => (typeof g === 'number' ? g : (g as { qos: number }).qos)) : undefined);
        return;
      }
      case 'publish': {
        if (packet.qos > 0) this.send({ cmd: 'puback', messageId: packet.messageId! });
        const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
        this.messageListener?.(packet.topic, payload);
        return;
      }
      default:
        return; // pingresp, and nothing else a server sends a 3.1.1 client
    }
  }

  private send(packet: Packet): void {
    if (!this.socket || this.closed) return;
    this.lastSentAt = Date.now();
    this.socket.write(mqttPacket.generate(packet));
  }

  private shut(err: LeanClientError | null): void {
    if (this.closed) return;
    this.closed = true;
    const failure = err ?? new LeanClientError('CLOSED', `${this.opts.clientId}: closed`);
    for (const [, waiter] of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(failure);
    }
    this.waiters.clear();
    this.socket?.destroy();
    this.closedListener?.(err);
  }
}
