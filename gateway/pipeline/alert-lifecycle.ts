// Every change to an existing alert goes through here: it is committed, then
// announced on the bus. The dispatcher and the HTTP API share these methods,
// so a state never changes without its timeline entry and its announcement.
import type { ResolveOutcome } from '../../protocol/index.ts';
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
}

export class AlertLifecycle {
  constructor(private readonly deps: AlertLifecycleDeps) {}

  /** The first POST of this alert is on its way. */
  async dispatched(alertId: string, target: OutboxTarget, url: string): Promise<void> {
    const { alerts, commits, clock } = this.deps;
    const moved = await commits.write(() => alerts.advance(alertId, 'dispatched', clock.now(), null, { target, url }));
    if (moved) this.announce('state', moved);
  }

  /** A police endpoint answered 2xx. */
  async delivered(alertId: string, target: OutboxTarget, attempts: number, caseId: string | null, status: number): Promise<void> {
    const { alerts, commits, clock } = this.deps;
    const at = clock.now();
    const moved = await commits.write(() => {
      alerts.markDelivered(alertId, target, attempts, at, caseId, status);
      return alerts.advance(alertId, 'acknowledged', at, 'police', { target, caseId });
    });
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
      audit.record(at, actor, 'alert.resolve', alertId, { outcome, note });
      alerts.advance(alertId, 'resolved', at, actor, { outcome, note });
      return { alert: alerts.get(alertId)!, changed: true };
    });
    if (changed) this.announce('resolved', alert);
    return alert;
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
