// The store as the gateway runs it: the SQLite connection, the commit queue,
// and what keeps the disk off the event loop — the WAL flush on the thread
// pool (power-loss durability, store.synchronous = full) and the checkpoints
// on a worker thread.
import type { Logger } from 'pino';
import type { Counters } from '../metrics/counters.ts';
import { Checkpointer, type CheckpointStatus } from './checkpointer.ts';
import { CommitQueue, type StoreHealth } from './commit-queue.ts';
import { openDatabase, type Db } from './database.ts';
import { WalFlusher } from './wal-flusher.ts';

export interface DurableStoreOptions {
  dataDir: string;
  /** full: a write is durable once the WAL is on disk (survives power loss); normal: once SQLite committed it (survives a crash). */
  synchronous: 'full' | 'normal';
  checkpointIntervalMs: number;
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
    try {
      const flusher = this.opts.synchronous === 'full' ? new WalFlusher(`${db.name}-wal`) : null;
      flusher?.start();
      const checkpointer = new Checkpointer(db, this.opts.checkpointIntervalMs, this.counters, this.log);
      checkpointer.start();
      const commits = new CommitQueue(db, this.log, undefined, flusher);
      this.opened = { db, commits, flusher, checkpointer };
      return { db, commits };
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Only while started. */
  status(): DurableStoreStatus {
    const { commits, checkpointer, flusher } = this.opened!;
    return { ...commits.status(), checkpoint: checkpointer.status(), walFlushes: flusher?.count() ?? 0 };
  }

  /** Every pending write committed and flushed, a last checkpoint, then the connection closed. */
  async stop(): Promise<void> {
    const opened = this.opened;
    this.opened = null;
    if (!opened) return;
    await opened.commits.close();
    await opened.flusher?.stop();
    await opened.checkpointer.stop();
    opened.db.close();
  }
}
