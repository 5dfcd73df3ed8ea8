// Gets metric points to InfluxDB without ever making the alert path wait:
// add() only appends to a bounded ring; a timer flushes it in batches (when a
// batch is full, or every flush interval). While InfluxDB is down or slow the
// ring holds the points, then overwrites the oldest and counts them; a failed
// flush is retried with backoff and the ring drains when InfluxDB is back.
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Counters } from './counters.ts';
import type { InfluxPoint } from './influx-client.ts';
import { RingBuffer } from './ring-buffer.ts';

/** What the writer needs of InfluxDB; each call settles within its own deadline. */
export interface PointSink {
  prepare(): Promise<void>;
  write(points: InfluxPoint[]): Promise<void>;
}

export interface InfluxWriterOptions {
  bufferSize: number;
  batchSize: number;
  flushIntervalMs: number;
  /** Longest wait between retries while InfluxDB is failing. */
  retryMaxMs: number;
}

export interface InfluxWriterDeps {
  sink: PointSink;
  clock: Clock;
  counters: Counters;
  log: Logger;
}

export type WriterState = 'starting' | 'ok' | 'failing';

export interface WriterStatus {
  state: WriterState;
  buffered: number;
  written: number;
  dropped: number;
  lastError: string | null;
  lastErrorAt: number | null;
}

export const DROPPED_COUNTER = 'influx_points_dropped_total';

export class InfluxWriter {
  private buffer: RingBuffer<InfluxPoint> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** A flush is already due on the next timer turn: a burst of add()s arms one timer, not one each. */
  private dueNow = false;
  private flushing: Promise<void> | null = null;
  private prepared = false;
  private stopped = true;
  private failures = 0;
  private failingSince = 0;
  private dropWarned = false;
  /** Points of the batch being written that are still at the head of the ring. */
  private inFlight = 0;
  /** Points of the batch being written that add() overwrote meanwhile: dropped only if the write fails. */
  private overwrittenInFlight = 0;
  private written = 0;
  private dropped = 0;
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;

  constructor(private readonly deps: InfluxWriterDeps, private readonly opts: InfluxWriterOptions) {}

  /** Starts flushing; creating the database is the first flush's job, so InfluxDB being down delays nothing. */
  start(): void {
    this.buffer ??= new RingBuffer(this.opts.bufferSize);
    this.stopped = false;
    this.schedule(0);
  }

  /** O(1), never throws, never waits: safe on the alert path. */
  add(point: InfluxPoint): void {
    const buffer = this.buffer;
    if (!buffer || this.stopped) return;
    if (buffer.push(point)) {
      if (this.inFlight > 0) {
        this.inFlight--;
        this.overwrittenInFlight++;
      } else {
        this.drop(1);
      }
    }
    if (buffer.size >= this.opts.batchSize && !this.dueNow && !this.flushing && this.failures === 0 && this.prepared) this.schedule(0);
  }

  status(): WriterStatus {
    const state: WriterState = this.failures > 0 ? 'failing' : this.prepared ? 'ok' : 'starting';
    return { state, buffered: this.buffer?.size ?? 0, written: this.written, dropped: this.dropped, lastError: this.lastError, lastErrorAt: this.lastErrorAt };
  }

  /** Stops the timer and makes one last flush, bounded by `graceMs`; what is left is dropped with the process. */
  async stop(graceMs: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const last = (async () => {
      await this.flushing;
      if (this.failures === 0 && (this.buffer?.size ?? 0) > 0) await this.flush();
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([last, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.dueNow = delayMs === 0;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.dueNow = false;
      this.flushing ??= this.flush().finally(() => {
        this.flushing = null;
        this.schedule(this.nextDelay());
      });
    }, delayMs);
    this.timer.unref();
  }

  private nextDelay(): number {
    if (this.failures === 0) return this.opts.flushIntervalMs;
    return Math.min(this.opts.retryMaxMs, this.opts.flushIntervalMs * 2 ** Math.min(this.failures, 20));
  }

  /** Writes full batches until the ring is empty; stops at the first failure, leaving the rest for the retry. */
  private async flush(): Promise<void> {
    const buffer = this.buffer!;
    try {
      if (!this.prepared) {
        await this.deps.sink.prepare();
        this.prepared = true;
      }
      while (buffer.size > 0) {
        const batch = buffer.peek(this.opts.batchSize);
        this.inFlight = batch.length;
        this.overwrittenInFlight = 0;
        try {
          await this.deps.sink.write(batch);
        } catch (err) {
          // add() already overwrote these in the ring: with the write failed, they are gone.
          this.drop(this.overwrittenInFlight);
          throw err;
        }
        buffer.discard(this.inFlight);
        this.inFlight = 0;
        this.written += batch.length;
      }
      this.recovered();
    } catch (err) {
      this.inFlight = this.overwrittenInFlight = 0;
      this.failed(err as Error);
    }
  }

  private recovered(): void {
    if (this.failures === 0) return;
    this.deps.log.info({ downForMs: this.deps.clock.now() - this.failingSince, dropped: this.dropped, buffered: this.buffer?.size }, 'InfluxDB answers again: metrics flushing resumed');
    this.failures = 0;
    this.dropWarned = false;
  }

  /** Logged once per outage, not once per retry. */
  private failed(err: Error & { code?: string }): void {
    this.lastError = err.message;
    this.lastErrorAt = this.deps.clock.now();
    // An InfluxDB restarted empty: create the database again before the next write.
    if (/database not found/i.test(err.message)) this.prepared = false;
    if (this.failures++ === 0) {
      this.failingSince = this.lastErrorAt;
      this.deps.log.warn({ err: err.message, code: err.code, buffered: this.buffer?.size, capacity: this.opts.bufferSize }, 'InfluxDB write failed: metrics are buffered and retried; alerts are not affected');
    }
  }

  private drop(n: number): void {
    if (n === 0) return;
    if (!this.dropWarned) this.deps.log.warn({ capacity: this.opts.bufferSize }, 'metrics buffer full: dropping the oldest points');
    this.dropWarned = true;
    this.dropped += n;
    this.deps.counters.inc(DROPPED_COUNTER, undefined, n);
  }
}
