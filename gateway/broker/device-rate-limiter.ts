// Messages per device and minute. A device over its limit is flooding (a
// stuck firmware loop, or someone with its secret): its heartbeats and status
// messages beyond the limit are dropped, but its events never are — a new
// panic from a flooding button is still a panic, and the seq rule already
// makes its repeats cheap. Flooding raises a trouble entry, cleared after a
// whole minute back under the limit.
import type { Clock } from '../clock.ts';

const WINDOW_MS = 60_000;

interface Window {
  start: number;
  count: number;
  /** In trouble: went over the limit, and no calm minute since. */
  flooding: boolean;
}

export interface FloodListener {
  flooding(deviceId: string, detail: string): void;
  calm(deviceId: string): void;
}

export class DeviceRateLimiter {
  /** One entry per device that has spoken: bounded by the registry. */
  private readonly windows = new Map<string, Window>();

  constructor(private readonly limitPerMinute: number, private readonly clock: Clock, private readonly listener: FloodListener) {}

  /** Counts one message; false when it is over the device's limit for this minute. */
  take(deviceId: string): boolean {
    const now = this.clock.now();
    let w = this.windows.get(deviceId);
    if (!w) this.windows.set(deviceId, (w = { start: now, count: 0, flooding: false }));
    if (now - w.start >= WINDOW_MS) {
      if (w.flooding && w.count <= this.limitPerMinute) {
        w.flooding = false;
        this.listener.calm(deviceId);
      }
      w.start = now;
      w.count = 0;
    }
    w.count++;
    if (w.count <= this.limitPerMinute) return true;
    if (!w.flooding) {
      w.flooding = true;
      this.listener.flooding(deviceId, `more than ${this.limitPerMinute} messages in a minute`);
    }
    return false;
  }

  /** Devices in flooding trouble now, for admins. */
  flooding(): string[] {
    return [...this.windows].filter(([, w]) => w.flooding).map(([id]) => id);
  }
}
