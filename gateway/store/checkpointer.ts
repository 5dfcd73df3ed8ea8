// WAL checkpoints on a worker thread. SQLite would otherwise checkpoint inside
// whichever commit pushes the WAL past its threshold — two fsyncs on the
// gateway's event loop, stalling every PUBACK and police POST behind them.
// The worker has its own connection to the same file and runs a PASSIVE
// checkpoint on a timer; the gateway's connection stops checkpointing by
// itself while the worker runs, and starts again if the worker dies.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Counters } from '../metrics/counters.ts';
import type { Db } from './database.ts';

/** SQLite's own default: a checkpoint in the commit that takes the WAL past this many pages. */
const INLINE_AUTOCHECKPOINT_PAGES = 1000;
/**
 * A WAL restarts (and is cut back to its size limit) only at a write that
 * finds every frame checkpointed; under steady writes some always land
 * during a checkpoint. Past this many frames (64 MiB of 4 KiB pages) the
 * gateway holds its writes for one checkpoint, so the next one restarts it.
 */
const LARGE_WAL_FRAMES = 16_384;
/** A worker that does not answer within this does not hold the gateway's writes any longer. */
const HOLD_MAX_MS = 1000;

/** `requested`: the checkpoint asked for while the writes are held (not one of the timer's, which may have overlapped writes). */
type WorkerReport = ({ ok: true; busy: number; walFrames: number; checkpointed: number } | { ok: false; error: string; code: string | null }) & { requested: boolean };

export interface CheckpointStatus {
  /** On the worker thread (true), or inline on commit after the worker failed (false). */
  offLoop: boolean;
  checkpoints: number;
  walFrames: number;
  /** Times the gateway's writes were held for a checkpoint (the WAL had grown past LARGE_WAL_FRAMES). */
  holds: number;
  lastError: string | null;
}

export class Checkpointer {
  private worker: Worker | null = null;
  private readonly state: CheckpointStatus = { offLoop: false, checkpoints: 0, walFrames: 0, holds: 0, lastError: null };
  private stopping = false;
  /** Set while the gateway's writes are held for a checkpoint: the worker's next report ends the hold. */
  private release: (() => void) | null = null;
  private lastHoldAt = 0;

  constructor(
    private readonly db: Db,
    private readonly intervalMs: number,
    private readonly counters: Counters,
    private readonly log: Logger,
    /** Holds the gateway's writes until the promise settles (CommitQueue.holdWhile). */
    private readonly holdWrites: (until: Promise<void>) => void = () => undefined,
    private readonly largeWalFrames = LARGE_WAL_FRAMES,
  ) {}

  start(): void {
    this.stopping = false;
    const worker = new Worker(new URL('./checkpoint-worker.cjs', import.meta.url), { workerData: { path: this.db.name, intervalMs: this.intervalMs } });
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
    // Large: a write that came in during the checkpoint (there always is one under steady writes)
    // keeps the WAL from restarting, so the next checkpoint runs with the writes held.
    if (report.ok && report.walFrames > this.largeWalFrames) this.holdForCheckpoint();
    if (report.ok) {
      this.state.checkpoints++;
      this.state.walFrames = report.walFrames;
      if (this.state.lastError) this.log.warn({ walFrames: report.walFrames }, 'WAL checkpoints work again');
      this.state.lastError = null;
      return;
    }
    this.counters.inc('store_checkpoint_failures_total');
    // Commits are unaffected (the WAL only grows); one line per change of error, not one per tick.
    if (this.state.lastError !== report.error) this.log.error({ error: report.error, code: report.code ?? 'STORE_CHECKPOINT_FAILED' }, 'WAL checkpoint failed; the WAL grows until it succeeds');
    this.state.lastError = report.error;
  }

  private holdForCheckpoint(): void {
    const worker = this.worker;
    // At most one hold per HOLD_MAX_MS, whatever the worker reports: writes are never held most of the time.
    if (!worker || this.release || Date.now() - this.lastHoldAt < HOLD_MAX_MS) return;
    this.lastHoldAt = Date.now();
    this.state.holds++;
    this.holdWrites(new Promise<void>((resolve) => {
      const timeout = setTimeout(() => this.endHold(), HOLD_MAX_MS);
      this.release = () => {
        clearTimeout(timeout);
        resolve();
      };
    }));
    worker.postMessage('checkpoint');
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
