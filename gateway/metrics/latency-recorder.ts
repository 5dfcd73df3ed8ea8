// Times every stage of every alert, from the press to the device's
// "acknowledged" ack, without touching the alert path's work: it listens on
// the AlertBus and takes two marks from the dispatcher and one from the MQTT
// announcer, each a Map update. In-flight alerts are held in a bounded map
// (oldest evicted and counted); an alert it never saw committed (one from
// before a restart) still gets the stages its stored record can tell.
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { DispatchStageHook } from '../dispatch/dispatcher.ts';
import type { AlertBus, AlertChange } from '../pipeline/alert-bus.ts';
import type { AlertRecord } from '../store/alert-repo.ts';
import type { Counters } from './counters.ts';

/** Stage fields of `alert_latency`, in the order an alert passes them (INTERFACES §7). */
export const STAGES = ['ingest_ms', 'persist_ms', 'resolve_ms', 'dispatch_ms', 'police_ack_ms', 'total_ms', 'device_ack_ms'] as const;
export type Stage = (typeof STAGES)[number];

/** Tags of `alert_latency`: few values each, never ids or free text. */
export interface LatencyTags {
  site_kind: string;
  district: string;
  police_station: string;
  type: string;
  endpoint: string;
}

export interface LatencySample {
  alertId: string;
  /** Press time (gateway receipt time when the device clock is not trusted), epoch ms. */
  at: number;
  tags: LatencyTags;
  stages: Partial<Record<Stage, number>>;
  /** Police attempts up to the 2xx; unknown for an alert dispatched before a restart. */
  attempts: number | null;
}

export const UNKNOWN = 'unknown';
export const EVICTED_COUNTER = 'latency_stages_evicted_total';

interface InFlight {
  tags: LatencyTags;
  committedAt: number;
  resolvedAt: number | null;
  sentAt: number | null;
  attempts: number;
  done: boolean;
}

export interface LatencyRecorderDeps {
  clock: Clock;
  counters: Counters;
  log: Logger;
  /** Receives each finished alert; must be cheap (it runs on the alert path's turn). */
  onSample: (sample: LatencySample) => void;
}

const endpointName = (route: string, target: string) => `${route}:${target}`;

export class LatencyRecorder {
  /** Insertion-ordered, so the first key is the oldest alert. Finished alerts stay (marked done) to ignore a second target's 2xx. */
  private readonly inFlight = new Map<string, InFlight>();
  /**
   * Dispatch marks of alerts not committed yet: the first POST starts while
   * the commit is still queued. Taken over when the alert is committed;
   * bounded like `inFlight` (an alert whose commit failed never claims its marks).
   */
  private readonly early = new Map<string, Pick<InFlight, 'resolvedAt' | 'sentAt' | 'attempts'> & { endpoint: string }>();

  constructor(private readonly deps: LatencyRecorderDeps, private readonly capacity: number) {}

  attach(bus: AlertBus): () => void {
    return bus.on((change) => this.onChange(change));
  }

  /** For the dispatcher's `onStage`. Never throws: a metrics bug must not fail a police attempt. */
  readonly dispatchStage: DispatchStageHook = (alertId, stage, attempt) => {
    try {
      const now = this.deps.clock.now();
      const entry = this.inFlight.get(alertId) ?? this.earlyEntry(alertId);
      if (entry.done) return;
      if (stage === 'site-resolved') entry.resolvedAt ??= now;
      else {
        entry.sentAt ??= now;
        entry.attempts = Math.max(entry.attempts, attempt.n);
        if ('tags' in entry) entry.tags.endpoint = endpointName(attempt.route, attempt.target);
        else entry.endpoint = endpointName(attempt.route, attempt.target);
      }
    } catch (err) {
      this.deps.log.error({ err, alertId }, 'latency stage mark failed');
    }
  };

  /** For the MQTT announcer: a device ack was handed to the device's connection. */
  readonly deviceAckSent = (change: AlertChange): void => {
    try {
      if (this.awaitsDeviceAck(change)) this.finish(change, this.deps.clock.now());
    } catch (err) {
      this.deps.log.error({ err, alertId: change.alert.id }, 'latency ack mark failed');
    }
  };

  private onChange(change: AlertChange): void {
    const { kind, alert } = change;
    if (kind === 'received') {
      const marks = this.early.get(alert.id);
      this.early.delete(alert.id);
      const tags = tagsOf(change);
      if (marks && marks.endpoint !== UNKNOWN) tags.endpoint = marks.endpoint;
      this.track(alert.id, {
        tags, committedAt: this.deps.clock.now(), resolvedAt: marks?.resolvedAt ?? null, sentAt: marks?.sentAt ?? null, attempts: marks?.attempts ?? 0, done: false,
      });
    } else if (kind === 'resolved' && alert.deliveredAt === null) {
      // Closed before the police had it: there is no delivery latency to tell.
      this.inFlight.delete(alert.id);
    } else if (isPoliceDelivery(change) && !this.awaitsDeviceAck(change)) {
      this.finish(change, null);
    }
  }

  /** The police 2xx that the device is about to hear of: the sample waits for that ack. */
  private awaitsDeviceAck(change: AlertChange): boolean {
    return change.kind === 'state' && change.alert.source === 'mqtt' && isPoliceDelivery(change);
  }

  private earlyEntry(alertId: string): NonNullable<ReturnType<LatencyRecorder['early']['get']>> & { done?: boolean } {
    let marks = this.early.get(alertId);
    if (!marks) {
      marks = { resolvedAt: null, sentAt: null, attempts: 0, endpoint: UNKNOWN };
      this.early.set(alertId, marks);
      if (this.early.size > this.capacity) this.early.delete(this.early.keys().next().value!);
    }
    return marks;
  }

  private track(alertId: string, entry: InFlight): void {
    this.inFlight.set(alertId, entry);
    if (this.inFlight.size <= this.capacity) return;
    const [oldestId, oldest] = this.inFlight.entries().next().value!;
    this.inFlight.delete(oldestId);
    if (!oldest.done) this.deps.counters.inc(EVICTED_COUNTER);
  }

  private finish(change: AlertChange, deviceAckAt: number | null): void {
    const { alert } = change;
    const entry = this.inFlight.get(alert.id);
    if (entry?.done) return;
    if (entry) entry.done = true;
    this.deps.onSample({
      alertId: alert.id, at: alert.pressedAt, tags: { ...(entry?.tags ?? tagsOf(change)) },
      stages: stagesOf(alert, entry, deviceAckAt), attempts: entry && entry.attempts > 0 ? entry.attempts : null,
    });
  }
}

function tagsOf({ alert, site }: AlertChange): LatencyTags {
  return { site_kind: site?.kind ?? UNKNOWN, district: site?.district ?? UNKNOWN, police_station: site?.policeStation ?? UNKNOWN, type: alert.type, endpoint: UNKNOWN };
}

/** The 2xx of a police endpoint: it moved the alert to acknowledged, or came after a dispatcher had. */
function isPoliceDelivery({ kind, alert }: AlertChange): boolean {
  return alert.deliveredAt !== null && (kind === 'delivered' || (kind === 'state' && alert.state === 'acknowledged'));
}

/**
 * Stage durations in ms. A device clock a little ahead of the gateway's would
 * give a negative ingest: counted as 0, and the total starts at the earlier
 * of press and receipt, so the stages still add up to it. A clock more than
 * 5 minutes off is not used at all (no ingest_ms).
 */
function stagesOf(alert: AlertRecord, entry: InFlight | undefined, deviceAckAt: number | null): Partial<Record<Stage, number>> {
  const policeAt = alert.deliveredAt!;
  const start = Math.min(alert.pressedAt, alert.receivedAt);
  const stages: Partial<Record<Stage, number>> = { total_ms: policeAt - start };
  if (!alert.clockSkew) stages.ingest_ms = alert.receivedAt - start;
  if (entry) {
    // A first POST started before the commit returned overlaps persisting: its
    // resolve and dispatch stages count only past the commit (0 if done before
    // it), so the stages still add up to the total. The police may even answer
    // before the WAL flush ends: persisting then spans the whole path to them.
    const { resolvedAt, sentAt } = entry;
    const committedAt = Math.min(entry.committedAt, policeAt);
    stages.persist_ms = committedAt - alert.receivedAt;
    if (resolvedAt !== null) stages.resolve_ms = Math.max(0, resolvedAt - committedAt);
    if (resolvedAt !== null && sentAt !== null) stages.dispatch_ms = Math.max(0, sentAt - Math.max(resolvedAt, committedAt));
    if (sentAt !== null) stages.police_ack_ms = policeAt - Math.max(sentAt, committedAt);
  }
  if (deviceAckAt !== null) stages.device_ack_ms = deviceAckAt - policeAt;
  return stages;
}
