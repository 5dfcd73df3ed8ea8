// The metrics writer against a scripted sink, on a fake clock: batching by
// size and by time, the bounded buffer dropping its oldest points, holding
// while InfluxDB fails, and resuming when it is back.
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Counters } from '../gateway/metrics/counters.ts';
import { withDeadline, type InfluxPoint } from '../gateway/metrics/influx-client.ts';
import { DROPPED_COUNTER, InfluxWriter, type InfluxWriterOptions, type PointSink } from '../gateway/metrics/influx-writer.ts';
import { RingBuffer } from '../gateway/metrics/ring-buffer.ts';

const point = (n: number): InfluxPoint => ({ measurement: 'm', tags: {}, fields: { n }, timestamp: String(n) });
const ns = (points: InfluxPoint[]) => points.map((p) => p.fields.n as number);

/** A sink whose next answers the test decides: 'ok', 'fail', or 'hang' (settled later by release()). */
class ScriptedSink implements PointSink {
  readonly writes: InfluxPoint[][] = [];
  prepares = 0;
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  prepareMode: 'ok' | 'fail' = 'ok';
  private pending: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];

  async prepare(): Promise<void> {
    this.prepares++;
    if (this.prepareMode === 'fail') throw new Error('connect ECONNREFUSED');
  }

  write(points: InfluxPoint[]): Promise<void> {
    if (this.mode === 'fail') return Promise.reject(new Error('connect ECONNREFUSED'));
    if (this.mode === 'hang') return new Promise((resolve, reject) => this.pending.push({ resolve: () => { this.writes.push(points); resolve(); }, reject }));
    this.writes.push(points);
    return Promise.resolve();
  }

  release(outcome: 'ok' | 'fail'): void {
    for (const p of this.pending.splice(0)) {
      if (outcome === 'ok') p.resolve();
      else p.reject(new Error('timed out'));
    }
  }

  landed(): number[] {
    return this.writes.flatMap(ns);
  }
}

const OPTS: InfluxWriterOptions = { bufferSize: 10, batchSize: 4, flushIntervalMs: 1000, retryMaxMs: 8000 };

let sink: ScriptedSink;
let counters: Counters;
let writer: InfluxWriter;

function startWriter(opts: Partial<InfluxWriterOptions> = {}): InfluxWriter {
  writer = new InfluxWriter({ sink, clock: { now: () => Date.now() }, counters, log: pino({ level: 'silent' }) }, { ...OPTS, ...opts });
  writer.start();
  return writer;
}

beforeEach(() => {
  vi.useFakeTimers();
  sink = new ScriptedSink();
  counters = new Counters();
});

afterEach(async () => {
  sink.release('fail');
  await writer?.stop(0);
  vi.useRealTimers();
});

describe('RingBuffer', () => {
  it('keeps the newest items in order, overwriting the oldest when full', () => {
    const ring = new RingBuffer<number>(3);
    expect([1, 2, 3].map((n) => ring.push(n))).toEqual([false, false, false]);
    expect(ring.push(4)).toBe(true);
    expect(ring.toArray()).toEqual([2, 3, 4]);
    expect(ring.peek(2)).toEqual([2, 3]);
    ring.discard(2);
    ring.push(5);
    expect(ring.toArray()).toEqual([4, 5]);
    expect(ring.size).toBe(2);
  });
});

describe('batching', () => {
  it('creates the database first, then flushes what is buffered once per interval', async () => {
    startWriter();
    await vi.advanceTimersByTimeAsync(0);
    expect(sink.prepares).toBe(1);
    writer.add(point(1));
    writer.add(point(2));
    await vi.advanceTimersByTimeAsync(999);
    expect(sink.writes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(sink.writes.map(ns)).toEqual([[1, 2]]);
    expect(writer.status()).toMatchObject({ state: 'ok', buffered: 0, written: 2, dropped: 0 });
  });

  it('flushes a full batch without waiting for the interval, in batches of batchSize', async () => {
    startWriter();
    await vi.advanceTimersByTimeAsync(0);
    for (let n = 1; n <= 9; n++) writer.add(point(n));
    await vi.advanceTimersByTimeAsync(0);
    expect(sink.writes.map(ns)).toEqual([[1, 2, 3, 4], [5, 6, 7, 8], [9]]);
  });
});

describe('InfluxDB down or slow', () => {
  it('holds points up to the buffer size, then drops the oldest and counts them', async () => {
    sink.mode = 'fail';
    startWriter();
    for (let n = 1; n <= 13; n++) writer.add(point(n));
    await vi.advanceTimersByTimeAsync(0);
    expect(writer.status()).toMatchObject({ state: 'failing', buffered: 10, dropped: 3, written: 0, lastError: 'connect ECONNREFUSED' });
    expect(counters.get(DROPPED_COUNTER)).toBe(3);
  });

  it('backs off while failing and writes everything held once InfluxDB answers again', async () => {
    sink.mode = 'fail';
    startWriter();
    writer.add(point(1));
    await vi.advanceTimersByTimeAsync(0);
    const failedAt = writer.status().lastErrorAt;
    // Retries after 2 s, 4 s, then every 8 s (retryMaxMs): later ones are further apart.
    await vi.advanceTimersByTimeAsync(2000);
    expect(writer.status().lastErrorAt).toBe(failedAt! + 2000);
    await vi.advanceTimersByTimeAsync(4000);
    expect(writer.status().lastErrorAt).toBe(failedAt! + 6000);
    writer.add(point(2));
    sink.mode = 'ok';
    await vi.advanceTimersByTimeAsync(8000);
    expect(sink.landed()).toEqual([1, 2]);
    expect(writer.status()).toMatchObject({ state: 'ok', buffered: 0, written: 2, dropped: 0 });
  });

  it('keeps retrying the database creation while InfluxDB is down at start', async () => {
    sink.prepareMode = 'fail';
    startWriter();
    writer.add(point(1));
    await vi.advanceTimersByTimeAsync(0);
    expect(writer.status().state).toBe('failing');
    sink.prepareMode = 'ok';
    await vi.advanceTimersByTimeAsync(2000);
    expect(sink.prepares).toBe(2);
    expect(sink.landed()).toEqual([1]);
  });

  it('creates the database again when a write finds it gone (an InfluxDB restarted empty)', async () => {
    startWriter();
    await vi.advanceTimersByTimeAsync(0);
    const write = sink.write.bind(sink);
    let gone = true;
    sink.write = (points) => (gone ? Promise.reject(new Error('write: database not found: "safehaven"')) : write(points));
    sink.prepare = async () => {
      sink.prepares++;
      gone = false;
    };
    writer.add(point(1));
    await vi.advanceTimersByTimeAsync(1000 + 2000);
    expect(sink.prepares).toBe(2);
    expect(sink.landed()).toEqual([1]);
  });

  it('counts points overwritten during a write as dropped only if that write fails', async () => {
    startWriter({ batchSize: 10 });
    await vi.advanceTimersByTimeAsync(0);
    sink.mode = 'hang';
    for (let n = 1; n <= 10; n++) writer.add(point(n));
    await vi.advanceTimersByTimeAsync(0);
    // Batch 1–10 is in flight; 11 and 12 overwrite 1 and 2 in the ring.
    writer.add(point(11));
    writer.add(point(12));
    sink.release('ok');
    await vi.advanceTimersByTimeAsync(0);
    expect(writer.status()).toMatchObject({ dropped: 0, buffered: 2, written: 10 });

    sink.mode = 'hang';
    for (let n = 13; n <= 20; n++) writer.add(point(n));
    await vi.advanceTimersByTimeAsync(1000);
    // Batch 11–20 in flight; 21–23 overwrite 11–13, then the write fails: those three are lost.
    [21, 22, 23].forEach((n) => writer.add(point(n)));
    sink.release('fail');
    await vi.advanceTimersByTimeAsync(0);
    expect(writer.status()).toMatchObject({ dropped: 3, buffered: 10 });
    sink.mode = 'ok';
    await vi.advanceTimersByTimeAsync(2000);
    expect(sink.landed().slice(10)).toEqual([14, 15, 16, 17, 18, 19, 20, 21, 22, 23]);
  });

  it('gives up a call that never answers at its deadline', async () => {
    const never = new Promise<void>(() => undefined);
    const outcome = withDeadline(never, 2000, 'write').catch((err: { code: string }) => err.code);
    await vi.advanceTimersByTimeAsync(2000);
    expect(await outcome).toBe('INFLUX_TIMEOUT');
  });
});

describe('stop', () => {
  it('flushes what is buffered once more', async () => {
    startWriter();
    await vi.advanceTimersByTimeAsync(0);
    writer.add(point(1));
    await writer.stop(1000);
    expect(sink.landed()).toEqual([1]);
    writer.add(point(2));
    await vi.advanceTimersByTimeAsync(5000);
    expect(sink.landed()).toEqual([1]);
  });
});
