// What the JavaScript runtime itself costs the event loop: garbage-collector
// pauses and event-loop stalls, counted since the gateway is ready so that
// any two readings of /healthz can be subtracted (the city bench does, around
// its presses). Every alert waits behind a pause like any other work, so a
// stall here is a stall of the alert path; an operator sees it without a
// profiler. HealthSampler's event-loop histogram cannot serve: it is reset
// at every InfluxDB sample, and a histogram cannot count separate stalls.
import { constants, PerformanceObserver, type NodeGCPerformanceDetail, type PerformanceEntry } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

/**
 * Lag is sampled this often by an unref'd timer. A stall shows as the next
 * sample's lateness, less the part of the interval it overlapped: every stall
 * of threshold + this is counted, a shorter one in proportion to its length.
 * A wake-up costs ~0.6 ms of CPU on this 2-core VM when the loop is idle: 20 ms
 * is ~1.2 % of a core on an idle gateway (10 ms was twice that); a busy loop
 * is awake anyway.
 */
export const LAG_SAMPLE_MS = 20;
/** Lateness at least this long is counted (beyond a scavenge's few ms), and at least the long one (a major GC, a big transaction). */
const STALL_MS = 20;
const LONG_STALL_MS = 100;

export interface PauseStats {
  count: number;
  totalMs: number;
  maxMs: number;
}

export interface RuntimeStatus {
  /**
   * Main-thread pauses by collector: `minor` (scavenges), `major`
   * (mark-compact), `incremental` (the start of incremental marking; its
   * later steps are not reported by V8 and show only as event-loop lateness).
   * Weak-callback entries are left out.
   */
  gc: { minor: PauseStats; major: PauseStats; incremental: PauseStats };
  /** Times a timer ran this late or later (what a press arriving then also waited), and the latest it ran. */
  eventLoop: { sampleMs: number; stallsOver20Ms: number; stallsOver100Ms: number; maxLagMs: number };
  heapUsedMiB: number;
}

const KINDS: ReadonlyMap<number, keyof RuntimeStatus['gc']> = new Map([
  [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
]);

const round = (ms: number) => Math.round(ms * 10) / 10;
const zero = (): PauseStats => ({ count: 0, totalMs: 0, maxMs: 0 });

export class RuntimeMonitor {
  private observer: PerformanceObserver | null = null;
  private timer: NodeJS.Timeout | null = null;
  private gc = { minor: zero(), major: zero(), incremental: zero() };
  private stalls = 0;
  private longStalls = 0;
  private maxLagMs = 0;
  private lastTick = 0;

  start(): void {
    if (this.timer) return;
    this.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) this.notePause(entry);
    });
    this.observer.observe({ entryTypes: ['gc'] });
    this.lastTick = performance.now();
    this.timer = setInterval(() => this.tick(), LAG_SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    this.observer?.disconnect();
    this.observer = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  status(): RuntimeStatus {
    const copy = (s: PauseStats): PauseStats => ({ count: s.count, totalMs: round(s.totalMs), maxMs: round(s.maxMs) });
    return {
      gc: { minor: copy(this.gc.minor), major: copy(this.gc.major), incremental: copy(this.gc.incremental) },
      eventLoop: { sampleMs: LAG_SAMPLE_MS, stallsOver20Ms: this.stalls, stallsOver100Ms: this.longStalls, maxLagMs: round(this.maxLagMs) },
      heapUsedMiB: Math.round(getHeapStatistics().used_heap_size / 1048576),
    };
  }

  private notePause(entry: PerformanceEntry): void {
    const kind = KINDS.get((entry as PerformanceEntry & { detail?: NodeGCPerformanceDetail }).detail?.kind ?? -1);
    if (!kind) return;
    const stats = this.gc[kind];
    stats.count++;
    stats.totalMs += entry.duration;
    stats.maxMs = Math.max(stats.maxMs, entry.duration);
  }

  private tick(): void {
    const now = performance.now();
    const lag = now - this.lastTick - LAG_SAMPLE_MS;
    this.lastTick = now;
    if (lag <= 0) return;
    this.maxLagMs = Math.max(this.maxLagMs, lag);
    if (lag >= STALL_MS) this.stalls++;
    if (lag >= LONG_STALL_MS) this.longStalls++;
  }
}
