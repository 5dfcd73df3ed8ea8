// The store as the gateway runs it: the SQLite connection, the commit queue,
// and what keeps the disk off the event loop — the WAL flush on the thread
// pool (power-loss durability, store.synchronous = full) and the checkpoints
// on a worker thread.
import type { Logger } from 'pino';
import type { Counters } from '../metrics/counters.ts';
import { Checkpointer, type CheckpointStatus } from './checkpointer.ts';
import { COMMIT_QUEUE_DEFAULTS, CommitQueue, type StoreHealth } from './commit-queue.ts';
import { openDatabase, type Db } from './database.ts';
import { WalFlusher } from './wal-flusher.ts';

/**
 * At 1,000 alerts a second a transaction every 2 ms carries a few alerts'
 * writes: commits per alert 0.61-0.74 → 0.42, gateway CPU 116-123 → 110-113 %
 * of a core in the city bench, for at most 2 ms more before a PUBACK.
 */
const GROUP_COMMIT_WINDOW_MS = 2;

export interface DurableStoreOptions {
  dataDir: string;
  /** full: a write is durable once the WAL is on disk (survives power loss); normal: once SQLite committed it (survives a crash). */
  synchronous: 'full' | 'normal';
  checkpointIntervalMs: number;
  /** Frames past which the WAL is restarted (default RESTART_WAL_FRAMES); smaller for tests and benches that want to see restarts. */
  restartWalFrames?: number;
}

export interface DurableStoreStatus extends StoreHealth {
  checkpoint: CheckpointStatus;
  walFlushes: number;
}

export class DurableStore {
  private opened: { db: Db; commits: CommitQueue; flusher: WalFlusher | null; checkpointer: Checkpointer } | null = null;

  constructor(
    private readonly opts: DurableStoreOptions,
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  start(): { db: Db; commits: CommitQueue } {
    // SQLite itself never fsyncs on commit; with `full` the flusher does, off the event loop, before any caller is told.
    const db = openDatabase({ dataDir: this.opts.dataDir, synchronous: 'normal' });
    const flusher = this.opts.synchronous === 'full' ? new WalFlusher(`${db.name}-wal`) : null;
    try {
      flusher?.start();
      const commits = new CommitQueue(db, this.log, { ...COMMIT_QUEUE_DEFAULTS, groupWindowMs: GROUP_COMMIT_WINDOW_MS }, flusher);
      const checkpointer = new Checkpointer(db, this.opts.checkpointIntervalMs, this.counters, this.log, (until) => commits.holdWhile(until), this.opts.restartWalFrames);
      checkpointer.start();
      this.opened = { db, commits, flusher, checkpointer };
      return { db, commits };
    } catch (err) {
      void flusher?.stop().catch(() => undefined);
      db.close();
      throw err;
    }
  }

  /** Only while started. */
  status(): DurableStoreStatus {
    const { commits, checkpointer, flusher } = this.opened!;
    return { ...commits.status(), checkpoint: checkpointer.status(), walFlushes: flusher?.count() ?? 0 };
  }

  /**
   * The checkpoint worker ends first (after a restart it may be in the
   * middle of: the last commits must not meet its lock), then every pending
   * write is committed and flushed and the connection closed (SQLite's last
   * checkpoint).
   */
  async stop(): Promise<void> {
    const opened = this.opened;
    this.opened = null;
    if (!opened) return;
    try {
      await opened.checkpointer.stop();
      await opened.commits.close();
      await opened.flusher?.stop();
    } finally {
      opened.db.close();
    }
  }
}
