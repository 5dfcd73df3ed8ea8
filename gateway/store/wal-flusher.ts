// Power-loss durability without an fsync on the event loop. SQLite commits in
// WAL mode with synchronous=NORMAL: the commit is appended to the WAL file
// (a write into the page cache, microseconds) but not flushed. This flusher
// then fdatasyncs the WAL on libuv's thread pool; only once that returns is
// the commit durable, and only then does the commit queue tell its callers.
// The guarantee is synchronous=FULL's (the WAL is on disk before anyone is
// acknowledged), while a slow disk delays acknowledgements, not the gateway.
//
// fsync works on the file, not the descriptor: syncing our own descriptor of
// the WAL flushes what SQLite's connection wrote into it. SQLite keeps the
// same WAL file (inode) for as long as a connection is open — restarts and
// `journal_size_limit` rewrite or truncate it in place — so one descriptor,
// opened after the store is open, stays valid until the store closes.
import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';

export class WalFlusher {
  private fd: number | null = null;
  /** Waiting for a flush that starts after they were committed. */
  private waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private flushing = false;
  private flushes = 0;

  constructor(private readonly walPath: string) {}

  /** Opens the WAL; the store must be open in WAL mode and have written once (migrations do). */
  start(): void {
    this.fd = openSync(this.walPath, 'r');
  }

  /**
   * Resolves once everything committed before this call is on disk. Calls
   * that arrive while a flush runs share the next one: a burst costs one
   * fdatasync per flush interval, not one per commit.
   */
  flush(): Promise<void> {
    if (this.fd === null) return Promise.reject(Object.assign(new Error('WAL flusher is not open'), { code: 'STORE_CLOSED' }));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.flushing) this.next();
    });
  }

  /** fdatasyncs completed since start. */
  count(): number {
    return this.flushes;
  }

  /** Lets the flush in progress finish, flushes once more, and closes the descriptor. */
  async stop(): Promise<void> {
    if (this.fd === null) return;
    if (this.flushing || this.waiting.length > 0) await this.flush().catch(() => undefined);
    const fd = this.fd;
    this.fd = null;
    fdatasyncSync(fd);
    closeSync(fd);
  }

  private next(): void {
    const fd = this.fd;
    const batch = this.waiting;
    this.waiting = [];
    if (fd === null || batch.length === 0) {
      this.flushing = false;
      return;
    }
    this.flushing = true;
    fdatasync(fd, (err) => {
      this.flushes++;
      if (err) {
        const failure = Object.assign(new Error(`fdatasync of the WAL failed: ${err.message}`), { code: err.code ?? 'SQLITE_IOERR_FSYNC' });
        for (const waiter of batch) waiter.reject(failure);
      } else {
        for (const waiter of batch) waiter.resolve();
      }
      this.next();
    });
  }
}

