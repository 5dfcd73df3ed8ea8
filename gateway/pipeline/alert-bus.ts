// In-process fan-out of alert changes: device acks, the integrator topic, the
// live dashboard feed and metrics all listen here, so the pipeline itself
// knows none of them. A listener that throws is logged and never breaks the
// pipeline or the other listeners.
import type { Logger } from 'pino';
import type { Site } from '../../protocol/index.ts';
import type { AlertRecord } from '../store/alert-repo.ts';

/**
 * `overdue`: undelivered past the escalation window with no fallback to engage.
 * `reminder`: still not acknowledged by a dispatcher; said again.
 * `police-status`: the police reported progress by callback.
 */
export type AlertChangeKind = 'received' | 'state' | 'delivered' | 'acked' | 'resolved' | 'repeat' | 'overdue' | 'reminder' | 'police-status';

export interface AlertChange {
  kind: AlertChangeKind;
  alert: AlertRecord;
  site: Site | undefined;
}

export type AlertListener = (change: AlertChange) => void;

export class AlertBus {
  private readonly listeners: AlertListener[] = [];

  constructor(private readonly log: Logger) {}

  on(listener: AlertListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  emit(change: AlertChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.log.error({ err, alertId: change.alert.id, kind: change.kind }, 'alert listener failed');
      }
    }
  }
}
