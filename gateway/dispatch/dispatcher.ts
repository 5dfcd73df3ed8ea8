// Delivers the outbox to police endpoints: highest priority first, then
// oldest; at most `concurrency` POSTs in flight; failures retried with
// exponential backoff and jitter, without end, until a 2xx or until the alert
// is resolved. New alerts come straight from the intake: into a free slot, or
// into a bounded in-memory queue for the next slot to free. Everything else —
// retries, fallbacks, what was pending before a restart, what did not fit the
// queue — comes from the store: a pump reads only as many due rows as it has
// free slots, and only when something may be due there. A per-endpoint
// circuit breaker parks a dead endpoint's rows until a probe gets through,
// then brings its whole backlog forward so it drains by severity then age.
import type { Logger } from 'pino';
import { buildCapAlert, buildPoliceBody, CAP_CONTENT_TYPE, PoliceAnswer, policeHeaders, type PoliceBodyInput } from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import type { Counters } from '../metrics/counters.ts';
import type { AlertLifecycle } from '../pipeline/alert-lifecycle.ts';
import type { Registry } from '../registry/registry.ts';
import type { AlertRecord, AlertRepo, OutboxRow, OutboxTarget } from '../store/alert-repo.ts';
import type { CommitQueue } from '../store/commit-queue.ts';
import type { CircuitBreaker, EndpointReport } from './circuit-breaker.ts';
import { PoliceRequestError, type PoliceHttpClient } from './police-client.ts';
import { ReadyQueue } from './ready-queue.ts';
import type { ResolvedRoute, RouteTable } from './route-table.ts';

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
  breaker: CircuitBreaker;
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

/** One attempt's body and headers in the route's format; the signature covers the exact body either way. */
export function policeRequest(route: ResolvedRoute, input: PoliceBodyInput): { body: string; headers: Record<string, string> } {
  if (route.format === 'cap') {
    const body = buildCapAlert({ ...input, msgType: 'Alert' });
    return { body, headers: policeHeaders(input.alertId, route.secret, body, CAP_CONTENT_TYPE) };
  }
  const body = buildPoliceBody(input);
  return { body, headers: policeHeaders(input.alertId, route.secret, body) };
}

/** New alerts held in memory for a slot; the commit queue's own bound (its pending writes) is the same. */
const READY_MAX = 20_000;

/**
 * While alerts wait in memory, the store is scanned at most this often: it
 * bounds both what scans cost in a burst and how long a row only the store
 * knows (a retry, a fallback, a probe) waits behind the burst.
 */
const SCAN_WHILE_QUEUED_MS = 100;
/**
 * Rows a scan reads past (in flight or in memory) to find the store's own.
 * A store row behind more of them than this is less urgent than they are,
 * and is found by a later scan.
 */
const SCAN_SKIP_MAX = 2000;

const keyOf = (row: Pick<OutboxRow, 'alertId' | 'target'>) => `${row.alertId}:${row.target}`;

/** Timeline entries for failures at attempts 1, 2, 4, 8…: a long outage leaves a readable history, not thousands of rows. */
const isMilestone = (attempt: number) => (attempt & (attempt - 1)) === 0;

export class Dispatcher {
  /** Attempts not finished: POST outstanding, or its outcome still being committed (not to be launched again). */
  private readonly inFlight = new Set<string>();
  /** Attempts whose POST is outstanding: what `concurrency` bounds. Recording an outcome holds no slot. */
  private posting = 0;
  private readonly ready = new ReadyQueue(READY_MAX);
  /** The store may hold due rows that are neither in flight nor in `ready`: the next pump reads them. */
  private scanNeeded = true;
  private lastScanAt = 0;
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

  /** Something became due in the store now (an escalation, a new alert the intake could not hand over). Coalesced: many notifies, one pump. */
  notify(): void {
    this.scanNeeded = true;
    this.schedulePump();
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.stopping) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /**
   * A new alert, its commit queued: its first POST starts now, from the
   * records in hand, when a slot is free, without waiting for the commit's
   * fsync or reading the outbox back. The outcome is recorded by writes queued
   * behind the insert, so they commit after it. With no free slot it waits in
   * `ready` for the next one; with `ready` full, in the store for a pump.
   */
  dispatchNew(alert: AlertRecord, row: OutboxRow): void {
    if (this.stopping) return;
    const key = keyOf(row);
    if (this.inFlight.has(key) || this.ready.has(key)) return;
    if (this.posting < this.opts.concurrency) return this.launch(row, alert);
    if (this.ready.push({ key, row, alert })) return;
    this.deps.counters.inc('dispatch_ready_overflow_total');
    this.notify();
  }

  /**
   * A slot is free. Rows only the store knows come first (they may be more
   * urgent than anything waiting in memory): when a scan is needed — at once
   * if nothing waits in memory, else at most every SCAN_WHILE_QUEUED_MS — the
   * slots freed this turn are left to one pump, which scans, then fills the
   * rest from memory. Otherwise the next alert from memory takes the slot.
   */
  private slotFreed(): void {
    if (this.stopping) return;
    if (this.scanNeeded && (this.ready.size === 0 || this.deps.clock.now() - this.lastScanAt >= SCAN_WHILE_QUEUED_MS)) return this.schedulePump();
    this.fillFromReady();
  }

  private fillFromReady(): void {
    while (this.posting < this.opts.concurrency && this.ready.size > 0) {
      const { row, alert } = this.ready.shift()!;
      // What the intake held is still right for the POST: what can change meanwhile (state, police
      // status) is not sent, and an alert resolved while it waited was dropped (alertResolved).
      this.launch(row, alert);
    }
  }

  /**
   * The alert is being closed: if it still waits for a slot, it is not sent
   * (its outbox row is cancelled in the same transaction). Should that
   * transaction fail, the row is still due: the next freed slot reads the store.
   */
  alertResolved(alertId: string): void {
    const key = keyOf({ alertId, target: 'primary' });
    if (!this.ready.has(key)) return;
    this.ready.drop(key);
    this.scanNeeded = true;
  }

  /** Stops starting attempts, waits up to `graceMs` for those in flight; the outbox keeps the rest. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Committed, they are in the outbox for the next start; not committed, the device has no PUBACK and resends.
    this.ready.clear();
    if (this.inFlight.size === 0) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, graceMs);
      this.idle = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  status(): { inFlight: number; pending: number; failingEndpoints: string[]; endpoints: EndpointReport[] } {
    const { alerts, breaker } = this.deps;
    return { inFlight: this.inFlight.size, pending: alerts.pendingOutbox(), failingEndpoints: breaker.failing(), endpoints: breaker.report() };
  }

  /** With no free slot the scan waits for one (slotFreed pumps again while scanNeeded). */
  private pump(): void {
    if (this.stopping) return;
    if (this.scanNeeded && this.posting < this.opts.concurrency) this.scan();
    this.fillFromReady();
  }

  private scan(): void {
    if (this.stopping) return;
    this.scanNeeded = false;
    const now = this.deps.clock.now();
    this.lastScanAt = now;
    // Rows in flight or in `ready` are still "due" in the store; read past them.
    const free = this.opts.concurrency - this.posting;
    const limit = free + this.inFlight.size + Math.min(this.ready.size, SCAN_SKIP_MAX);
    const due = this.deps.alerts.dueOutbox(now, limit);
    // More may be due than one read returned: read again when slots free.
    if (due.length >= limit) this.scanNeeded = true;
    // Probes first: one parked row per recovered-looking endpoint, so an outage ends as soon as the endpoint is back.
    for (const row of [...this.probeRows(), ...due]) {
      if (this.ready.has(keyOf(row))) continue;
      if (this.posting >= this.opts.concurrency) {
        this.scanNeeded = true;
        break;
      }
      this.launch(row);
    }
    this.armTimer(now);
  }

  private launch(row: OutboxRow, known?: AlertRecord): void {
    const key = keyOf(row);
    if (this.inFlight.has(key)) return;
    this.inFlight.add(key);
    this.posting++;
    let posted = false;
    const postDone = () => {
      if (posted) return;
      posted = true;
      this.posting--;
      this.slotFreed();
    };
    void this.attempt(row, postDone, known).catch((err: unknown) => {
      // The outcome could not be recorded (store failing or closed): the row is still due and goes out again.
      this.deps.log.error({ err, alertId: row.alertId, target: row.target }, 'police attempt outcome not recorded; it will be retried');
      return false;
    }).then((done) => {
      postDone();
      this.inFlight.delete(key);
      // Not done: its row is due again later (a retry, a parked row, an unrecorded outcome), so the store and the timer must know.
      if (!done) this.notify();
      if (this.inFlight.size === 0 && this.idle) this.idle();
    });
  }

  private probeRows(): OutboxRow[] {
    const { alerts, breaker, routes } = this.deps;
    const rows: OutboxRow[] = [];
    for (const url of breaker.probesDue()) {
      const { primary, fallback } = routes.routesUsing(url);
      const row = alerts.firstPendingFor('primary', primary) ?? alerts.firstPendingFor('fallback', fallback);
      if (row) rows.push(row);
    }
    return rows;
  }

  /**
   * Wakes the pump when the earliest retry or probe falls due. After a scan at
   * `scannedAt`, whatever was due by then was launched or waits for a slot (and
   * the next freed slot scans again): only rows due later need the timer.
   */
  private armTimer(scannedAt: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const due = this.deps.alerts.nextDueAfter(scannedAt);
    const probe = this.deps.breaker.nextProbeAt();
    const next = due === null ? probe : probe === null ? due : Math.min(due, probe);
    if (next === null || this.stopping) return;
    const delay = Math.max(0, next - this.deps.clock.now());
    // Due already, and no free slot: the next freed slot scans for it.
    if (delay === 0 && this.posting >= this.opts.concurrency) {
      this.scanNeeded = true;
      return;
    }
    this.timer = setTimeout(() => this.notify(), Math.max(delay, 5));
    this.timer.unref();
  }

  /**
   * `postDone` frees the slot once the police have answered (or failed to)
   * and the breaker knows: committing the outcome takes no slot, the attempt
   * stays in `inFlight` until it is committed, so the row cannot go out twice
   * meanwhile.
   * `known`: the alert as the intake holds it, its commit queued (no read-back).
   * True when nothing about this row is left to do now (delivered, or an
   * orphan that no retry could fix); false when it is due again later.
   */
  private async attempt(row: OutboxRow, postDone: () => void, known?: AlertRecord): Promise<boolean> {
    const { alerts, registry, routes, http, clock, counters, log, lifecycle } = this.deps;
    const alert = known ?? alerts.get(row.alertId);
    const site = alert && registry.site(alert.siteId);
    if (!alert || !site) {
      log.error({ alertId: row.alertId, code: 'DISPATCH_ORPHAN' }, 'outbox row without alert or site: skipped');
      return true;
    }
    const route = routes.byName(row.route);
    const url = row.target === 'primary' ? route.url : route.fallbackUrl ?? route.url;
    if (!this.deps.breaker.allow(url)) {
      await this.park(row);
      return false;
    }
    const attempt = row.attempts + 1;
    this.deps.onStage?.(alert.id, 'site-resolved', { n: attempt, route: row.route, target: row.target });
    if (alert.state === 'received') void lifecycle.dispatched(alert.id, row.target, url).catch((err) => log.error({ err, alertId: alert.id }, 'could not record dispatch'));

    const { body, headers } = policeRequest(route, { ...alert, alertId: alert.id, site, attempt, sentAt: clock.now() });
    counters.inc('police_attempts_total', { target: row.target });
    let failure: string;
    let ownFault = false;
    try {
      this.deps.onStage?.(alert.id, 'sent', { n: attempt, route: row.route, target: row.target });
      const answer = await http.post(url, body, headers, this.opts.timeoutMs);
      if (answer.status >= 200 && answer.status < 300) {
        if (this.deps.breaker.success(url)) await this.bringForward(url);
        // Free once a recovered endpoint's backlog is due (so it drains most severe first); recording the 2xx holds no slot.
        postDone();
        counters.inc('police_delivered_total', { target: row.target });
        const caseId = this.caseIdFrom(answer.body);
        log.info({ alertId: alert.id, url, attempt, status: answer.status, caseId }, 'alert delivered to police');
        await lifecycle.delivered(alert.id, row.target, attempt, caseId, answer.status);
        return true;
      }
      failure = `HTTP ${answer.status}`;
    } catch (err) {
      if (this.stopping) {
        // Cut off by shutdown after its grace, not failed by the police: no breaker, no retry entry; the row stays due.
        log.info({ alertId: alert.id, url }, 'police attempt cut short by shutdown; it stays in the outbox for the next start');
        return false;
      }
      failure = (err as Error).message;
      // Our client failed, not the endpoint (see PoliceFailureCode): retried, but no breaker failure.
      ownFault = err instanceof PoliceRequestError && err.code === 'CLIENT_DOWN';
    }
    counters.inc('police_failures_total', { target: row.target });
    if (!ownFault) this.deps.breaker.failure(url, failure);
    postDone();
    await this.scheduleRetry(row, attempt, failure);
    return false;
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
      }, { outsideLimit: true });
    } catch (err) {
      // The row stays due in the store and is retried on the next pump.
      log.error({ err, alertId: row.alertId }, 'could not record a failed police attempt');
    }
  }

  /**
   * The endpoint's breaker is open: the row waits without spending an
   * attempt. It can wait long, because the probe that finds the endpoint back
   * brings the whole backlog forward; the wait only bounds how stale a row
   * can get if that bring-forward itself fails.
   */
  private async park(row: OutboxRow): Promise<void> {
    const { alerts, commits, clock, counters, log } = this.deps;
    const until = clock.now() + this.opts.retryMaxMs;
    counters.inc('police_parked_total', { target: row.target });
    try {
      await commits.write(() => alerts.deferOutbox(row.alertId, row.target, until), { outsideLimit: true });
    } catch (err) {
      log.error({ err, alertId: row.alertId }, 'could not park an alert behind an open breaker');
    }
  }

  private async bringForward(url: string): Promise<void> {
    const { alerts, commits, routes, clock, log } = this.deps;
    const { primary, fallback } = routes.routesUsing(url);
    const now = clock.now();
    try {
      const moved = await commits.write(() => alerts.bringForward('primary', primary, now) + alerts.bringForward('fallback', fallback, now));
      if (moved > 0) {
        log.warn({ url, backlog: moved }, 'police endpoint is back: delivering its backlog, most severe and oldest first');
        this.notify();
      }
    } catch (err) {
      log.error({ err, url }, 'could not bring a recovered endpoint\'s backlog forward; it drains on its retry schedule');
    }
  }
}
