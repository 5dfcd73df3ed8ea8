// Alerts, their timelines and the dispatch outbox as rows. Only this module
// writes their SQL. Mutating methods are synchronous and meant to run inside
// a CommitQueue job, so that an alert, its first timeline entry and its outbox
// row are committed together or not at all.
import { ALERT_STATES, stateRank, type AlertState, type EventType, type PoliceStatus, type ResolveOutcome } from '../../protocol/index.ts';
import type { Db } from './database.ts';

export type AlertSource = 'mqtt' | 'serial';
export type OutboxTarget = 'primary' | 'fallback';

export interface AlertRecord {
  id: string;
  deviceId: string;
  seq: number;
  siteId: string;
  type: EventType;
  priority: number;
  state: AlertState;
  source: AlertSource;
  pressedAt: number;
  deviceTs: number;
  receivedAt: number;
  clockSkew: boolean;
  caseId: string | null;
  deliveredAt: number | null;
  ackedAt: number | null;
  ackedBy: string | null;
  resolvedAt: number | null;
  resolvedBy: string | null;
  outcome: ResolveOutcome | null;
  note: string | null;
  /** When the escalation window was checked for this alert (fallback engaged or found missing). */
  escalatedAt: number | null;
  /** Last re-announcement of an alert no dispatcher has acknowledged. */
  remindedAt: number | null;
  /** The latest progress the police reported by callback. */
  policeStatus: PoliceStatus | null;
  updatedAt: number;
}

export interface TimelineEntry {
  at: number;
  kind: string;
  state: AlertState | null;
  actor: string | null;
  detail: Record<string, unknown> | null;
}

export interface OutboxRow {
  alertId: string;
  target: OutboxTarget;
  route: string;
  priority: number;
  createdAt: number;
  attempts: number;
  nextAt: number;
  lastError: string | null;
  doneAt: number | null;
}

/**
 * The columns an AlertRecord is read from, in this order. Rows come back as
 * arrays (better-sqlite3's raw mode): an object per row, built column by
 * column in native code, cost about 3.6 KB and 15 µs, an array 0.8 KB and
 * 6 µs, and two such reads (the state advances) are on every alert's path.
 */
const ALERT_COLUMNS = [
  'id', 'device_id', 'seq', 'site_id', 'type', 'priority', 'state', 'source', 'pressed_at', 'device_ts', 'received_at',
  'clock_skew', 'case_id', 'delivered_at', 'acked_at', 'acked_by', 'resolved_at', 'resolved_by', 'outcome', 'note',
  'escalated_at', 'reminded_at', 'police_status', 'updated_at',
] as const;
const ALERT_SELECT = ALERT_COLUMNS.join(', ');

type AlertRow = [
  id: string, deviceId: string, seq: number, siteId: string, type: EventType, priority: number, state: AlertState,
  source: AlertSource, pressedAt: number, deviceTs: number, receivedAt: number, clockSkew: number, caseId: string | null,
  deliveredAt: number | null, ackedAt: number | null, ackedBy: string | null, resolvedAt: number | null,
  resolvedBy: string | null, outcome: ResolveOutcome | null, note: string | null, escalatedAt: number | null,
  remindedAt: number | null, policeStatus: PoliceStatus | null, updatedAt: number,
];

/** A row of ALERT_COLUMNS, maybe with more columns after them. */
const alertFromRow = (r: readonly [...AlertRow, ...unknown[]]): AlertRecord => ({
  id: r[0], deviceId: r[1], seq: r[2], siteId: r[3], type: r[4], priority: r[5], state: r[6], source: r[7],
  pressedAt: r[8], deviceTs: r[9], receivedAt: r[10], clockSkew: r[11] === 1, caseId: r[12], deliveredAt: r[13],
  ackedAt: r[14], ackedBy: r[15], resolvedAt: r[16], resolvedBy: r[17], outcome: r[18], note: r[19],
  escalatedAt: r[20], remindedAt: r[21], policeStatus: r[22], updatedAt: r[23],
});

interface OutboxDbRow {
  alert_id: string; target: OutboxTarget; route: string; priority: number; created_at: number;
  attempts: number; next_at: number; last_error: string | null; done_at: number | null;
}

const outboxFromRow = (r: OutboxDbRow): OutboxRow => ({
  alertId: r.alert_id, target: r.target, route: r.route, priority: r.priority, createdAt: r.created_at,
  attempts: r.attempts, nextAt: r.next_at, lastError: r.last_error, doneAt: r.done_at,
});

/** `stateRank(state)` in SQL, from the protocol's own order of states. */
const STATE_RANK_SQL = `CASE state ${ALERT_STATES.map((st, i) => `WHEN '${st}' THEN ${i}`).join(' ')} END`;

export interface AlertQuery {
  open?: boolean;
  limit: number;
}

export class AlertRepo {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      get: db.prepare(`SELECT ${ALERT_SELECT} FROM alerts WHERE id = ?`).raw(),
      insert: db.prepare(`INSERT OR IGNORE INTO alerts (id, device_id, seq, site_id, type, priority, state, source, pressed_at,
        device_ts, received_at, clock_skew, updated_at)
        VALUES (@id, @deviceId, @seq, @siteId, @type, @priority, @state, @source, @pressedAt, @deviceTs, @receivedAt, @clockSkew, @updatedAt)`),
      insertEvent: db.prepare('INSERT INTO alert_events (alert_id, at, kind, state, actor, detail) VALUES (?, ?, ?, ?, ?, ?)'),
      insertOutbox: db.prepare(`INSERT OR IGNORE INTO outbox (alert_id, target, route, priority, created_at, next_at)
        VALUES (@alertId, @target, @route, @priority, @createdAt, @nextAt)`),
      // Forward only, decided by the row itself: one statement, no read first.
      advance: db.prepare(`UPDATE alerts SET state = @state, updated_at = @at
        WHERE id = @id AND (${STATE_RANK_SQL}) < @rank RETURNING ${ALERT_SELECT}`).raw(),
      delivered: db.prepare('UPDATE alerts SET delivered_at = coalesce(delivered_at, @at), case_id = coalesce(case_id, @caseId), updated_at = @at WHERE id = @id'),
      acked: db.prepare('UPDATE alerts SET acked_at = @at, acked_by = @by, updated_at = @at WHERE id = @id AND acked_at IS NULL'),
      resolved: db.prepare(`UPDATE alerts SET resolved_at = @at, resolved_by = @by, outcome = @outcome, note = @note, updated_at = @at
        WHERE id = @id AND resolved_at IS NULL`),
      outboxDone: db.prepare('UPDATE outbox SET done_at = @at, attempts = @attempts, last_error = @error WHERE alert_id = @alertId AND target = @target AND done_at IS NULL'),
      outboxCancel: db.prepare('UPDATE outbox SET done_at = ?, last_error = ? WHERE alert_id = ? AND done_at IS NULL'),
      outboxCancelTarget: db.prepare('UPDATE outbox SET done_at = ?, last_error = ? WHERE alert_id = ? AND target = ? AND done_at IS NULL'),
      outboxDefer: db.prepare('UPDATE outbox SET next_at = @nextAt WHERE alert_id = @alertId AND target = @target AND done_at IS NULL'),
      outboxBringForward: db.prepare(`UPDATE outbox SET next_at = @now WHERE done_at IS NULL AND next_at > @now AND target = @target
        AND route IN (SELECT value FROM json_each(@routes))`),
      firstPendingFor: db.prepare(`SELECT * FROM outbox WHERE done_at IS NULL AND target = @target
        AND route IN (SELECT value FROM json_each(@routes)) ORDER BY priority DESC, created_at LIMIT 1`),
      overdue: db.prepare(`SELECT ${ALERT_COLUMNS.map((c) => `a.${c}`).join(', ')}, o.route FROM alerts a JOIN outbox o ON o.alert_id = a.id AND o.target = 'primary'
        WHERE a.delivered_at IS NULL AND a.escalated_at IS NULL AND a.resolved_at IS NULL AND a.received_at <= ?
        ORDER BY a.received_at LIMIT ?`).raw(),
      escalated: db.prepare('UPDATE alerts SET escalated_at = ? WHERE id = ? AND escalated_at IS NULL'),
      // The planner, without statistics, would walk every open alert in priority order instead.
      dueReminders: db.prepare(`SELECT ${ALERT_SELECT} FROM alerts INDEXED BY alerts_unreminded WHERE resolved_at IS NULL AND acked_at IS NULL
        AND coalesce(reminded_at, received_at) <= ? ORDER BY priority DESC, received_at LIMIT ?`).raw(),
      reminded: db.prepare('UPDATE alerts SET reminded_at = ? WHERE id = ?'),
      policeStatus: db.prepare('UPDATE alerts SET police_status = @status, case_id = coalesce(case_id, @caseId), updated_at = @at WHERE id = @id'),
      outboxRetry: db.prepare('UPDATE outbox SET attempts = @attempts, next_at = @nextAt, last_error = @error WHERE alert_id = @alertId AND target = @target AND done_at IS NULL'),
      due: db.prepare('SELECT * FROM outbox WHERE done_at IS NULL AND next_at <= ? ORDER BY priority DESC, created_at LIMIT ?'),
      nextDue: db.prepare('SELECT min(next_at) FROM outbox WHERE done_at IS NULL AND next_at > ?').pluck(),
      pendingCount: db.prepare('SELECT count(*) FROM outbox WHERE done_at IS NULL').pluck(),
      openCount: db.prepare('SELECT count(*) FROM alerts WHERE resolved_at IS NULL').pluck(),
      outboxFor: db.prepare('SELECT * FROM outbox WHERE alert_id = ? ORDER BY target DESC'),
      timeline: db.prepare('SELECT at, kind, state, actor, detail FROM alert_events WHERE alert_id = ? ORDER BY id'),
      listOpen: db.prepare(`SELECT ${ALERT_SELECT} FROM alerts WHERE resolved_at IS NULL ORDER BY priority DESC, received_at LIMIT ?`).raw(),
      // Newest stored first: alerts are inserted as they are received, so the rowid is that order, with no index to keep.
      listAll: db.prepare(`SELECT ${ALERT_SELECT} FROM alerts ORDER BY rowid DESC LIMIT ?`).raw(),
      highestSeq: db.prepare('SELECT max(seq) FROM alerts WHERE device_id = ?').pluck(),
    };
  }

  get(id: string): AlertRecord | undefined {
    const row = this.stmts.get.get(id) as AlertRow | undefined;
    return row && alertFromRow(row);
  }

  /** The highest seq of any stored alert of the device (index alerts_device_seq), null if none. */
  highestSeq(deviceId: string): number | null {
    return (this.stmts.highestSeq.get(deviceId) as number | null) ?? null;
  }

  /** Inserts a new alert with its first timeline entry and outbox row; false if the id already exists. */
  insert(alert: AlertRecord, outbox: Omit<OutboxRow, 'attempts' | 'lastError' | 'doneAt'>): boolean {
    const inserted = this.stmts.insert.run({ ...alert, clockSkew: alert.clockSkew ? 1 : 0 }).changes === 1;
    if (!inserted) return false;
    this.addEvent(alert.id, alert.receivedAt, 'state', alert.state, null, {
      source: alert.source, seq: alert.seq, clockSkew: alert.clockSkew || undefined,
    });
    this.stmts.insertOutbox.run(outbox);
    return true;
  }

  addEvent(alertId: string, at: number, kind: string, state: AlertState | null, actor: string | null, detail: Record<string, unknown> | null): void {
    this.stmts.insertEvent.run(alertId, at, kind, state, actor, detail ? JSON.stringify(detail) : null);
  }

  /** Moves the alert forward to `state`; never backwards. Returns the alert if it moved. */
  advance(alertId: string, state: AlertState, at: number, actor: string | null, detail: Record<string, unknown> | null = null): AlertRecord | null {
    const row = this.stmts.advance.get({ id: alertId, state, at, rank: stateRank(state) }) as AlertRow | undefined;
    if (!row) return null;
    this.addEvent(alertId, at, 'state', state, actor, detail);
    return alertFromRow(row);
  }

  markDelivered(alertId: string, target: OutboxTarget, attempts: number, at: number, caseId: string | null, status: number): void {
    this.stmts.outboxDone.run({ alertId, target, attempts, at, error: null });
    this.stmts.delivered.run({ id: alertId, at, caseId });
    this.addEvent(alertId, at, 'delivered', null, null, { target, attempts, status, caseId });
  }

  scheduleRetry(alertId: string, target: OutboxTarget, attempts: number, nextAt: number, error: string): void {
    this.stmts.outboxRetry.run({ alertId, target, attempts, nextAt, error });
  }

  /** Postpones a row without counting an attempt (its endpoint's breaker is open). */
  deferOutbox(alertId: string, target: OutboxTarget, nextAt: number): void {
    this.stmts.outboxDefer.run({ alertId, target, nextAt });
  }

  /** An endpoint is back: its whole backlog becomes due now, to go out by severity then age. */
  bringForward(target: OutboxTarget, routes: readonly string[], now: number): number {
    return this.stmts.outboxBringForward.run({ target, routes: JSON.stringify(routes), now }).changes;
  }

  /** The row a breaker probe should carry: the most severe, oldest one waiting for these routes, due or parked. */
  firstPendingFor(target: OutboxTarget, routes: readonly string[]): OutboxRow | null {
    const row = this.stmts.firstPendingFor.get({ target, routes: JSON.stringify(routes) }) as OutboxDbRow | undefined;
    return row ? outboxFromRow(row) : null;
  }

  cancelOutboxTarget(alertId: string, target: OutboxTarget, at: number, reason: string): void {
    this.stmts.outboxCancelTarget.run(at, reason, alertId, target);
  }

  addOutbox(row: Omit<OutboxRow, 'attempts' | 'lastError' | 'doneAt'>): boolean {
    return this.stmts.insertOutbox.run(row).changes === 1;
  }

  /** Alerts still undelivered at `receivedBefore` whose escalation has not been decided, with their primary route. */
  overdueForEscalation(receivedBefore: number, limit: number): Array<AlertRecord & { route: string }> {
    return (this.stmts.overdue.all(receivedBefore, limit) as Array<[...AlertRow, route: string]>).map((r) => ({ ...alertFromRow(r), route: r[ALERT_COLUMNS.length] }));
  }

  markEscalated(alertId: string, at: number): boolean {
    return this.stmts.escalated.run(at, alertId).changes === 1;
  }

  /** Open alerts no dispatcher has acknowledged and not announced since `before`: most severe, then oldest first. */
  dueReminders(before: number, limit: number): AlertRecord[] {
    return (this.stmts.dueReminders.all(before, limit) as AlertRow[]).map(alertFromRow);
  }

  markReminded(alertId: string, at: number): void {
    this.stmts.reminded.run(at, alertId);
  }

  setPoliceStatus(alertId: string, status: PoliceStatus, caseId: string | null, at: number): void {
    this.stmts.policeStatus.run({ id: alertId, status, caseId, at });
  }

  /** A dispatcher took the alert: recorded once, with who and when. */
  markAcked(alertId: string, by: string, at: number): boolean {
    return this.stmts.acked.run({ id: alertId, by, at }).changes === 1;
  }

  /** Resolving also stops delivery: nobody needs a patrol car for a closed alert. */
  markResolved(alertId: string, by: string, at: number, outcome: ResolveOutcome, note: string | null): boolean {
    const changed = this.stmts.resolved.run({ id: alertId, by, at, outcome, note }).changes === 1;
    if (changed) this.stmts.outboxCancel.run(at, 'cancelled: alert resolved', alertId);
    return changed;
  }

  dueOutbox(now: number, limit: number): OutboxRow[] {
    return (this.stmts.due.all(now, limit) as OutboxDbRow[]).map(outboxFromRow);
  }

  /** The earliest time after `after` at which an undelivered row falls due (index outbox_next). */
  nextDueAfter(after: number): number | null {
    return (this.stmts.nextDue.get(after) as number | null) ?? null;
  }

  pendingOutbox(): number {
    return this.stmts.pendingCount.get() as number;
  }

  /** Alerts not yet resolved; counted on the partial index of open alerts, not the whole table. */
  openCount(): number {
    return this.stmts.openCount.get() as number;
  }

  outboxFor(alertId: string): OutboxRow[] {
    return (this.stmts.outboxFor.all(alertId) as OutboxDbRow[]).map(outboxFromRow);
  }

  timeline(alertId: string): TimelineEntry[] {
    return (this.stmts.timeline.all(alertId) as Array<Omit<TimelineEntry, 'detail'> & { detail: string | null }>).map((e) => ({
      ...e,
      detail: e.detail ? (JSON.parse(e.detail) as Record<string, unknown>) : null,
    }));
  }

  list(query: AlertQuery): AlertRecord[] {
    const rows = (query.open ? this.stmts.listOpen : this.stmts.listAll).all(query.limit) as AlertRow[];
    return rows.map(alertFromRow);
  }
}
