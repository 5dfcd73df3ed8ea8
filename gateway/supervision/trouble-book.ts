// The book of trouble entries: who raises them (supervision, battery and
// tamper checks, the serial bridge, later the flood limiter) calls raise() and
// clear(); who shows them (GET /api/troubles, the live feed) reads open() and
// listens with on(). Memory is the truth for open troubles, so a raise costs
// a map lookup; rows reach the store in batches of one CommitQueue job at a
// time, so a storm of 10,000 troubles never crowds alerts out of the queue.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { TROUBLE_SEVERITY, type Trouble, type TroubleChange, type TroubleKind } from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import { LogThrottle } from '../log-throttle.ts';
import type { Counters } from '../metrics/counters.ts';
import type { CommitQueue } from '../store/commit-queue.ts';
import type { TroubleRecord, TroubleRepo } from '../store/trouble-repo.ts';
import type { TroubleSource } from './trouble-source.ts';

/**
 * What a trouble is about. A device trouble carries the device's site too;
 * `port` names a receiver port whose dongle is not a registered device.
 */
export type TroubleTarget = { deviceId: string } | { siteId: string } | { port: string };

/** The raise/clear half of the book, for callers that only report troubles (serial bridge, flood limiter). */
export interface TroubleSink {
  /** Opens a trouble unless one of this kind is already open for the target; returns the open one. */
  raise(kind: TroubleKind, target: TroubleTarget, detail: string): Trouble;
  /** Clears the open trouble of this kind for the target, if any (a restore); returns it. */
  clear(kind: TroubleKind, target: TroubleTarget, detail: string): Trouble | null;
}

export interface TroubleBookDeps {
  repo: TroubleRepo;
  commits: CommitQueue;
  /** The site a device belongs to, shown with its troubles. */
  siteOf: (deviceId: string) => string | null;
  clock: Clock;
  counters: Counters;
  log: Logger;
}

type WriteOp = { op: 'insert'; record: TroubleRecord } | { op: 'clear'; id: string; at: number; detail: string };

/** Row writes waiting for the store; past this they are dropped (and counted): memory stays right, the disk catches up at the next change. */
const MAX_PENDING_WRITES = 50_000;
/** Row writes per CommitQueue job: one job holds the event loop for a few ms at most. */
const WRITE_BATCH = 500;
/** After a failed write, the next try waits this long (the store is failing or overloaded). */
const RETRY_MS = 1000;
/** GET /api/troubles?state=all shows at most this many. */
export const RECENT_LIMIT = 1000;

const iso = (ms: number) => new Date(ms).toISOString();

function subjectOf(target: TroubleTarget): string {
  return 'deviceId' in target ? target.deviceId : 'siteId' in target ? target.siteId : `port:${target.port}`;
}

function view(r: TroubleRecord): Trouble {
  return {
    id: r.id, kind: r.kind, severity: TROUBLE_SEVERITY[r.kind], deviceId: r.deviceId, siteId: r.siteId, detail: r.detail,
    raisedAt: iso(r.raisedAt), clearedAt: r.clearedAt === null ? null : iso(r.clearedAt),
  };
}

/** Most severe first, then oldest first (the TroubleSource order). */
const bySeverity = (a: TroubleRecord, b: TroubleRecord) => TROUBLE_SEVERITY[b.kind] - TROUBLE_SEVERITY[a.kind] || a.raisedAt - b.raisedAt;

export class TroubleBook implements TroubleSource, TroubleSink {
  /** Open troubles by `kind|subject`. */
  private readonly openByKey = new Map<string, TroubleRecord>();
  private readonly listeners = new Set<(change: TroubleChange) => void>();
  private pending: WriteOp[] = [];
  private writing: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly throttle: LogThrottle;

  constructor(private readonly deps: TroubleBookDeps) {
    this.throttle = new LogThrottle(deps.log, undefined, () => deps.clock.now());
  }

  /** Loads the troubles left open by the last run. */
  start(): void {
    for (const r of this.deps.repo.open()) this.openByKey.set(`${r.kind}|${r.subject}`, r);
    if (this.openByKey.size > 0) this.deps.log.info({ open: this.openByKey.size }, `${this.openByKey.size} trouble entries still open from the last run`);
  }

  /** Hands every pending row to the store; the CommitQueue's close() commits it. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.writing;
    const ops = this.pending.splice(0);
    if (ops.length > 0) await this.deps.commits.write(() => this.apply(ops)).catch((err: unknown) => this.deps.log.error({ err, rows: ops.length }, 'trouble rows not stored on shutdown'));
  }

  open(): Trouble[] {
    return [...this.openByKey.values()].sort(bySeverity).map(view);
  }

  /** Open ones from memory, the rest from the store, newest first. */
  recent(limit = RECENT_LIMIT): Trouble[] {
    const rows = new Map(this.deps.repo.recent(limit).map((r) => [r.id, r]));
    for (const r of this.openByKey.values()) rows.set(r.id, r);
    return [...rows.values()].sort((a, b) => b.raisedAt - a.raisedAt).slice(0, limit).map(view);
  }

  openCount(): number {
    return this.openByKey.size;
  }

  isOpen(kind: TroubleKind, target: TroubleTarget): boolean {
    return this.openByKey.has(`${kind}|${subjectOf(target)}`);
  }

  /** Kinds open for one device, most severe first. */
  openFor(deviceId: string): TroubleKind[] {
    return (Object.keys(TROUBLE_SEVERITY) as TroubleKind[]).filter((kind) => this.openByKey.has(`${kind}|${deviceId}`))
      .sort((a, b) => TROUBLE_SEVERITY[b] - TROUBLE_SEVERITY[a]);
  }

  on(listener: (change: TroubleChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  raise(kind: TroubleKind, target: TroubleTarget, detail: string): Trouble {
    const subject = subjectOf(target);
    const key = `${kind}|${subject}`;
    const known = this.openByKey.get(key);
    if (known) return view(known);
    const deviceId = 'deviceId' in target ? target.deviceId : null;
    const record: TroubleRecord = {
      id: `tr-${randomBytes(10).toString('hex')}`, kind, subject, deviceId,
      siteId: 'siteId' in target ? target.siteId : deviceId ? this.deps.siteOf(deviceId) : null,
      detail: detail.slice(0, 500), raisedAt: this.deps.clock.now(), clearedAt: null,
    };
    this.openByKey.set(key, record);
    this.deps.counters.inc('troubles_raised_total', { kind });
    // Once per kind and burst: a city-wide outage is 10,000 troubles, and the book (not the log) is their record.
    this.throttle.warn(`raised:${kind}`, { troubleId: record.id, kind, deviceId, siteId: record.siteId, subject, detail: record.detail, code: 'TROUBLE_RAISED' },
      `trouble: ${kind} ${subject}: ${record.detail}`);
    this.queue({ op: 'insert', record });
    const trouble = view(record);
    this.emit({ kind: 'raised', trouble });
    return trouble;
  }

  clear(kind: TroubleKind, target: TroubleTarget, detail: string): Trouble | null {
    const subject = subjectOf(target);
    const key = `${kind}|${subject}`;
    const record = this.openByKey.get(key);
    if (!record) return null;
    this.openByKey.delete(key);
    const cleared = { ...record, clearedAt: this.deps.clock.now() };
    this.deps.counters.inc('troubles_cleared_total', { kind });
    this.deps.log.debug({ troubleId: record.id, kind, deviceId: record.deviceId, siteId: record.siteId, subject, detail, code: 'TROUBLE_CLEARED' },
      `restore: ${kind} ${subject}: ${detail}`);
    this.queue({ op: 'clear', id: record.id, at: cleared.clearedAt, detail: detail.slice(0, 500) });
    const trouble = view(cleared);
    this.emit({ kind: 'cleared', trouble });
    return trouble;
  }

  private emit(change: TroubleChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.deps.log.error({ err, troubleId: change.trouble.id }, 'trouble listener failed');
      }
    }
  }

  private queue(op: WriteOp): void {
    if (this.pending.length >= MAX_PENDING_WRITES) {
      this.deps.counters.inc('trouble_writes_dropped_total');
      this.throttle.warn('dropped', { pending: this.pending.length, code: 'TROUBLE_WRITES_DROPPED' }, 'trouble rows dropped: the store is not keeping up');
      return;
    }
    this.pending.push(op);
    this.writeNext();
  }

  /** At most one job in the CommitQueue at a time: alerts queued behind it wait for one small batch, never for a storm. */
  private writeNext(): void {
    if (this.writing || this.retryTimer || this.stopped || this.pending.length === 0) return;
    const ops = this.pending.splice(0, WRITE_BATCH);
    this.writing = this.deps.commits.write(() => this.apply(ops)).then(
      () => {
        this.writing = null;
        this.writeNext();
      },
      (err: unknown) => {
        this.writing = null;
        this.pending.unshift(...ops);
        this.deps.counters.inc('trouble_write_failures_total');
        if (this.stopped) return;
        this.throttle.warn('failed', { err, rows: ops.length, code: 'TROUBLE_WRITE_FAILED' }, 'trouble rows not stored yet: retrying');
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.writeNext();
        }, RETRY_MS);
        this.retryTimer.unref();
      },
    );
  }

  private apply(ops: WriteOp[]): void {
    for (const op of ops) {
      if (op.op === 'insert') this.deps.repo.insert(op.record);
      else this.deps.repo.clear(op.id, op.at, op.detail);
    }
  }
}
