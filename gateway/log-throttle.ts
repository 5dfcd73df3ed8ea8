// "Logged once per burst": the first occurrence of a kind of bad input is
// logged in full; repeats within the window are only counted and summarised
// when the window ends. A device spewing garbage costs a counter, not a disk
// full of log lines.
import type { Logger } from 'pino';

export class LogThrottle {
  private readonly windows = new Map<string, { until: number; suppressed: number }>();

  constructor(private readonly log: Logger, private readonly windowMs = 10_000, private readonly now: () => number = Date.now) {}

  warn(key: string, obj: Record<string, unknown>, msg: string): void {
    const t = this.now();
    const w = this.windows.get(key);
    if (w && t < w.until) {
      w.suppressed++;
      return;
    }
    if (w && w.suppressed > 0) obj = { ...obj, suppressedSinceLast: w.suppressed };
    this.windows.set(key, { until: t + this.windowMs, suppressed: 0 });
    // Bounded: a key per (reason, device) would grow with the number of
    // hostile devices; forget old windows when the map gets large.
    if (this.windows.size > 10_000) this.prune(t);
    this.log.warn(obj, msg);
  }

  private prune(t: number): void {
    for (const [k, w] of this.windows) if (w.until <= t) this.windows.delete(k);
  }
}
