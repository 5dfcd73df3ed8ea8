// One configured RF receiver dongle: keeps its serial port open, reopening it
// with backoff after an unplug or an error; turns its bytes into capped lines
// for the uplink; carries ack lines back; and tells how the receiver is doing.
import { ReadlineParser } from '@serialport/parser-readline';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { SerialPort } from 'serialport';
import type { ReceiverBootFrame, ReceiverHealthFrame } from '../../protocol/index.ts';
import { isoTime as iso, type Clock } from '../clock.ts';
import type { SerialPortConfig } from '../config.ts';
import { LogThrottle } from '../log-throttle.ts';
import type { Counters } from '../metrics/counters.ts';
import { LineCap } from './line-cap.ts';

/** What the link needs of a port: SerialPort, or SerialPortMock in tests. */
export interface SerialPortLike extends Duplex {
  readonly isOpen: boolean;
  open(callback: (err: Error | null) => void): void;
  close(callback?: (err: Error | null) => void): void;
}

export type PortFactory = (opts: { path: string; baudRate: number }) => SerialPortLike;

export const openSystemPort: PortFactory = ({ path, baudRate }) => new SerialPort({ path, baudRate, autoOpen: false });

/** Delay before reopening: `minMs`, doubling with each failure in a row, at most `maxMs`. */
export interface ReopenPolicy {
  minMs: number;
  maxMs: number;
}

export const REOPEN_POLICY: ReopenPolicy = { minMs: 500, maxMs: 10_000 };

/** Ack bytes waiting for the wire: ~60 acks, 0.35 s at 115200 baud. Past it an ack is dropped (the device retransmits). */
export const MAX_PENDING_WRITE_BYTES = 4096;

/**
 * CFG lines wait in their own queue and go out only while the write buffer
 * is under half full, so acks always have room: after a BOOT a dongle with
 * hundreds of devices behind it is sent a CFG for each, and a panic's
 * "help is coming" must not queue behind them (nor be dropped as backlog).
 */
const CONFIG_BUFFER_SHARE = MAX_PENDING_WRITE_BYTES / 2;
/** CFG lines held at most (one per radio device behind the dongle); past it they are refused (counted by the caller). */
const MAX_QUEUED_CONFIG_LINES = 10_000;
/** How often a waiting CFG queue looks at the buffer again: at 115200 baud 2 KiB drains in ~180 ms. */
const CONFIG_PACE_MS = 20;

/** Where the link's lines go: the uplink. */
export interface LinkSink {
  line(link: PortLink, line: string): void;
  overflow(link: PortLink, droppedBytes: number): void;
}

export interface ReceiverInfo {
  id: string;
  fw: string | null;
  bootedAt: number | null;
  noiseFloorDbm: number | null;
  queueDepth: number | null;
  healthAt: number | null;
}

export type LinkState = 'stopped' | 'opening' | 'open' | 'closed';
export type SendOutcome = 'sent' | 'port-closed' | 'backlog';

/** What happened to a link: its port opened or closed, or it has been down past the trouble threshold. */
export type LinkEvent = 'up' | 'down' | 'trouble';

export interface PortLinkDeps {
  factory: PortFactory;
  sink: LinkSink;
  /** Supervision hears of every up, down and trouble (the receiver-offline trouble entry). */
  watch?: (link: PortLink, event: LinkEvent) => void;
  clock: Clock;
  counters: Counters;
  log: Logger;
  reopen: ReopenPolicy;
}

export class PortLink {
  private port: SerialPortLike | null = null;
  private chain: { cap: LineCap; lines: ReadlineParser } | null = null;
  private state: LinkState = 'stopped';
  private since = 0;
  /** When the receiver was last known up, if it is not now; null while open. */
  private offlineSince: number | null = null;
  private trouble = false;
  /** Failed opens and closes since the last good open: the backoff exponent. */
  private failures = 0;
  private lastError: string | null = null;
  private lastLineAt: number | null = null;
  private reopenTimer: NodeJS.Timeout | null = null;
  private nextReopenAt: number | null = null;
  private troubleTimer: NodeJS.Timeout | null = null;
  private receiver: ReceiverInfo | null = null;
  private configQueue: string[] = [];
  private configHead = 0;
  private configTimer: NodeJS.Timeout | null = null;
  private readonly throttle: LogThrottle;

  constructor(
    readonly config: Required<SerialPortConfig>,
    private readonly offlineTroubleSec: number,
    private readonly deps: PortLinkDeps,
  ) {
    this.throttle = new LogThrottle(deps.log, undefined, () => deps.clock.now());
  }

  get name(): string {
    return this.config.name;
  }

  start(): void {
    this.since = this.deps.clock.now();
    this.markOffline(this.since);
    this.open();
  }

  /** Closes the port and cancels every timer; the link stays down. */
  async stop(): Promise<void> {
    this.state = 'stopped';
    this.clearTimers();
    const port = this.detach();
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  /** Writes one line (an ack) to the dongle, or says why not. Never waits. */
  send(line: string): SendOutcome {
    const port = this.port;
    if (!port || this.state !== 'open') return 'port-closed';
    if (port.writableLength + line.length > MAX_PENDING_WRITE_BYTES) return 'backlog';
    port.write(line);
    return 'sent';
  }

  /** Queues a CFG line behind any ack (see CONFIG_BUFFER_SHARE). Never waits. */
  sendWhenIdle(line: string): SendOutcome {
    if (!this.port || this.state !== 'open') return 'port-closed';
    if (this.configQueue.length - this.configHead >= MAX_QUEUED_CONFIG_LINES) return 'backlog';
    this.configQueue.push(line);
    this.pumpConfigs();
    return 'sent';
  }

  private pumpConfigs(): void {
    const port = this.port;
    if (!port || this.state !== 'open') return this.dropConfigs();
    while (this.configHead < this.configQueue.length && port.writableLength + this.configQueue[this.configHead]!.length <= CONFIG_BUFFER_SHARE) {
      port.write(this.configQueue[this.configHead++]!);
    }
    if (this.configHead === this.configQueue.length) {
      this.configQueue = [];
      this.configHead = 0;
    } else {
      this.configTimer ??= setTimeout(() => {
        this.configTimer = null;
        this.pumpConfigs();
      }, CONFIG_PACE_MS);
    }
  }

  /** A closed port forgets its CFG queue: the dongle is sent them all again after its next BOOT. */
  private dropConfigs(): void {
    if (this.configTimer) clearTimeout(this.configTimer);
    this.configTimer = null;
    this.configQueue = [];
    this.configHead = 0;
  }

  /** The dongle's id, once it has named itself by a boot or health line. */
  receiverId(): string | null {
    return this.receiver?.id ?? null;
  }

  receiverOnline(receiverId: string): boolean {
    return this.state === 'open' && this.receiver?.id === receiverId;
  }

  noteBoot(frame: ReceiverBootFrame, at: number): void {
    this.receiver = { id: frame.receiverId, fw: frame.fw, bootedAt: at, noiseFloorDbm: null, queueDepth: null, healthAt: null };
  }

  noteHealth(frame: ReceiverHealthFrame, at: number): void {
    // A health line from a receiver whose boot was missed (the gateway started later) still names it.
    const known = this.receiver?.id === frame.receiverId ? this.receiver : null;
    this.receiver = {
      id: frame.receiverId, fw: known?.fw ?? null, bootedAt: known?.bootedAt ?? null,
      noiseFloorDbm: frame.noiseFloorDbm, queueDepth: frame.queueDepth, healthAt: at,
    };
  }

  status() {
    const r = this.receiver;
    return {
      name: this.name, path: this.config.path, baudRate: this.config.baudRate,
      state: this.state, online: this.state === 'open', since: iso(this.since),
      offlineSince: iso(this.offlineSince), trouble: this.trouble, lastError: this.lastError,
      failuresInARow: this.failures, nextReopenAt: iso(this.nextReopenAt), lastLineAt: iso(this.lastLineAt),
      receiver: r && { ...r, bootedAt: iso(r.bootedAt), healthAt: iso(r.healthAt) },
    };
  }

  private open(): void {
    this.reopenTimer = null;
    this.nextReopenAt = null;
    this.state = 'opening';
    let port: SerialPortLike;
    try {
      port = this.deps.factory({ path: this.config.path, baudRate: this.config.baudRate });
    } catch (err) {
      this.failed(err as Error);
      return;
    }
    this.port = port;
    // Every port keeps an error listener to its end: an 'error' with none would crash the process.
    port.on('error', (err: Error) => this.portError(port, err));
    port.on('close', (err: Error | null) => this.down(port, err ?? new Error('port closed')));
    // A pty whose other end went away can end the stream without a close.
    port.on('end', () => this.down(port, new Error('end of stream')));
    port.open((err) => (err ? this.down(port, err) : this.up(port)));
  }

  private up(port: SerialPortLike): void {
    if (port !== this.port) {
      port.close(); // opened after stop() or a newer attempt: not ours any more
      return;
    }
    const now = this.deps.clock.now();
    const downFor = this.offlineSince === null ? 0 : now - this.offlineSince;
    this.state = 'open';
    this.since = now;
    this.failures = 0;
    this.lastError = null;
    this.offlineSince = null;
    if (this.troubleTimer) clearTimeout(this.troubleTimer);
    this.troubleTimer = null;
    this.deps.counters.inc('serial_port_opens_total', { port: this.name });
    if (this.trouble) {
      this.trouble = false;
      this.deps.log.info({ path: this.config.path, downMs: downFor, code: 'SERIAL_RECEIVER_BACK' }, `serial port ${this.name} open again after ${Math.round(downFor / 1000)} s: receiver back`);
    } else {
      this.deps.log.info({ path: this.config.path, downMs: downFor }, `serial port ${this.name} open`);
    }
    const cap = new LineCap((dropped) => this.deps.sink.overflow(this, dropped));
    const lines = new ReadlineParser({ delimiter: '\n', encoding: 'latin1' });
    lines.on('data', (line: string) => {
      this.lastLineAt = this.deps.clock.now();
      this.deps.sink.line(this, line);
    });
    port.pipe(cap).pipe(lines);
    this.chain = { cap, lines };
    this.deps.watch?.(this, 'up');
  }

  private down(port: SerialPortLike, err: Error): void {
    if (port !== this.port) return; // a stale port, or this one already handled
    const wasOpen = this.state === 'open';
    this.detach();
    if (port.isOpen) port.close();
    if (wasOpen) {
      this.deps.counters.inc('serial_port_closes_total', { port: this.name });
      this.deps.log.warn({ path: this.config.path, err: err.message, code: 'SERIAL_PORT_CLOSED' }, `serial port ${this.name} closed: receiver offline, reopening`);
      this.deps.watch?.(this, 'down');
    }
    this.failed(err);
  }

  private failed(err: Error): void {
    if (this.state === 'stopped') return;
    const now = this.deps.clock.now();
    this.state = 'closed';
    this.since = now;
    this.lastError = err.message;
    this.failures++;
    this.markOffline(now);
    const delay = Math.min(this.deps.reopen.maxMs, this.deps.reopen.minMs * 2 ** Math.min(this.failures - 1, 30));
    // The first failure in a row is news; the retries are not (the trouble error escalates a long outage).
    this.deps.log[this.failures === 1 ? 'warn' : 'debug']({ path: this.config.path, err: err.message, retryInMs: delay, code: 'SERIAL_PORT_UNAVAILABLE' },
      `serial port ${this.name} unavailable, retrying with backoff: ${err.message}`);
    this.nextReopenAt = now + delay;
    this.reopenTimer = setTimeout(() => this.open(), delay);
  }

  /** Starts the trouble clock at the first moment the receiver is not up. */
  private markOffline(now: number): void {
    if (this.offlineSince !== null) return;
    this.offlineSince = now;
    this.troubleTimer = setTimeout(() => this.raiseTrouble(), this.offlineTroubleSec * 1000);
  }

  private raiseTrouble(): void {
    this.troubleTimer = null;
    this.trouble = true;
    this.deps.counters.inc('serial_receiver_trouble_total', { port: this.name });
    this.deps.log.error({
      path: this.config.path, receiverId: this.receiver?.id ?? null, offlineSince: iso(this.offlineSince), lastError: this.lastError,
      code: 'SERIAL_RECEIVER_OFFLINE',
    }, `RF receiver on ${this.name} offline for more than ${this.offlineTroubleSec} s: radio buttons and sensors behind it are not heard`);
    this.deps.watch?.(this, 'trouble');
  }

  private portError(port: SerialPortLike, err: Error): void {
    this.deps.counters.inc('serial_port_errors_total', { port: this.name });
    if (port !== this.port) return;
    this.throttle.warn(`${this.name}:error`, { path: this.config.path, err: err.message, code: 'SERIAL_PORT_ERROR' }, `serial port ${this.name} error: ${err.message}`);
  }

  /** Forgets the current port and its line chain; the caller closes the port if it is open. */
  private detach(): SerialPortLike | null {
    const port = this.port;
    this.port = null;
    if (port && this.chain) {
      port.unpipe(this.chain.cap);
      this.chain.cap.destroy();
      this.chain.lines.destroy();
    }
    this.chain = null;
    this.dropConfigs();
    return port;
  }

  private clearTimers(): void {
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    if (this.troubleTimer) clearTimeout(this.troubleTimer);
    this.reopenTimer = this.troubleTimer = null;
    this.nextReopenAt = null;
    this.dropConfigs();
  }
}
