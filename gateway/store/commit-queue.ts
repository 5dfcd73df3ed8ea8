// Group commit: writes that arrive in the same event-loop turn share one
// transaction, and transactions committed while the WAL is being flushed
// share the next flush. A burst of presses costs one disk flush per flush
// interval instead of one per press, and every caller still learns whether
// *its* write is durable before it acknowledges anything.
import type { Logger } from 'pino';
import type { Db } from './database.ts';
import type { WalFlusher } from './wal-flusher.ts';

export class StoreError extends Error {
  constructor(readonly code: 'STORE_OVERLOADED' | 'STORE_COMMIT_FAILED' | 'STORE_CLOSED', message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** SQLite result codes that say the store itself cannot write, as opposed to one job's bad data. */
const STORAGE_FAILURES = /^SQLITE_(READONLY|IOERR|FULL|BUSY|LOCKED|CANTOPEN|CORRUPT|NOMEM|PERM|NOTADB)/;

function isStorageFailure(error: unknown): boolean {
  return STORAGE_FAILURES.test((error as { code?: string }).code ?? '');
}

interface Job {
  run: () => unknown;
  /** Run inside a savepoint of its own, so that its failure undoes only its writes. */
  savepoint: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export interface CommitQueueOptions {
  /** Pending writes beyond this are refused (the device retries), never buffered without end. */
  maxPending: number;
  /** Jobs per transaction (one transaction per turn): bounds how long a commit holds the event loop. */
  maxBatch: number;
  /** A WAL flush running longer than this makes the store report failing (a disk that stopped answering). */
  flushStallMs?: number;
  /**
   * A transaction starts at most this often (ms after the previous one
   * began); writes arriving in between join the next. Default 0: every
   * turn. Under steady load a few ms gather several alerts' writes into one
   * transaction — fewer commits and fewer WAL pages written — and delay only
   * acknowledgements, never a police POST, which does not wait for the commit.
   */
  groupWindowMs?: number;
}

const FLUSH_STALL_MS = 10_000;

/** 250 jobs: about 10-25 ms of the event loop per transaction on the alert path. */
export const COMMIT_QUEUE_DEFAULTS: CommitQueueOptions = { maxPending: 20_000, maxBatch: 250 };

export interface WriteOptions {
  /**
   * false: no savepoint of its own (a savepoint costs about as much as two
   * small statements). Only for a job that cannot fail unless the store does
   * — plain inserts and updates without constraints that could refuse them,
   * on the alert path — because if it throws anyway, every job of its batch
   * is rejected, as if the commit had failed.
   */
  ownSavepoint?: boolean;
  /**
   * true: never refused as STORE_OVERLOADED. For writes their caller bounds
   * itself and that must not be lost to a burst of others: the outcome of a
   * police attempt (at most `police.concurrency` in flight) — refused, the
   * attempt would count as unrecorded and the alert be POSTed again.
   */
  outsideLimit?: boolean;
}

export interface StoreHealth {
  ok: boolean;
  lastError: string | null;
  lastErrorAt: number | null;
  commits: number;
  failedCommits: number;
  rejectedOverloaded: number;
  pending: number;
  /** Committed, waiting for the WAL flush before their callers hear of it. */
  flushing: number;
}

/** While the store is failing, a tiny write tries it this often, so health recovers even when no device is sending. */
const PROBE_INTERVAL_MS = 1000;

export class CommitQueue {
  private pending: Job[] = [];
  private probe: NodeJS.Timeout | null = null;
  private scheduled = false;
  private closed = false;
  private readonly health: StoreHealth = {
    ok: true, lastError: null, lastErrorAt: null, commits: 0, failedCommits: 0, rejectedOverloaded: 0, pending: 0, flushing: 0,
  };
  /** When each flush asked for and not yet settled was asked for, oldest first (they settle in order): its length is the flushes running. */
  private readonly flushAskedAt: number[] = [];
  private holds = 0;
  /** Date.now() when the writes began to be held, while they are. */
  private heldSince: number | null = null;
  /** performance.now() when the last transaction began. */
  private lastCommitAt = -Infinity;
  private windowTimer: NodeJS.Timeout | null = null;
  /**
   * A WAL flush failed. Unlike a failed commit, its transactions stay
   * committed — visible here, maybe never on disk — and a later flush that
   * "succeeds" proves nothing (Linux reports a writeback error once; WAL
   * recovery stops at the first lost frame, dropping every later commit
   * too). Nothing may be acknowledged again until a restart re-reads what
   * really is on disk.
   */
  private flushFailed: Error | null = null;
  /** Settles once every committed batch has been flushed and told: what `close` waits for. */
  private flushed: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly opts: CommitQueueOptions = COMMIT_QUEUE_DEFAULTS,
    /**
     * Power-loss durability (store.synchronous = full): a batch counts as
     * committed only once the WAL is flushed. Null when SQLite's own
     * `synchronous` setting is all the durability asked for.
     */
    private readonly flusher: Pick<WalFlusher, 'flush'> | null = null,
  ) {}

  /**
   * Runs `fn` inside the next group transaction. Resolves with its result once
   * the transaction is committed and, with a flusher, the WAL flushed;
   * rejects if `fn` throws (only its own savepoint is rolled back) or if the
   * commit or the flush fails (every job of the batch is rejected).
   */
  write<T>(fn: () => T, opts: WriteOptions = {}): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError('STORE_CLOSED', 'store is closed'));
    if (this.flushFailed) return Promise.reject(this.unflushable());
    if (!opts.outsideLimit && this.pending.length >= this.opts.maxPending) {
      this.health.rejectedOverloaded++;
      return Promise.reject(new StoreError('STORE_OVERLOADED', `more than ${this.opts.maxPending} writes pending`));
    }
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ run: fn, savepoint: opts.ownSavepoint ?? true, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /**
   * The next turn commits what is pending — unless a WAL flush is running:
   * a commit made now could only be made durable by the flush after it, so
   * the writes wait and commit together the moment it ends, as one
   * transaction (fewer, larger WAL writes) at no cost in latency; and not
   * before the group window since the last commit has passed. A full batch
   * waits for neither, only for a hold (`holdWhile`).
   */
  private schedule(): void {
    const full = this.pending.length >= this.opts.maxBatch;
    // Scheduled already — unless a batch filled while it waits for its group window.
    if (this.scheduled && !(full && this.windowTimer)) return;
    if (this.holds > 0 || (this.flushAskedAt.length > 0 && !full)) return;
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = null;
    this.scheduled = true;
    const run = () => {
      this.windowTimer = null;
      this.scheduled = false;
      // A hold that began after this was scheduled wins: its release schedules again.
      if (this.holds > 0) return;
      this.commit(this.pending.splice(0, this.opts.maxBatch));
      // One transaction per turn: a backlog (after a hold, or a slow flush) commits between other I/O, not as one long block.
      if (this.pending.length > 0) this.schedule();
    };
    // Monotonic, and never more than the window: a wall clock stepped back must not hold the writes.
    const window = this.opts.groupWindowMs ?? 0;
    const wait = Math.min(window, window - (performance.now() - this.lastCommitAt));
    if (wait > 0 && !full) this.windowTimer = setTimeout(run, wait);
    else setImmediate(run);
  }

  /**
   * Starts no transaction until `until` settles, not even for a full batch
   * (writes queue meanwhile, up to `maxPending`): the moment the WAL
   * restarts on the checkpointer's thread, when a write here would restart
   * it on the event loop or wait there for the checkpointer's lock. The
   * caller bounds how long it holds.
   */
  holdWhile(until: Promise<unknown>): void {
    if (this.holds++ === 0) this.heldSince = Date.now();
    // Settled either way: a rejected hold ends like a released one (and is not an unhandled rejection).
    const done = () => {
      if (--this.holds === 0) this.heldSince = null;
      if (this.pending.length > 0) this.schedule();
    };
    until.then(done, done);
  }

  /** True when a write now would be queued, on a store that commits: not closed, failing or full. */
  accepting(): boolean {
    return !this.closed && this.health.ok && !this.flushFailed && this.pending.length < this.opts.maxPending;
  }

  /** Commits everything pending now, in one turn; used on shutdown. */
  flush(): void {
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = null;
    this.scheduled = false;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.opts.maxBatch);
      this.commit(batch);
    }
  }

  private commit(batch: Job[]): void {
    this.lastCommitAt = performance.now();
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      this.db.transaction(() => {
        for (const job of batch) {
          // Without a savepoint a failing job cannot be undone alone: the whole batch fails.
          if (!job.savepoint) {
            const value = job.run();
            // better-sqlite3 refuses an async job only inside its own transaction wrapper.
            if (typeof (value as { then?: unknown } | null)?.then === 'function') throw new TypeError('a commit-queue job must not return a promise');
            outcomes.push({ ok: true, value });
            continue;
          }
          try {
            // A nested transaction is a savepoint: a failing job undoes only itself.
            outcomes.push({ ok: true, value: this.db.transaction(job.run)() });
          } catch (error) {
            // Disk full, I/O errors and the like make SQLite roll back the whole
            // transaction (or would fail every job): abort the batch, so that no
            // later job runs outside it and the store is reported unhealthy.
            if (!this.db.inTransaction || isStorageFailure(error)) throw error;
            outcomes.push({ ok: false, error });
          }
        }
      })();
    } catch (error) {
      this.fail(batch, error);
      return;
    }
    const settle = () => {
      // Flushed after an earlier flush failed: its frames sit behind possibly lost ones.
      if (this.flushFailed) return this.rejectAll(batch, this.unflushable());
      this.noteSuccess();
      batch.forEach((job, i) => {
        const outcome = outcomes[i]!;
        if (outcome.ok) job.resolve(outcome.value);
        else job.reject(outcome.error);
      });
    };
    if (!this.flusher) return settle();
    // Committed but not yet on disk: readers on this connection already see it
    // (the early POST may run), but no caller acknowledges anything until the flush.
    this.health.flushing += batch.length;
    this.flushAskedAt.push(Date.now());
    const flushed = () => this.flushAskedAt.shift();
    const done = this.flusher.flush().then(() => {
      flushed();
      settle();
    }, (error: unknown) => {
      flushed();
      this.failFlush(batch, error);
    }).finally(() => {
      this.health.flushing -= batch.length;
      if (this.pending.length > 0) this.schedule();
    });
    this.flushed = Promise.all([this.flushed, done]).then(() => undefined);
  }

  private fail(batch: Job[], error: unknown): void {
    this.noteFailure(error, batch.length);
    this.rejectAll(batch, new StoreError('STORE_COMMIT_FAILED', `store commit failed: ${(error as Error).message}`, { cause: error }));
  }

  private failFlush(batch: Job[], error: unknown): void {
    if (!this.flushFailed) {
      this.flushFailed = error as Error;
      this.log.fatal({ err: error, jobs: batch.length, code: 'STORE_FLUSH_FAILED' },
        'WAL FLUSH FAILED: committed writes may not be on disk. Nothing is acknowledged any more: RESTART THE GATEWAY (recovery re-reads what is really stored; devices resend what was not acknowledged)');
    }
    this.health.failedCommits++;
    this.health.ok = false;
    this.health.lastError = `WAL flush failed, restart required: ${(error as Error).message}`;
    this.health.lastErrorAt = Date.now();
    this.rejectAll(batch, this.unflushable());
  }

  private unflushable(): StoreError {
    return new StoreError('STORE_COMMIT_FAILED', `store failed: a WAL flush failed (${this.flushFailed!.message}); restart the gateway`, { cause: this.flushFailed });
  }

  private rejectAll(batch: Job[], failure: StoreError): void {
    for (const job of batch) job.reject(failure);
  }

  private noteFailure(error: unknown, jobs: number): void {
    this.health.failedCommits++;
    this.health.lastError = (error as Error).message;
    this.health.lastErrorAt = Date.now();
    if (this.health.ok) {
      this.log.fatal({ err: error, jobs, code: 'STORE_COMMIT_FAILED' }, 'STORE CANNOT COMMIT: events are not acknowledged to devices until it recovers');
    } else {
      this.log.error({ err: error, jobs, code: 'STORE_COMMIT_FAILED' }, 'store commit failed again');
    }
    this.health.ok = false;
    if (!this.probe && !this.closed) {
      // A real write: an empty transaction takes no lock and would "succeed" against a locked or read-only store.
      const probe = () => this.db.exec(`CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
        INSERT OR REPLACE INTO store_probe VALUES (1, ${Date.now()})`);
      this.probe = setInterval(() => void this.write(probe).catch(() => undefined), PROBE_INTERVAL_MS);
      this.probe.unref();
    }
  }

  private noteSuccess(): void {
    this.health.commits++;
    if (this.probe) clearInterval(this.probe);
    this.probe = null;
    if (!this.health.ok) {
      this.health.ok = true;
      this.log.warn({ failedCommits: this.health.failedCommits }, 'store commits again: recovered');
    }
  }

  status(): StoreHealth {
    const status = { ...this.health, pending: this.pending.length };
    // A hung fdatasync fails nothing by itself: nothing is acknowledged, and the store must say why.
    // A hold that does not end (a restart's fsync that never returns) is the same: nothing is acknowledged.
    const now = Date.now();
    const stallMs = this.opts.flushStallMs ?? FLUSH_STALL_MS;
    const stalled = (since: number | undefined | null, what: (seconds: number) => string): StoreHealth | null =>
      since == null || now - since <= stallMs ? null
        : { ...status, ok: false, lastError: `${what(Math.round((now - since) / 1000))}: the disk is not answering; nothing is acknowledged meanwhile`, lastErrorAt: since };
    return stalled(this.flushAskedAt[0], (s) => `WAL flush not finished after ${s} s`)
      ?? stalled(this.heldSince, (s) => `writes held ${s} s for a WAL restart that has not finished`)
      ?? status;
  }

  /** Commits what is pending and waits until every batch is flushed and its callers told. */
  async close(): Promise<void> {
    if (this.probe) clearInterval(this.probe);
    this.probe = null;
    this.flush();
    this.closed = true;
    await this.flushed;
  }
}
