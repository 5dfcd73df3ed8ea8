// The alert path's entry: one device event (from MQTT or a serial dongle)
// becomes one durable alert with its outbox row, exactly once per (device, seq).
import type { Logger } from 'pino';
import { deriveAlertId, EVENT_PRIORITY, type EventPayload } from '../../protocol/index.ts';
import type { Counters } from '../metrics/counters.ts';
import type { Registry } from '../registry/registry.ts';
import type { AlertRecord, AlertRepo, AlertSource, OutboxRow } from '../store/alert-repo.ts';
import type { CommitQueue } from '../store/commit-queue.ts';
import type { AlertBus } from './alert-bus.ts';
import type { RouteTable } from '../dispatch/route-table.ts';
import { LogThrottle } from '../log-throttle.ts';
import type { SeqWindow } from './seq-window.ts';

/** A device clock further off than this is not trusted for `pressedAt`. */
export const CLOCK_SKEW_LIMIT_MS = 5 * 60_000;

export interface IncomingEvent {
  deviceId: string;
  event: EventPayload;
  source: AlertSource;
  receivedAt: number;
}

export interface IntakeResult {
  alert: AlertRecord;
  /** True when this (device, seq) was already an alert: nothing new was stored or dispatched. */
  repeat: boolean;
}

export class IntakeError extends Error {
  constructor(readonly code: 'UNKNOWN_DEVICE' | 'UNKNOWN_SITE' | 'REPLAYED', message: string) {
    super(message);
  }
}

export interface AlertIntakeDeps {
  registry: Registry;
  alerts: AlertRepo;
  commits: CommitQueue;
  routes: RouteTable;
  window: SeqWindow;
  bus: AlertBus;
  /**
   * Hands the dispatcher a new alert and its outbox row as its commit is
   * queued: the first POST need not wait for the commit (only the PUBACK
   * must). The alert id is deterministic, so if the commit then fails, the
   * device's resend is stored and sent again under the same Idempotency-Key.
   */
  dispatchEarly: (alert: AlertRecord, outbox: OutboxRow) => void;
  /** Wakes the dispatcher once an alert it was not handed early is committed: it finds the row in the outbox. */
  onNewAlert: (alert: AlertRecord) => void;
  counters: Counters;
  log: Logger;
}

export class AlertIntake {
  /** Alerts being committed right now, so a DUP arriving mid-commit joins the first one. */
  private readonly committing = new Map<string, Promise<IntakeResult>>();
  private readonly throttle: LogThrottle;

  constructor(private readonly deps: AlertIntakeDeps) {
    this.throttle = new LogThrottle(deps.log);
  }

  /**
   * Resolves once the alert is durable (the caller may then PUBACK / ack the
   * dongle); rejects if it is not (the caller must not acknowledge, so the
   * device retries).
   */
  accept(incoming: IncomingEvent): Promise<IntakeResult> {
    const alertId = deriveAlertId(incoming.deviceId, incoming.event.seq);
    const inFlight = this.committing.get(alertId);
    if (inFlight) return inFlight.then(({ alert }) => this.repeat(alert));
    const { deviceId, event, source } = incoming;
    // Above the device's highest stored seq it cannot be stored yet: a new
    // alert needs no read of the store. At or below it, it is a repeat of a
    // stored alert (a DUP, a reconnect) or a replay.
    const highest = this.deps.window.eventReplay(deviceId, event.seq);
    if (highest !== null) {
      const existing = this.deps.alerts.get(alertId);
      if (existing) return Promise.resolve(this.repeat(existing));
      this.deps.counters.inc('alerts_replay_refused_total', { source });
      this.throttle.warn(`replay:${deviceId}`, { deviceId, seq: event.seq, highest, source, code: 'SEQ_REPLAYED' },
        `event seq ${event.seq} from ${deviceId} is at or below its highest alert seq ${highest}: a replay, not a new alert`);
      return Promise.reject(new IntakeError('REPLAYED', `seq ${event.seq} is not above ${highest}`));
    }

    const pending = this.store(alertId, incoming).finally(() => this.committing.delete(alertId));
    this.committing.set(alertId, pending);
    return pending;
  }

  private async store(alertId: string, { deviceId, event, source, receivedAt }: IncomingEvent): Promise<IntakeResult> {
    const { registry, alerts, commits, routes, bus, counters, log } = this.deps;
    const device = registry.device(deviceId);
    if (!device) throw new IntakeError('UNKNOWN_DEVICE', `no device ${deviceId}`);
    const site = registry.site(device.siteId);
    if (!site) throw new IntakeError('UNKNOWN_SITE', `device ${deviceId} belongs to missing site ${device.siteId}`);

    const clockSkew = Math.abs(event.ts - receivedAt) > CLOCK_SKEW_LIMIT_MS;
    const priority = EVENT_PRIORITY[event.type];
    const alert: AlertRecord = {
      id: alertId, deviceId, seq: event.seq, siteId: site.id, type: event.type, priority, state: 'received', source,
      pressedAt: clockSkew ? receivedAt : event.ts, deviceTs: event.ts, receivedAt, clockSkew,
      caseId: null, deliveredAt: null, ackedAt: null, ackedBy: null, resolvedAt: null, resolvedBy: null,
      outcome: null, note: null, escalatedAt: null, remindedAt: null, policeStatus: null, updatedAt: receivedAt,
    };
    const outbox: OutboxRow = {
      alertId, target: 'primary', route: routes.routeFor(site).name, priority, createdAt: receivedAt, nextAt: receivedAt, attempts: 0, lastError: null, doneAt: null,
    };

    // Only when the queue takes the write (store healthy, not overloaded): never POST what will not be stored.
    const early = commits.accepting();
    // Plain inserts that only a failing store can refuse: no savepoint needed (see WriteOptions).
    const committed = commits.write(() => alerts.insert(alert, outbox), { ownSavepoint: false });
    if (early) this.deps.dispatchEarly(alert, outbox);
    const inserted = await committed;
    if (!inserted) {
      // Another path (the other transport) stored the same (device, seq) first.
      return this.repeat(alerts.get(alertId)!);
    }
    this.deps.window.noteAlert(deviceId, event.seq);
    counters.inc('alerts_received_total', { type: event.type, source });
    if (clockSkew) {
      counters.inc('alerts_clock_skew_total');
      log.warn({ alertId, deviceId, deviceTs: event.ts, receivedAt }, 'device clock is off by more than 5 minutes: using receive time');
    }
    log.info({ alertId, deviceId, siteId: site.id, type: event.type, seq: event.seq, source }, 'alert received');
    bus.emit({ kind: 'received', alert, site });
    // Handed over early, it is the dispatcher's already; otherwise it finds it in the outbox now.
    if (!early) this.deps.onNewAlert(alert);
    return { alert, repeat: false };
  }

  private repeat(alert: AlertRecord): IntakeResult {
    this.deps.counters.inc('alerts_repeated_total');
    this.deps.bus.emit({ kind: 'repeat', alert, site: this.deps.registry.site(alert.siteId) });
    return { alert, repeat: true };
  }
}
