// Two deadlines on every open alert, checked from the store on one timer (not
// a timer per alert, and nothing to rebuild after a restart):
// - no 2xx from the police within the escalation window → the route's
//   fallback endpoint is engaged too (or, without one, the alert is flagged
//   overdue, loudly);
// - no dispatcher acknowledgement within the reminder interval → the alert is
//   announced again, and again each interval, until someone takes it.
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Counters } from '../metrics/counters.ts';
import type { AlertLifecycle } from '../pipeline/alert-lifecycle.ts';
import type { AlertRepo } from '../store/alert-repo.ts';
import type { RouteTable } from './route-table.ts';

export interface EscalationOptions {
  windowMs: number;
  reminderSec: number;
}

export interface EscalationWatchDeps {
  alerts: AlertRepo;
  lifecycle: AlertLifecycle;
  routes: RouteTable;
  /** Wakes the dispatcher: a fallback row is due now. */
  onEscalated: () => void;
  clock: Clock;
  counters: Counters;
  log: Logger;
}

/** Rows handled per tick: a backlog of 20,000 overdue alerts is worked through in slices, never in one long stall. */
const BATCH = 200;

export class EscalationWatch {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly deps: EscalationWatchDeps, private readonly opts: EscalationOptions) {}

  start(): void {
    // A tenth of the window keeps escalation within 110% of it; never busier than 20 Hz, never lazier than 1 Hz.
    const tickMs = Math.min(1000, Math.max(50, Math.floor(this.opts.windowMs / 10)));
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = null));
    }, tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass over both deadlines. Public so tests can drive it with a fake clock. */
  async tick(): Promise<void> {
    try {
      await this.escalateOverdue();
      await this.remindUnacknowledged();
    } catch (err) {
      // The store is failing (it says so itself); the next tick tries again.
      this.deps.log.error({ err }, 'escalation check failed');
    }
  }

  private async escalateOverdue(): Promise<void> {
    const { alerts, lifecycle, routes, clock, counters, log } = this.deps;
    const overdue = alerts.overdueForEscalation(clock.now() - this.opts.windowMs, BATCH);
    if (overdue.length === 0) return;
    // Started together, so they share one group commit.
    const outcomes = await Promise.all(overdue.map((alert) => lifecycle.escalate(alert.id, routes.byName(alert.route), this.opts.windowMs)));
    const escalated = outcomes.filter((o) => o === 'escalated').length;
    const stranded = overdue.filter((_, i) => outcomes[i] === 'overdue').map((a) => a.id);
    if (escalated > 0) {
      counters.inc('alerts_escalated_total', undefined, escalated);
      log.warn({ count: escalated, windowMs: this.opts.windowMs, code: 'ALERT_ESCALATED' }, 'no police answer within the escalation window: fallback endpoint engaged');
      this.deps.onEscalated();
    }
    if (stranded.length > 0) {
      counters.inc('alerts_overdue_total', undefined, stranded.length);
      log.error({ count: stranded.length, alertIds: stranded.slice(0, 10), windowMs: this.opts.windowMs, code: 'ALERT_OVERDUE' },
        'no police answer within the escalation window and no fallback endpoint configured: still retrying the primary');
    }
  }

  private async remindUnacknowledged(): Promise<void> {
    const { alerts, lifecycle, clock, counters } = this.deps;
    const due = alerts.dueReminders(clock.now() - this.opts.reminderSec * 1000, BATCH);
    if (due.length === 0) return;
    await lifecycle.remind(due);
    counters.inc('alert_reminders_total', undefined, due.length);
  }
}
