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
/** A worker that has not begun the restart within this does not hold the gateway's writes any longer… */
const HOLD_MAX_MS = 1000;
/** …but once it has, the hold lasts until it is done: a write of the gateway's would meet its lock on the event loop, or restart the WAL there. Checked this often. */
const WORKING_RECHECK_MS = 20;
/** Between the end of one hold and the next at least this, doubled after each restart that failed (up to 16 times). */
const HOLD_GAP_MS = 1000;
/** This many restarts in a row that failed are said once, in a warning: the WAL grows meanwhile. */
const FAILED_RESTARTS_WARNING = 3;

/**
 * The restart handshake, in shared memory so that neither side acts on a
 * stale message. The gateway asks for a restart; when the worker gets to it
 * (after a checkpoint it may be in the middle of: seconds on a slow disk) it
 * sets IDLE, says it is ready and waits; the gateway then holds its writes
 * and sets HELD. The worker begins only by swapping HELD for WORKING, and the
 * gateway's timeout ends a hold only by swapping HELD for EXPIRED —
 * whichever swaps first wins. The worker sets IDLE when done. The first hold
 * (0, before the worker exists) starts at HELD.
 */
const RESTART_STATE = { IDLE: 0, HELD: 1, WORKING: 2, EXPIRED: 3 } as const;

/**
 * `hold`: the hold it answers (the first report answers hold 0, which
 * establishes the pin), null for the timer's; `walFrames` null: no
 * checkpoint ran; `skipped`: the hold had expired before the worker began;
 * `pinned`: the worker's read pins the WAL.
 */
type WorkerReport = ({ ok: true; walFrames: number | null; restarted: boolean; skipped: boolean } | { ok: false; error: string; code: string | null })
  & { hold: number | null; pinned: boolean };
/** The worker has got to restart `ready` and waits for the gateway to hold its writes. */
type WorkerMessage = WorkerReport | { ready: number };

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
  /** Restarts asked for that did not happen (tried again later; the WAL grows meanwhile). */
  restartFailures: number;
  lastError: string | null;
}

export class Checkpointer {
  private worker: Worker | null = null;
  private readonly state: CheckpointStatus = { offLoop: false, checkpoints: 0, walFrames: 0, holds: 0, longestHoldMs: 0, restarts: 0, restartFailures: 0, lastError: null };
  private stopping = false;
  /** Set while the gateway's writes are held for a restart: the worker's report on hold `holdId` ends it. */
  private release: (() => void) | null = null;
  private holdId = 0;
  /** The restart asked for and not yet answered (restarts are numbered from 1; hold 0 is the first pin). */
  private asked: number | null = null;
  private asks = 0;
  private holdTimer: NodeJS.Timeout | null = null;
  /** performance.now() when the last hold ended. */
  private lastHoldEnd = -Infinity;
  /** Restarts asked for in a row that did not happen: each doubles the gap before the next. */
  private failedInRow = 0;
  private restartState = new Int32Array(new SharedArrayBuffer(4));

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
    this.asked = null;
    this.failedInRow = 0;
    this.restartState = new Int32Array(new SharedArrayBuffer(4));
    // Hold 0, before the worker exists: until its first report has pinned the WAL, a write of the gateway's could still restart it.
    this.holdForRestart(0);
    const workerData = { path: this.db.name, intervalMs: this.intervalMs, walSizeLimitBytes: WAL_SIZE_LIMIT_BYTES, restartState: this.restartState.buffer, states: RESTART_STATE };
    const worker = new Worker(new URL('./checkpoint-worker.cjs', import.meta.url), { workerData });
    // The worker's timer must not keep a stopping process alive; stop() ends it explicitly.
    worker.unref();
    worker.on('message', (msg: WorkerMessage) => {
      if ('ready' in msg) this.workerReady(msg.ready);
      else this.noteReport(msg);
    });
    // Hold 0's bound counts from when the worker runs: its boot (hundreds of ms on a loaded machine) is not its fault.
    worker.once('online', () => this.armHoldTimer());
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

  /**
   * A last checkpoint, then the worker ends (after a restart it is in the
   * middle of); held writes are let go at the latest then. Call before the
   * store's last commits and before its connection closes.
   */
  async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (worker) {
      this.stopping = true;
      // A worker waiting for a hold (or holding one it has not begun) skips it rather than wait out its bound.
      Atomics.compareExchange(this.restartState, 0, RESTART_STATE.IDLE, RESTART_STATE.EXPIRED);
      Atomics.compareExchange(this.restartState, 0, RESTART_STATE.HELD, RESTART_STATE.EXPIRED);
      Atomics.notify(this.restartState, 0);
      // Unref'd, the worker would not keep the process alive while we wait for it: the process could exit mid-shutdown.
      worker.ref();
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('stop');
      await exited;
    }
    this.endHold();
  }

  private noteReport(report: WorkerReport): void {
    if (report.hold === this.holdId) this.endHold();
    if (report.hold === this.asked) this.asked = null;
    if (report.ok) {
      if (report.walFrames !== null) this.state.checkpoints++;
      this.state.walFrames = report.restarted ? 0 : report.walFrames ?? this.state.walFrames;
      if (this.state.lastError) this.log.warn({ walFrames: report.walFrames }, 'WAL checkpoints work again');
      this.state.lastError = null;
      if (report.hold !== null) this.noteRestart(report.hold, report.restarted, report.skipped);
      // Unpinned (the first hold expired, or a restart's write failed), the next write of the gateway's could restart the WAL: a restart pins again.
      if (report.hold === null && (!report.pinned || (report.walFrames ?? 0) > this.restartWalFrames)) this.requestRestart();
      return;
    }
    this.counters.inc('store_checkpoint_failures_total');
    // A restart (or the first pin) that failed: counted and backed off like one that could not happen.
    if (report.hold !== null) this.noteRestart(report.hold, false, true);
    // Commits are unaffected (the WAL only grows); one line per change of error, not one per tick.
    if (this.state.lastError !== report.error) this.log.error({ error: report.error, code: report.code ?? 'STORE_CHECKPOINT_FAILED' }, 'WAL checkpoint failed; the WAL grows until it succeeds');
    this.state.lastError = report.error;
  }

  private noteRestart(hold: number, restarted: boolean, skipped: boolean): void {
    if (restarted) {
      this.state.restarts++;
      if (this.failedInRow >= FAILED_RESTARTS_WARNING) this.log.warn({ failedBefore: this.failedInRow }, 'the WAL restarts again');
      this.failedInRow = 0;
      return;
    }
    // Hold 0 only pins (a restart there is a bonus).
    if (hold === 0 && !skipped) return;
    // A reader of the gateway's still in older frames, a hold that expired before the worker began, a lock held elsewhere: the next one tries again, later.
    this.state.restartFailures++;
    this.counters.inc('store_wal_restart_failures_total');
    if (++this.failedInRow === FAILED_RESTARTS_WARNING) {
      this.log.warn({ walFrames: this.state.walFrames, restartFailures: this.state.restartFailures, code: 'STORE_WAL_GROWING' },
        'WAL restarts keep failing (a very slow disk, or a long-open reader): the WAL grows until one succeeds; alerts are unaffected');
    }
  }

  private requestRestart(): void {
    const worker = this.worker;
    const gap = HOLD_GAP_MS * 2 ** Math.min(this.failedInRow, 4);
    // Monotonic, from the end of the last hold: writes are never held most of the time, even when every restart fails.
    if (!worker || this.release || this.asked !== null || performance.now() - this.lastHoldEnd < gap) return;
    this.asked = ++this.asks;
    worker.postMessage({ restart: this.asked });
  }

  private workerReady(restart: number): void {
    // A restart asked for before a worker that died: its wait times out and it skips.
    if (restart !== this.asked || !this.worker || this.release) return;
    this.holdForRestart(restart);
    Atomics.notify(this.restartState, 0);
  }

  /** Held until the worker's report on this hold, its death, or HOLD_MAX_MS if it has not begun by then (for hold 0, from when the worker is online). */
  private holdForRestart(id: number): void {
    this.holdId = id;
    this.state.holds++;
    Atomics.store(this.restartState, 0, RESTART_STATE.HELD);
    const heldAt = performance.now();
    this.holdWrites(new Promise<void>((resolve) => {
      this.release = () => {
        if (this.holdTimer) clearTimeout(this.holdTimer);
        this.holdTimer = null;
        this.lastHoldEnd = performance.now();
        this.state.longestHoldMs = Math.max(this.state.longestHoldMs, Math.round((this.lastHoldEnd - heldAt) * 10) / 10);
        resolve();
      };
    }));
    if (id !== 0) this.armHoldTimer();
  }

  private armHoldTimer(): void {
    if (this.release) this.holdTimer = setTimeout(this.expireHold, HOLD_MAX_MS);
  }

  private readonly expireHold = (): void => {
    // Begun already: wait until it is done (the report follows).
    if (Atomics.compareExchange(this.restartState, 0, RESTART_STATE.HELD, RESTART_STATE.EXPIRED) === RESTART_STATE.WORKING) {
      this.holdTimer = setTimeout(this.expireHold, WORKING_RECHECK_MS);
    } else {
      this.endHold();
    }
  };

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
