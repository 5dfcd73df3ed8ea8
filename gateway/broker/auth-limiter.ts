// Failed MQTT logins, counted per source address and per username over a
// minute. Past the limit a login is refused without running scrypt, so a
// password-guessing flood costs neither CPU nor a real device its access:
// a device whose secret already passed in this process still gets in (a cheap
// HMAC check, done by the caller), and a username under attack keeps one full
// check every few seconds, so its real device gets in on its next retry.
import type { Clock } from '../clock.ts';

const WINDOW_MS = 60_000;
/** Under attack, a username still gets one full check this often. */
const SLOW_CHECK_MS = 2000;
/** Keys tracked at most; the oldest windows are forgotten first. */
const MAX_KEYS = 20_000;

interface Window {
  start: number;
  failures: number;
  lastSlowCheck: number;
}

export type LimitedBy = 'address' | 'username';

export interface AuthFailureReport {
  windowSec: number;
  limitPerMinute: number;
  addresses: Array<{ key: string; failures: number; limited: boolean }>;
  usernames: Array<{ key: string; failures: number; limited: boolean }>;
}

export class AuthLimiter {
  private readonly byAddress = new Map<string, Window>();
  private readonly byUsername = new Map<string, Window>();

  constructor(private readonly limitPerMinute: number, private readonly clock: Clock) {}

  /** Which limit this login is over, if any. */
  limited(address: string | undefined, username: string | undefined): LimitedBy | null {
    if (address && this.over(this.byAddress, address)) return 'address';
    if (username && this.over(this.byUsername, username)) return 'username';
    return null;
  }

  /** For a username over its limit: may this attempt have a full check now? At most one per SLOW_CHECK_MS. */
  takeSlowCheck(username: string): boolean {
    const w = this.byUsername.get(username);
    const now = this.clock.now();
    if (!w || now - w.lastSlowCheck >= SLOW_CHECK_MS) {
      if (w) w.lastSlowCheck = now;
      return true;
    }
    return false;
  }

  failure(address: string | undefined, username: string | undefined): void {
    if (address) this.bump(this.byAddress, address);
    if (username) this.bump(this.byUsername, username);
  }

  /** For admins: who is failing right now. */
  report(top = 20): AuthFailureReport {
    const list = (m: Map<string, Window>) => [...m]
      .filter(([, w]) => this.fresh(w))
      .sort(([, a], [, b]) => b.failures - a.failures)
      .slice(0, top)
      .map(([key, w]) => ({ key, failures: w.failures, limited: w.failures >= this.limitPerMinute }));
    return { windowSec: WINDOW_MS / 1000, limitPerMinute: this.limitPerMinute, addresses: list(this.byAddress), usernames: list(this.byUsername) };
  }

  private fresh(w: Window): boolean {
    return this.clock.now() - w.start < WINDOW_MS;
  }

  private over(m: Map<string, Window>, key: string): boolean {
    const w = m.get(key);
    return w !== undefined && this.fresh(w) && w.failures >= this.limitPerMinute;
  }

  private bump(m: Map<string, Window>, key: string): void {
    const w = m.get(key);
    if (w && this.fresh(w)) {
      w.failures++;
      return;
    }
    m.delete(key);
    if (m.size >= MAX_KEYS) this.evict(m);
    m.set(key, { start: this.clock.now(), failures: 1, lastSlowCheck: Number.NEGATIVE_INFINITY });
  }

  private evict(m: Map<string, Window>): void {
    for (const [k, w] of m) if (!this.fresh(w)) m.delete(k);
    // Still full of fresh windows (a spread-out attack): forget the oldest, in insertion order.
    for (const k of m.keys()) {
      if (m.size < MAX_KEYS) break;
      m.delete(k);
    }
  }
}
