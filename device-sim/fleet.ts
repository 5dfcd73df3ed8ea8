// N simulated devices, each on its own MQTT connection with its own
// credentials, as the gateway sees a city: they connect (a bounded number at
// a time), subscribe to their ack and config topics, say "online" (with
// "offline" as their will), heartbeat per supervision class, press when told,
// keep every unacknowledged press and resend it after a reconnect, and count
// everything in SimStats. One shared timer drives heartbeats, keepalives and
// the flaky network, so 50,000 devices cost 50,000 sockets and no more timers.
import { AckPayload, ConfigPayload, parseJsonPayload, stateRank, topics, type EventType } from '../protocol/index.ts';
import { deriveAlertId } from '../protocol/index.ts';
import { LeanClient, LeanClientError } from './lean-client.ts';
import {
  dropsThisTick, HeartbeatWheel, initialSeq, linkFate, reconnectDelayMs, TRIP_TYPE,
  type FlakyPolicy, type SimDeviceSpec, type SupervisionClass,
} from './scenarios.ts';
import { SimStats } from './sim-stats.ts';

export interface FleetOptions {
  host: string;
  port: number;
  /** Source addresses, used round-robin (127.0.0.x for more than ~28,000 connections). */
  localAddresses?: string[];
  devices: SimDeviceSpec[];
  /** Heartbeat interval per supervision class; default: what the gateway's retained config says, else 60 s. */
  heartbeatSec?: Partial<Record<SupervisionClass, number>>;
  /** Connections being set up at once. */
  connectConcurrency?: number;
  keepaliveSec?: number;
  flaky?: FlakyPolicy | null;
  /** Per-device clock offsets (ms), by fleet index; absent = a correct clock. */
  clockSkewMs?: readonly number[];
  /**
   * Count a press as delivered when the gateway acks `acknowledged` (the
   * police answered 2xx). Off when the caller hosts the police endpoint and
   * reports receipts itself through `stats.delivered`.
   */
  deliveredByAck?: boolean;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  ackTimeoutMs?: number;
  random?: () => number;
  /** performance.now(), or a fake. */
  now?: () => number;
}

interface Pending {
  seq: number;
  alertId: string;
  payload: string;
}

interface DeviceState {
  spec: SimDeviceSpec;
  index: number;
  client: LeanClient | null;
  seq: number;
  skewMs: number;
  /** Events without their PUBACK yet, resent after a reconnect. */
  pending: Map<number, Pending>;
  attempt: number;
  reconnectTimer: NodeJS.Timeout | null;
}

const TICK_MS = 100;
const DEFAULT_HEARTBEAT_SEC = 60;

export class Fleet {
  readonly stats = new SimStats();
  private readonly devices: DeviceState[];
  private readonly random: () => number;
  private readonly now: () => number;
  private wheels: HeartbeatWheel[] = [];
  private timer: NodeJS.Timeout | null = null;
  private wheelStart = 0;
  private lastTick = 0;
  private keepaliveCursor = 0;
  private stopping = false;
  /** heartbeatSec from the gateway's retained config, per class, as first heard. */
  private readonly configured = new Map<SupervisionClass, number>();

  constructor(private readonly opts: FleetOptions) {
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => performance.now());
    const seq = initialSeq(Date.now());
    this.devices = opts.devices.map((spec, index) => ({
      spec, index, client: null, seq, skewMs: opts.clockSkewMs?.[index] ?? 0, pending: new Map(), attempt: 0, reconnectTimer: null,
    }));
  }

  get size(): number {
    return this.devices.length;
  }

  spec(index: number): SimDeviceSpec {
    return this.devices[index]!.spec;
  }

  /** Connects every device (retrying refused or failed connects with backoff); `onProgress` after each one. */
  async connectAll(onProgress?: () => void): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < this.devices.length && !this.stopping) {
        const d = this.devices[next++]!;
        while (!this.stopping && !(await this.connectOne(d))) {
          d.attempt++;
          await new Promise((r) => setTimeout(r, reconnectDelayMs(d.attempt, this.opts.reconnectBaseMs ?? 200, this.opts.reconnectMaxMs ?? 5000, this.random)));
        }
        d.attempt = 0;
        onProgress?.();
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.connectConcurrency ?? 200, this.devices.length) }, worker));
  }

  /** Starts heartbeats, keepalives and (if flaky) random drops. */
  start(): void {
    const byClass = new Map<SupervisionClass, number[]>();
    for (const d of this.devices) {
      const list = byClass.get(d.spec.supervision) ?? [];
      list.push(d.index);
      byClass.set(d.spec.supervision, list);
    }
    this.wheels = [...byClass].map(([cls, members]) => new HeartbeatWheel(this.heartbeatSec(cls), members));
    this.wheelStart = this.now();
    this.lastTick = 0;
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** The interval a class heartbeats at. */
  heartbeatSec(cls: SupervisionClass): number {
    return this.opts.heartbeatSec?.[cls] ?? this.configured.get(cls) ?? DEFAULT_HEARTBEAT_SEC;
  }

  /** One press (a new seq) from device `index`; returns its alert id. Sent now, or on reconnect if the device is down. */
  press(index: number, type?: EventType): string {
    const d = this.devices[index]!;
    const eventType = type ?? TRIP_TYPE[d.spec.type] ?? 'test';
    const seq = ++d.seq;
    const alertId = deriveAlertId(d.spec.id, seq);
    const payload = `{"seq":${seq},"ts":${Date.now() + d.skewMs},"type":"${eventType}"}`;
    const p: Pending = { seq, alertId, payload };
    d.pending.set(seq, p);
    this.stats.pressed(alertId, this.now());
    if (d.skewMs !== 0) this.stats.skewedPresses++;
    if (d.client?.connected) this.sendEvent(d, p, false);
    return alertId;
  }

  /** One heartbeat from device `index` now, outside its schedule (benchmarks measure their cost this way). */
  heartbeatNow(index: number): void {
    this.heartbeat(this.devices[index]!);
  }

  /** True while a press of device `index` waits for its PUBACK. */
  hasPending(index: number): boolean {
    return this.devices[index]!.pending.size > 0;
  }

  /** Every connection drops at once (a gateway restart, a network blip); each device reconnects with backoff. */
  dropAll(): void {
    for (const d of this.devices) if (d.client?.connected) d.client.drop();
  }

  /** Devices connected right now. */
  connectedCount(): number {
    let n = 0;
    for (const d of this.devices) if (d.client?.connected) n++;
    return n;
  }

  /** Resolves when `done()` holds, checked every 20 ms; rejects after `timeoutMs`. */
  async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = this.now() + timeoutMs;
    while (!done()) {
      if (this.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Clean goodbyes: DISCONNECT, so no wills fire. */
  stop(): void {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const d of this.devices) {
      if (d.reconnectTimer) clearTimeout(d.reconnectTimer);
      d.client?.end();
    }
  }

  private async connectOne(d: DeviceState): Promise<boolean> {
    const { spec } = d;
    const addresses = this.opts.localAddresses;
    const client = new LeanClient({
      host: this.opts.host, port: this.opts.port,
      localAddress: addresses?.length ? addresses[d.index % addresses.length] : undefined,
      clientId: spec.id, username: spec.id, password: spec.secret,
      keepaliveSec: this.opts.keepaliveSec ?? 3 * this.heartbeatSec(spec.supervision),
      connectTimeoutMs: 30_000, ackTimeoutMs: this.opts.ackTimeoutMs ?? 30_000,
      will: { topic: topics.status(spec.id), payload: '"offline"', qos: 1, retain: true },
    });
    client.onMessage((topic, payload) => this.onMessage(d, topic, payload));
    try {
      await client.connect();
      await client.subscribe([topics.ack(spec.id), topics.config(spec.id)]);
      await client.publish(topics.status(spec.id), '"online"', 1);
    } catch (err) {
      client.drop();
      this.stats.connectFailures++;
      if (err instanceof LeanClientError && err.code === 'CONNECT_REFUSED') this.stats.refused++;
      return false;
    }
    d.client = client;
    this.stats.connected++;
    this.stats.peakConnected = Math.max(this.stats.peakConnected, this.stats.connected);
    client.onClose(() => this.onClosed(d, client));
    for (const p of d.pending.values()) this.sendEvent(d, p, true);
    return true;
  }

  private onClosed(d: DeviceState, client: LeanClient): void {
    if (d.client !== client) return;
    d.client = null;
    this.stats.connected--;
    if (this.stopping) return;
    this.stats.drops++;
    this.scheduleReconnect(d);
  }

  private scheduleReconnect(d: DeviceState): void {
    d.attempt++;
    const delay = reconnectDelayMs(d.attempt, this.opts.reconnectBaseMs ?? 200, this.opts.reconnectMaxMs ?? 5000, this.random);
    d.reconnectTimer = setTimeout(() => {
      d.reconnectTimer = null;
      if (this.stopping) return;
      void this.connectOne(d).then((ok) => {
        if (ok) {
          d.attempt = 0;
          this.stats.reconnects++;
        } else if (!this.stopping) {
          this.scheduleReconnect(d);
        }
      });
    }, delay);
  }

  private sendEvent(d: DeviceState, p: Pending, resend: boolean): void {
    const client = d.client!;
    this.stats.publishes++;
    if (resend) this.stats.resends++;
    client.publish(topics.event(d.spec.id), p.payload, 1, resend).then(() => {
      d.pending.delete(p.seq);
      this.stats.acked(p.alertId, this.now());
    }, (err: LeanClientError) => {
      // No PUBACK: the press stays pending and goes out again after the reconnect.
      if (err.code === 'ACK_TIMEOUT') client.drop();
    });
    // A lost packet on a flaky link: the connection is cut right behind it, so it may or may not have arrived.
    if (linkFate(this.opts.flaky ?? null, this.random) === 'lose') client.drop();
  }

  private onMessage(d: DeviceState, topic: string, payload: Buffer): void {
    if (topic === topics.ack(d.spec.id)) {
      this.stats.ackMessages++;
      if (this.opts.deliveredByAck === false) return;
      const ack = parseJsonPayload(AckPayload, payload);
      if (ack.ok && stateRank(ack.value.state) >= stateRank('acknowledged')) this.stats.delivered(ack.value.alertId, this.now());
      return;
    }
    if (topic === topics.config(d.spec.id)) {
      const config = parseJsonPayload(ConfigPayload, payload);
      if (config.ok && !this.configured.has(d.spec.supervision)) this.configured.set(d.spec.supervision, config.value.heartbeatSec);
    }
  }

  private tick(): void {
    const t = this.now() - this.wheelStart;
    for (const wheel of this.wheels) {
      for (const index of wheel.due(this.lastTick, t)) this.heartbeat(this.devices[index]!);
    }
    this.lastTick = t;
    // Keepalives: a slice of the fleet per tick, so that each device is looked at about once a second.
    const wallNow = Date.now();
    const slice = Math.ceil(this.devices.length / (1000 / TICK_MS));
    for (let k = 0; k < slice && this.devices.length > 0; k++) {
      this.keepaliveCursor = (this.keepaliveCursor + 1) % this.devices.length;
      this.devices[this.keepaliveCursor]!.client?.keepAlive(wallNow);
    }
    const drops = dropsThisTick(this.opts.flaky ?? null, this.stats.connected, TICK_MS, this.random);
    for (let k = 0; k < drops; k++) {
      const d = this.devices[Math.floor(this.random() * this.devices.length)]!;
      d.client?.drop();
    }
  }

  private heartbeat(d: DeviceState): void {
    if (!d.client?.connected) return;
    this.stats.heartbeats++;
    const seq = ++d.seq;
    if (linkFate(this.opts.flaky ?? null, this.random) === 'lose') {
      this.stats.heartbeatsLost++;
      return;
    }
    void d.client.publish(topics.heartbeat(d.spec.id), `{"seq":${seq},"ts":${Date.now() + d.skewMs},"battery":87,"rssi":-60,"fw":"sim-1.0"}`, 0);
  }
}
