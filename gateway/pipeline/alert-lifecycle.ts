// Every change to an existing alert goes through here: it is committed, then
// announced on the bus. The dispatcher and the HTTP API share these methods,
// so a state never changes without its timeline entry and its announcement.
import { policeStatusRank, type PoliceStatusUpdate, type ResolveOutcome } from '../../protocol/index.ts';
import type { ResolvedRoute } from '../dispatch/route-table.ts';
import type { Clock } from '../clock.ts';
import type { Registry } from '../registry/registry.ts';
import type { AlertRecord, AlertRepo, OutboxTarget } from '../store/alert-repo.ts';
import type { AuditRepo } from '../store/audit-repo.ts';
import type { CommitQueue } from '../store/commit-queue.ts';
import type { AlertBus, AlertChangeKind } from './alert-bus.ts';

export class AlertNotFoundError extends Error {
  readonly code = 'ALERT_NOT_FOUND';
}

export interface AlertLifecycleDeps {
  alerts: AlertRepo;
  audit: AuditRepo;
  commits: CommitQueue;
  registry: Registry;
  bus: AlertBus;
  clock: Clock;
  /**
   * An alert is being resolved (inside the resolving transaction, before the
   * bus hears of it): the dispatcher must not send it from its memory any more.
   */
  onResolving?: (alertId: string) => void;
}

export class AlertLifecycle {
  constructor(private readonly deps: AlertLifecycleDeps) {}

  /** The first POST of this alert is on its way. */
  async dispatched(alertId: string, target: OutboxTarget, url: string): Promise<void> {
    const { alerts, commits, clock } = this.deps;
    // The alert path's state changes are plain updates that only a failing store can refuse: no savepoint (see WriteOptions).
    // Outcomes of police attempts are bounded by the dispatcher's concurrency: never refused for a burst of inserts (see WriteOptions).
    const moved = await commits.write(() => alerts.advance(alertId, 'dispatched', clock.now(), null, { target, url }), { ownSavepoint: false, outsideLimit: true });
    if (moved) this.announce('state', moved);
  }

  /** A police endpoint answered 2xx. */
  async delivered(alertId: string, target: OutboxTarget, attempts: number, caseId: string | null, status: number): Promise<void> {
    const { alerts, commits, clock } = this.deps;
    const at = clock.now();
    const moved = await commits.write(() => {
      alerts.markDelivered(alertId, target, attempts, at, caseId, status);
      const advanced = alerts.advance(alertId, 'acknowledged', at, 'police', { target, caseId });
      // The responsible station has it: the fallback, if engaged (only ever after an escalation) and still trying, is no longer needed.
      if (target === 'primary' && (advanced === null || advanced.escalatedAt !== null)) alerts.cancelOutboxTarget(alertId, 'fallback', at, 'cancelled: primary endpoint delivered');
      return advanced;
    }, { ownSavepoint: false, outsideLimit: true });
    const alert = moved ?? alerts.get(alertId);
    if (alert) this.announce(moved ? 'state' : 'delivered', alert);
  }

  /** A dispatcher took charge of the alert. Idempotent: a second ack changes nothing. */
  async acknowledge(alertId: string, actor: string): Promise<AlertRecord> {
    const { alerts, audit, commits, clock } = this.deps;
    const at = clock.now();
    const { alert, changed } = await commits.write(() => {
      const current = this.require(alertId);
      if (!alerts.markAcked(alertId, actor, at)) return { alert: current, changed: false };
      alerts.addEvent(alertId, at, 'acked', null, actor, null);
      audit.record(at, actor, 'alert.ack', alertId, null);
      alerts.advance(alertId, 'acknowledged', at, actor);
      return { alert: alerts.get(alertId)!, changed: true };
    });
    if (changed) this.announce('acked', alert);
    return alert;
  }

  /** Closes the alert and stops its delivery. Idempotent. */
  async resolve(alertId: string, actor: string, outcome: ResolveOutcome, note: string | null): Promise<AlertRecord> {
    const { alerts, audit, commits, clock } = this.deps;
    const at = clock.now();
    const { alert, changed } = await commits.write(() => {
      const current = this.require(alertId);
      if (!alerts.markResolved(alertId, actor, at, outcome, note)) return { alert: current, changed: false };
      this.deps.onResolving?.(alertId);
      audit.record(at, actor, 'alert.resolve', alertId, { outcome, note });
      alerts.advance(alertId, 'resolved', at, actor, { outcome, note });
      return { alert: alerts.get(alertId)!, changed: true };
    });
    if (changed) this.announce('resolved', alert);
    return alert;
  }

  /**
   * The escalation window passed without a 2xx: engage the route's fallback
   * endpoint (state `escalated`), or, with none configured, record that the
   * alert is overdue. Decided once per alert, also across restarts.
   * Returns what was done, or null if another path decided first.
   */
  async escalate(alertId: string, route: ResolvedRoute, windowMs: number): Promise<'escalated' | 'overdue' | null> {
    const { alerts, commits, clock } = this.deps;
    const at = clock.now();
    const result = await commits.write(() => {
      const alert = alerts.get(alertId);
      if (!alert || alert.deliveredAt !== null || !alerts.markEscalated(alertId, at)) return null;
      if (!route.fallbackUrl) {
        alerts.addEvent(alertId, at, 'overdue', null, null, { windowMs, reason: 'no fallback endpoint configured for this route' });
        return { outcome: 'overdue' as const, alert: alerts.get(alertId)! };
      }
      alerts.addOutbox({ alertId, target: 'fallback', route: route.name, priority: alert.priority, createdAt: alert.receivedAt, nextAt: at });
      const moved = alerts.advance(alertId, 'escalated', at, null, { windowMs, fallbackUrl: route.fallbackUrl });
      return { outcome: 'escalated' as const, alert: moved ?? alerts.get(alertId)! };
    });
    if (!result) return null;
    this.announce(result.outcome === 'escalated' ? 'state' : 'overdue', result.alert);
    return result.outcome;
  }

  /** Says again, on the bus, that these alerts wait for a dispatcher. */
  async remind(alertsToRemind: readonly AlertRecord[]): Promise<void> {
    const { alerts, commits, clock } = this.deps;
    const at = clock.now();
    await commits.write(() => {
      for (const alert of alertsToRemind) alerts.markReminded(alert.id, at);
    });
    for (const alert of alertsToRemind) this.announce('reminder', { ...alert, remindedAt: at });
  }

  /**
   * A police status callback. Every new status lands in the timeline; the
   * alert's reported status only moves forward; accepted or later means the
   * police have it. Returns false for a repeat of the current status.
   */
  async policeStatus(update: PoliceStatusUpdate): Promise<{ alert: AlertRecord; changed: boolean }> {
    const { alerts, commits, clock } = this.deps;
    const at = clock.now();
    const { alert, changed } = await commits.write(() => {
      const current = this.require(update.alertId);
      if (current.policeStatus === update.status) return { alert: current, changed: false };
      const { alertId, status, ...detail } = update;
      alerts.addEvent(alertId, at, 'police-status', null, 'police', { status, ...detail });
      const forward = current.policeStatus === null || policeStatusRank(status) >= policeStatusRank(current.policeStatus);
      if (forward) alerts.setPoliceStatus(alertId, status, update.caseId ?? null, at);
      if (status !== 'rejected') alerts.advance(alertId, 'acknowledged', at, 'police', { status });
      return { alert: alerts.get(alertId)!, changed: true };
    });
    if (changed) this.announce('police-status', alert);
    return { alert, changed };
  }

  private require(alertId: string): AlertRecord {
    const alert = this.deps.alerts.get(alertId);
    if (!alert) throw new AlertNotFoundError(`no alert ${alertId}`);
    return alert;
  }

  private announce(kind: AlertChangeKind, alert: AlertRecord): void {
    this.deps.bus.emit({ kind, alert, site: this.deps.registry.site(alert.siteId) });
  }
}
