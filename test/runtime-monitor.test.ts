import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { LAG_SAMPLE_MS, RuntimeMonitor } from '../gateway/metrics/runtime-monitor.ts';

/** Holds the event loop the way a long transaction or a major GC would. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* busy */ }
}

describe('runtime monitor', () => {
  const monitor = new RuntimeMonitor();
  afterEach(() => monitor.stop());

  it('counts an event-loop stall by its length, once (not once per sample it missed), and keeps the longest', async () => {
    monitor.start();
    await sleep(LAG_SAMPLE_MS * 3);
    const before = monitor.status().eventLoop;
    // 25 samples' worth: counted per missed sample, this would be about 25 stalls.
    blockFor(500);
    await sleep(LAG_SAMPLE_MS * 3);
    const after = monitor.status().eventLoop;
    const long = after.stallsOver100Ms - before.stallsOver100Ms;
    // A busy machine may add a stall of its own in that second, hardly more.
    expect(long).toBeGreaterThanOrEqual(1);
    expect(long).toBeLessThanOrEqual(3);
    expect(after.stallsOver20Ms - before.stallsOver20Ms).toBeGreaterThanOrEqual(long);
    expect(after.maxLagMs).toBeGreaterThanOrEqual(400);
  });

  it('counts garbage-collector pauses by collector, cumulatively', async () => {
    monitor.start();
    let keep: unknown[] = [];
    // Short-lived garbage, tens of MB of it: young-generation collections must run.
    for (let i = 0; i < 400_000; i++) {
      keep.push({ i, s: `x${i}` });
      if (keep.length > 1000) keep = [];
    }
    // GC entries reach observers on a later turn.
    await sleep(50);
    const { gc, heapUsedMb } = monitor.status();
    expect(gc.minor.count).toBeGreaterThan(0);
    expect(gc.minor.totalMs).toBeGreaterThanOrEqual(gc.minor.maxMs);
    expect(heapUsedMb).toBeGreaterThan(0);
  });

  it('stops sampling when stopped', async () => {
    monitor.start();
    monitor.stop();
    const before = monitor.status().eventLoop;
    blockFor(120);
    await sleep(LAG_SAMPLE_MS * 3);
    expect(monitor.status().eventLoop).toEqual(before);
  });
});
