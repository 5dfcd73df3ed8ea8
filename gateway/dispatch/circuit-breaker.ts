// One breaker per police endpoint URL. While an endpoint keeps failing, its
// alerts wait in the store instead of each spending a full timeout on a dead
// server; one probe at a time tests whether it is back. The breaker only
// decides *when* to try: it never drops or reorders an alert by itself.
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. */
  failureThreshold: number;
  /** First open period; doubles with each failed probe up to `openMaxMs`. */
  openBaseMs: number;
  openMaxMs: number;
}

export type BreakerPhase = 'closed' | 'open' | 'half-open';

interface EndpointState {
  phase: BreakerPhase;
  consecutiveFailures: number;
  /** Failed probes in a row: sets how long the next open period lasts. */
  trips: number;
  openUntil: number;
  /** When the current run of failures began (for the "back after" log line). */
  failingSince: number | null;
  lastError: string | null;
}

export interface EndpointReport {
  url: string;
  phase: BreakerPhase;
  consecutiveFailures: number;
  failingSinceMs: number | null;
  openUntil: number | null;
  lastError: string | null;
}

export class CircuitBreaker {
  private readonly endpoints = new Map<string, EndpointState>();

  constructor(private readonly opts: BreakerOptions, private readonly clock: Clock, private readonly log: Logger) {}

  /**
   * May an attempt go to `url` now? In the half-open phase exactly one caller
   * gets `true` (the probe) until it reports back.
   */
  allow(url: string): boolean {
    const state = this.endpoints.get(url);
    if (!state || state.phase === 'closed') return true;
    if (state.phase === 'half-open') return false;
    if (this.clock.now() < state.openUntil) return false;
    state.phase = 'half-open';
    return true;
  }

  /** Open endpoints whose open period is over: each wants one probe now. */
  probesDue(): string[] {
    const now = this.clock.now();
    return [...this.endpoints].filter(([, s]) => s.phase === 'open' && s.openUntil <= now).map(([url]) => url);
  }

  /** When the next open period ends, for the dispatcher's timer. */
  nextProbeAt(): number | null {
    let next: number | null = null;
    for (const s of this.endpoints.values()) if (s.phase === 'open' && (next === null || s.openUntil < next)) next = s.openUntil;
    return next;
  }

  /** Returns true when this success ends an outage: the caller may bring the endpoint's backlog forward. */
  success(url: string): boolean {
    const state = this.endpoints.get(url);
    if (!state || state.failingSince === null) return false;
    const wasOpen = state.phase !== 'closed';
    this.log.warn({ url, downForMs: this.clock.now() - state.failingSince, failures: state.consecutiveFailures }, 'police endpoint answers again');
    this.endpoints.set(url, this.fresh());
    return wasOpen;
  }

  failure(url: string, error: string): void {
    const now = this.clock.now();
    let state = this.endpoints.get(url);
    if (!state) this.endpoints.set(url, (state = this.fresh()));
    state.consecutiveFailures++;
    state.lastError = error;
    if (state.failingSince === null) {
      state.failingSince = now;
      // Once per outage, not once per alert: an outage with 20,000 alerts is one line.
      this.log.error({ url, error, code: 'POLICE_UNREACHABLE' }, 'police endpoint failing: alerts are queued in the store and retried until delivered');
    }
    if (state.phase === 'half-open' || (state.phase === 'closed' && state.consecutiveFailures >= this.opts.failureThreshold)) {
      const openMs = Math.min(this.opts.openMaxMs, this.opts.openBaseMs * 2 ** Math.min(state.trips, 30));
      state.trips++;
      state.phase = 'open';
      state.openUntil = now + openMs;
      this.log.warn({ url, openMs, failures: state.consecutiveFailures, code: 'POLICE_BREAKER_OPEN' }, 'police endpoint breaker open: one probe at a time until it answers');
    }
  }

  report(): EndpointReport[] {
    const now = this.clock.now();
    return [...this.endpoints].map(([url, s]) => ({
      url,
      phase: s.phase,
      consecutiveFailures: s.consecutiveFailures,
      failingSinceMs: s.failingSince === null ? null : now - s.failingSince,
      openUntil: s.phase === 'open' ? s.openUntil : null,
      lastError: s.lastError,
    }));
  }

  failing(): string[] {
    return [...this.endpoints].filter(([, s]) => s.failingSince !== null).map(([url]) => url);
  }

  private fresh(): EndpointState {
    return { phase: 'closed', consecutiveFailures: 0, trips: 0, openUntil: 0, failingSince: null, lastError: null };
  }
}
