// A simulated RF receiver dongle with radio devices behind it, speaking the
// SH1 line protocol over a wire (a real pty, or SerialPortMock in tests): it
// boots, reports health, relays presses and heartbeats signed with each
// device's radio key, can misbehave on purpose (split, garbled, over-long
// lines), and reads the gateway's ACK lines back.
import {
  createLineSplitter, deriveAlertId, formatBoot, formatDeviceEvent, formatHeartbeat, formatReceiverHealth, parseLine,
  type AckFrame, type AlertState, type ConfigFrame, type EventType,
} from '../protocol/index.ts';

/** The cable: bytes to the gateway, and the bytes it writes back. */
export interface DongleWire {
  write(bytes: Buffer): void;
  onData(listener: (bytes: Buffer) => void): void;
}

export interface SimRadioDevice {
  id: string;
  radioKey: Buffer;
  /** The last seq sent; the next frame uses seq + 1. Default 0. */
  seq?: number;
}

export interface SimDongleOptions {
  receiverId: string;
  fw?: string;
  devices: SimRadioDevice[];
  now?: () => number;
}

export interface SentEvent {
  line: string;
  seq: number;
  alertId: string;
}

export class SimDongle {
  /** Every ACK line read back from the gateway, in order. */
  readonly acks: AckFrame[] = [];
  /** Every CFG line (heartbeat intervals) read back from the gateway, in order. */
  readonly configs: ConfigFrame[] = [];
  private readonly splitter = createLineSplitter();
  private readonly devices = new Map<string, { radioKey: Buffer; seq: number }>();
  private readonly ackListeners = new Set<(ack: AckFrame) => void>();

  constructor(private readonly wire: DongleWire, private readonly opts: SimDongleOptions) {
    for (const d of opts.devices) this.devices.set(d.id, { radioKey: d.radioKey, seq: d.seq ?? 0 });
  }

  /** Starts reading the gateway's lines. */
  start(): this {
    this.wire.onData((bytes) => {
      for (const out of this.splitter.push(bytes)) {
        if (!('line' in out)) continue;
        const parsed = parseLine(out.line);
        if (parsed.ok && parsed.frame.kind === 'CFG') this.configs.push(parsed.frame);
        if (!parsed.ok || parsed.frame.kind !== 'ACK') continue;
        const ack = parsed.frame;
        this.acks.push(ack);
        for (const listener of this.ackListeners) listener(ack);
      }
    });
    return this;
  }

  /** After a reset a dongle first ends whatever half line the gateway holds, then says BOOT. */
  boot(): void {
    this.send(`\r\n${formatBoot({ receiverId: this.opts.receiverId, fw: this.opts.fw ?? '2.1.0' })}`);
  }

  health(noiseFloorDbm = -112, queueDepth = 0): void {
    this.send(formatReceiverHealth({ receiverId: this.opts.receiverId, noiseFloorDbm, queueDepth }));
  }

  /** A press relayed from `deviceId` with its next seq (or `seq`); returns the line and the alert it should raise. */
  press(deviceId: string, type: EventType = 'panic', opts: { seq?: number; rssi?: number; battery?: number } = {}): SentEvent {
    const event = this.event(deviceId, type, opts);
    this.send(event.line);
    return event;
  }

  /** The EVT line of a press, not sent: for sending in pieces, twice, or late. */
  event(deviceId: string, type: EventType = 'panic', opts: { seq?: number; rssi?: number; battery?: number } = {}): SentEvent {
    const device = this.device(deviceId);
    const seq = opts.seq ?? device.seq + 1;
    device.seq = Math.max(device.seq, seq);
    const line = formatDeviceEvent({ deviceId, seq, type, ts: this.now(), rssi: opts.rssi ?? -61, battery: opts.battery ?? 87 }, device.radioKey);
    return { line, seq, alertId: deriveAlertId(deviceId, seq) };
  }

  heartbeat(deviceId: string, fw = '1.4.2'): string {
    const device = this.device(deviceId);
    device.seq++;
    const line = formatHeartbeat({ deviceId, seq: device.seq, ts: this.now(), rssi: -64, battery: 87, fw }, device.radioKey);
    this.send(line);
    return line;
  }

  /** Any bytes at all: a recorded frame replayed, a forgery, noise. */
  send(bytes: string | Buffer): void {
    this.wire.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** One line sent in pieces cut at `cuts`, a macrotask apart, as a slow UART delivers it. */
  async sendSplit(line: string, cuts: number[]): Promise<void> {
    let from = 0;
    for (const cut of [...cuts, line.length]) {
      this.send(line.slice(from, cut));
      from = cut;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** `bytes` of printable noise with no newline, then (unless `terminate` is false) the `\r\n` that ends it. */
  babble(bytes: number, terminate = true): void {
    const noise = Buffer.alloc(bytes, 'U');
    this.send(terminate ? Buffer.concat([noise, Buffer.from('\r\n')]) : noise);
  }

  /** Calls `listener` with every ACK read from now on; returns the unsubscribe. */
  onAck(listener: (ack: AckFrame) => void): () => void {
    this.ackListeners.add(listener);
    return () => this.ackListeners.delete(listener);
  }

  /** Resolves with the first ACK (already read or still to come) for `alertId` in `state`. */
  waitForAck(alertId: string, state: AlertState, timeoutMs = 10_000): Promise<AckFrame> {
    const match = (ack: AckFrame) => ack.alertId === alertId && ack.state === state;
    const seen = this.acks.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no ACK ${state} for ${alertId} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onAck((ack) => {
        if (!match(ack)) return;
        clearTimeout(timer);
        off();
        resolve(ack);
      });
    });
  }

  private device(id: string): { radioKey: Buffer; seq: number } {
    const device = this.devices.get(id);
    if (!device) throw new Error(`the simulated dongle has no device ${id}`);
    return device;
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }
}
