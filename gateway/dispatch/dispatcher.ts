// Delivers the outbox to police endpoints: highest priority first, then
// oldest; at most `concurrency` POSTs in flight; failures retried with
// exponential backoff and jitter, without end, until a 2xx or until the alert
// is resolved. The backlog lives in the store, never in RAM: each pump reads
// only as many rows as it has free slots.
import type { Logger } from 'pino';
import { buildPoliceBody, PoliceAnswer, policeHeaders } from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import type { Counters } from '../metrics/counters.ts';
import type { AlertLifecycle } from '../pipeline/alert-lifecycle.ts';
import type { Registry } from '../registry/registry.ts';
import type { AlertRepo, OutboxRow, OutboxTarget } from '../store/alert-repo.ts';
import type { CommitQueue } from '../store/commit-queue.ts';
import type { PoliceHttpClient } from './police-client.ts';
import type { RouteTable } from './route-table.ts';

export interface DispatcherOptions {
  concurrency: number;
  timeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export interface DispatcherDeps {
  alerts: AlertRepo;
  commits: CommitQueue;
  lifecycle: AlertLifecycle;
  registry: Registry;
  routes: RouteTable;
  http: PoliceHttpClient;
  clock: Clock;
  counters: Counters;
  log: Logger;
  random?: () => number;
  /** Latency marks: the alert's site and route are resolved; its POST is about to be sent. */
  onStage?: DispatchStageHook;
}

export type DispatchStageHook = (alertId: string, stage: 'site-resolved' | 'sent', attempt: { n: number; route: string; target: OutboxTarget }) => void;

/** Exponential backoff with "equal jitter": half fixed, half random, so retries of a burst spread out. */
export function retryDelay(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Timeline entries for failures at attempts 1, 2, 4, 8…: a long outage leaves a readable history, not thousands of rows. */
const isMilestone = (attempt: number) => (attempt & (attempt - 1)) === 0;

interface EndpointState {
  failing: boolean;
  since: number;
  failures: number;
}

export class Dispatcher {
  private readonly inFlight = new Set<string>();
  private readonly endpoints = new Map<string, EndpointState>();
  private pumpScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;
  private idle: (() => void) | null = null;

  constructor(private readonly deps: DispatcherDeps, private readonly opts: DispatcherOptions) {}

  start(): void {
    this.stopping = false;
    const pending = this.deps.alerts.pendingOutbox();
    if (pending > 0) this.deps.log.warn({ pending }, 'outbox has undelivered alerts from before the restart: delivering them now');
    this.notify();
  }

  /** Something became due now (a new alert). Coalesced: many notifies, one pump. */
  notify(): void {
    if (this.pumpScheduled || this.stopping) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Stops starting attempts, waits up to `graceMs` for those in flight; the outbox keeps the rest. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.inFlight.size === 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, graceMs);
      this.idle = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  status(): { inFlight: number; pending: number; failingEndpoints: string[] } {
    const failingEndpoints = [...this.endpoints].filter(([, s]) => s.failing).map(([url]) => url);
    return { inFlight: this.inFlight.size, pending: this.deps.alerts.pendingOutbox(), failingEndpoints };
  }

  private pump(): void {
    if (this.stopping) return;
    const free = this.opts.concurrency - this.inFlight.size;
    if (free > 0) {
      const now = this.deps.clock.now();
      // Rows in flight are still "due" in the store; read past them.
      const rows = this.deps.alerts.dueOutbox(now, free + this.inFlight.size);
      for (const row of rows) {
        if (this.inFlight.size >= this.opts.concurrency) break;
        const key = `${row.alertId}:${row.target}`;
        if (this.inFlight.has(key)) continue;
        this.inFlight.add(key);
        void this.attempt(row).finally(() => {
          this.inFlight.delete(key);
          if (this.inFlight.size === 0 && this.idle) this.idle();
          this.notify();
        });
      }
    }
    this.armTimer();
  }

  /** Wakes the pump when the earliest retry falls due. */
  private armTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const next = this.deps.alerts.nextDueAt();
    if (next === null || this.stopping) return;
    const delay = Math.max(0, next - this.deps.clock.now());
    // Only worth a timer if the pump would find a free slot: otherwise a completion will pump.
    if (delay === 0 && this.inFlight.size >= this.opts.concurrency) return;
    this.timer = setTimeout(() => this.pump(), Math.max(delay, 5));
    this.timer.unref();
  }

  private async attempt(row: OutboxRow): Promise<void> {
    const { alerts, registry, routes, http, clock, counters, log, lifecycle } = this.deps;
    const alert = alerts.get(row.alertId);
    const site = alert && registry.site(alert.siteId);
    if (!alert || !site) {
      log.error({ alertId: row.alertId, code: 'DISPATCH_ORPHAN' }, 'outbox row without alert or site: skipped');
      return;
    }
    const route = routes.byName(row.route);
    const url = row.target === 'primary' ? route.url : route.fallbackUrl ?? route.url;
    const attempt = row.attempts + 1;
    this.deps.onStage?.(alert.id, 'site-resolved', { n: attempt, route: row.route, target: row.target });
    if (alert.state === 'received') void lifecycle.dispatched(alert.id, row.target, url).catch((err) => log.error({ err, alertId: alert.id }, 'could not record dispatch'));

    const body = buildPoliceBody({ ...alert, alertId: alert.id, site, attempt, sentAt: clock.now() });
    counters.inc('police_attempts_total', { target: row.target });
    let failure: string;
    try {
      this.deps.onStage?.(alert.id, 'sent', { n: attempt, route: row.route, target: row.target });
      const answer = await http.post(url, body, policeHeaders(alert.id, route.secret, body), this.opts.timeoutMs);
      if (answer.status >= 200 && answer.status < 300) {
        this.endpointOk(url);
        counters.inc('police_delivered_total', { target: row.target });
        const caseId = this.caseIdFrom(answer.body);
        log.info({ alertId: alert.id, url, attempt, status: answer.status, caseId }, 'alert delivered to police');
        await lifecycle.delivered(alert.id, row.target, attempt, caseId, answer.status);
        return;
      }
      failure = `HTTP ${answer.status}`;
    } catch (err) {
      failure = (err as Error).message;
    }
    counters.inc('police_failures_total', { target: row.target });
    this.endpointFailed(url, failure);
    await this.scheduleRetry(row, attempt, failure);
  }

  private caseIdFrom(body: string): string | null {
    try {
      const parsed = PoliceAnswer.safeParse(JSON.parse(body));
      return parsed.success ? parsed.data.caseId ?? null : null;
    } catch {
      return null;
    }
  }

  private async scheduleRetry(row: OutboxRow, attempt: number, error: string): Promise<void> {
    const { alerts, commits, clock, log } = this.deps;
    const now = clock.now();
    const nextAt = now + retryDelay(attempt, this.opts.retryBaseMs, this.opts.retryMaxMs, this.deps.random ?? Math.random);
    log.debug({ alertId: row.alertId, attempt, error, retryInMs: nextAt - now }, 'police delivery failed; will retry');
    try {
      await commits.write(() => {
        alerts.scheduleRetry(row.alertId, row.target, attempt, nextAt, error);
        if (isMilestone(attempt)) alerts.addEvent(row.alertId, now, 'dispatch-failed', null, null, { target: row.target, attempt, error });
      });
    } catch (err) {
      // The row stays due in the store and is retried on the next pump.
      log.error({ err, alertId: row.alertId }, 'could not record a failed police attempt');
    }
  }

  private endpointOk(url: string): void {
    const state = this.endpoints.get(url);
    if (state?.failing) {
      this.deps.log.warn({ url, downForMs: this.deps.clock.now() - state.since, failures: state.failures }, 'police endpoint answers again');
    }
    this.endpoints.set(url, { failing: false, since: this.deps.clock.now(), failures: 0 });
  }

  /** Logged once when an endpoint starts failing, not once per alert: an outage with 20,000 alerts is one line. */
  private endpointFailed(url: string, error: string): void {
    const state = this.endpoints.get(url);
    if (state?.failing) {
      state.failures++;
      return;
    }
    this.endpoints.set(url, { failing: true, since: this.deps.clock.now(), failures: 1 });
    this.deps.log.error({ url, error, code: 'POLICE_UNREACHABLE' }, 'police endpoint failing: alerts are queued in the store and retried until delivered');
  }
}
