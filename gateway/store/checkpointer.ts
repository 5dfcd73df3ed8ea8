// WAL checkpoints and WAL restarts on a worker thread. SQLite would otherwise
// checkpoint inside whichever commit pushes the WAL past its threshold, and
// restart the WAL (fsyncing its new header) in the first write after a
// checkpoint that caught up — fsyncs on the gateway's event loop, stalling
// every PUBACK and police POST for as long as the disk takes. The worker has
// its own connections to the same file, runs a PASSIVE checkpoint on a timer
// and keeps the gateway's writes from ever restarting the WAL (see
// checkpoint-worker.cjs); the gateway's connection stops checkpointing by
// itself while the worker runs, and starts again if the worker dies.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Counters } from '../metrics/counters.ts';
import { WAL_SIZE_LIMIT_BYTES, type Db } from './database.ts';

/** SQLite's own default: a checkpoint in the commit that takes the WAL past this many pages. */
const INLINE_AUTOCHECKPOINT_PAGES = 1000;
/**
 * The WAL restarts only when the gateway asks for it, holding its writes for
 * a moment (a checkpoint of what is left and one tiny write: three fsyncs):
 * once it has grown past this many frames (16 MiB of 4 KiB pages).
 */
const RESTART_WAL_FRAMES = 4096;
/** A worker that does not answer within this does not hold the gateway's writes any longer… */
const HOLD_MAX_MS = 1000;
/** …unless it is inside its restart write: then a write of the gateway's would wait for the lock on the event loop. Checked again this often. */
const WRITE_RECHECK_MS = 20;

/** `requested`: the restart asked for while the writes are held (and the worker's first, which establishes its pin). */
/** `walFrames` null: no checkpoint ran (the first report, which only establishes the pin). */
type WorkerReport = ({ ok: true; busy: number; walFrames: number | null; checkpointed: number | null; restarted: boolean } | { ok: false; error: string; code: string | null }) & { requested: boolean };

export interface CheckpointStatus {
  /** On the worker thread (true), or inline on commit after the worker failed (false). */
  offLoop: boolean;
  checkpoints: number;
  walFrames: number;
  /** Times the gateway's writes were held for a WAL restart (at start, and each time the WAL grew past RESTART_WAL_FRAMES). */
  holds: number;
  /** The longest hold so far, ms: how long acknowledgements waited for a restart at worst. */
  longestHoldMs: number;
  /** WAL restarts, all made by the worker. */
  restarts: number;
  lastError: string | null;
}

export class Checkpointer {
  private worker: Worker | null = null;
  private readonly state: CheckpointStatus = { offLoop: false, checkpoints: 0, walFrames: 0, holds: 0, longestHoldMs: 0, restarts: 0, lastError: null };
  private stopping = false;
  /** Set while the gateway's writes are held for a restart: the worker's next requested report ends the hold. */
  private release: (() => void) | null = null;
  private holdTimer: NodeJS.Timeout | null = null;
  private lastHoldAt = 0;
  /** 1 while the worker holds or waits for the write lock (shared memory: readable while its message is still on the way). */
  private writing = new Int32Array(new SharedArrayBuffer(4));

  constructor(
    private readonly db: Db,
    private readonly intervalMs: number,
    private readonly counters: Counters,
    private readonly log: Logger,
    /** Holds the gateway's writes until the promise settles (CommitQueue.holdWhile). */
    private readonly holdWrites: (until: Promise<void>) => void = () => undefined,
    private readonly restartWalFrames = RESTART_WAL_FRAMES,
  ) {}

  start(): void {
    this.stopping = false;
    this.writing = new Int32Array(new SharedArrayBuffer(4));
    const workerData = { path: this.db.name, intervalMs: this.intervalMs, walSizeLimitBytes: WAL_SIZE_LIMIT_BYTES, writing: this.writing.buffer };
    const worker = new Worker(new URL('./checkpoint-worker.cjs', import.meta.url), { workerData });
    // The worker's timer must not keep a stopping process alive; stop() ends it explicitly.
    worker.unref();
    worker.on('message', (report: WorkerReport) => this.noteReport(report));
    worker.on('error', (err) => this.fallBack(err));
    worker.on('exit', (code) => {
      if (!this.stopping) this.fallBack(new Error(`checkpoint worker exited with code ${code}`));
    });
    this.worker = worker;
    this.db.pragma('wal_autocheckpoint = 0');
    this.state.offLoop = true;
    // Until the worker's first restart has pinned the WAL, a write of the gateway's could still restart it.
    this.holdForRestart();
  }

  status(): CheckpointStatus {
    return { ...this.state };
  }

  /** A last checkpoint, then the worker ends; call before the store's connection closes. */
  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    this.endHold();
    if (!worker) return;
    this.stopping = true;
    // Unref'd, the worker would not keep the process alive while we wait for it: the process could exit mid-shutdown.
    worker.ref();
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('stop');
    await exited;
  }

  private noteReport(report: WorkerReport): void {
    if (report.requested) this.endHold();
    if (report.ok) {
      if (report.walFrames !== null) this.state.checkpoints++;
      this.state.walFrames = report.restarted ? 0 : report.walFrames ?? this.state.walFrames;
      if (report.restarted) this.state.restarts++;
      if (this.state.lastError) this.log.warn({ walFrames: report.walFrames }, 'WAL checkpoints work again');
      this.state.lastError = null;
      if (!report.requested && (report.walFrames ?? 0) > this.restartWalFrames) this.requestRestart();
      return;
    }
    this.counters.inc('store_checkpoint_failures_total');
    // Commits are unaffected (the WAL only grows); one line per change of error, not one per tick.
    if (this.state.lastError !== report.error) this.log.error({ error: report.error, code: report.code ?? 'STORE_CHECKPOINT_FAILED' }, 'WAL checkpoint failed; the WAL grows until it succeeds');
    this.state.lastError = report.error;
  }

  private requestRestart(): void {
    const worker = this.worker;
    // At most one hold per HOLD_MAX_MS, whatever the worker reports: writes are never held most of the time.
    if (!worker || this.release || Date.now() - this.lastHoldAt < HOLD_MAX_MS) return;
    this.holdForRestart();
    worker.postMessage('restart');
  }

  /** Held until the worker's next requested report, its death, or HOLD_MAX_MS outside its restart write. */
  private holdForRestart(): void {
    this.lastHoldAt = Date.now();
    this.state.holds++;
    const heldAt = performance.now();
    this.holdWrites(new Promise<void>((resolve) => {
      const expire = () => {
        if (Atomics.load(this.writing, 0) === 1) this.holdTimer = setTimeout(expire, WRITE_RECHECK_MS);
        else this.endHold();
      };
      this.holdTimer = setTimeout(expire, HOLD_MAX_MS);
      this.release = () => {
        if (this.holdTimer) clearTimeout(this.holdTimer);
        this.holdTimer = null;
        this.state.longestHoldMs = Math.max(this.state.longestHoldMs, Math.round((performance.now() - heldAt) * 10) / 10);
        resolve();
      };
    }));
  }

  private endHold(): void {
    const release = this.release;
    this.release = null;
    release?.();
  }

  /** Without the worker the WAL would grow without end: SQLite checkpoints on commit again. */
  private fallBack(err: Error): void {
    if (!this.worker) return;
    this.worker = null;
    this.endHold();
    this.counters.inc('store_checkpoint_failures_total');
    this.state.offLoop = false;
    this.state.lastError = err.message;
    this.log.error({ err, code: 'STORE_CHECKPOINT_WORKER_FAILED' }, 'WAL checkpoint worker failed: checkpoints run on commit again (event-loop stalls possible)');
    if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${INLINE_AUTOCHECKPOINT_PAGES}`);
  }
}
