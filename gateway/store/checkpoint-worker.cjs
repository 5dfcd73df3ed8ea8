'use strict';
// The WAL checkpointer's thread (see checkpointer.ts). Plain JavaScript so that
// it loads in any runtime the gateway runs in (tsx, vitest, plain node) with no
// transform. A checkpoint copies committed pages from the WAL into the database
// file and fsyncs both: milliseconds of disk wait that must not be the event
// loop's. PASSIVE never waits for the gateway's writer or readers.
//
// The other disk wait this thread takes over is the WAL restart. A write that
// finds every frame checkpointed starts the WAL again from its beginning and
// must fsync the new WAL header before its frames (else a power loss could
// replay stale frames over newer pages). Left to SQLite, that write is the
// gateway's, and its fsync blocks the event loop for as long as the disk
// takes — after nearly every checkpoint that catches up. So this thread keeps
// a read transaction open on a second connection (the pin): SQLite restarts a
// WAL only when no reader is using it, so the gateway's writes only ever
// append. The pin is moved forward before each checkpoint (else the
// checkpoint could not copy past it), but only when there are frames it has
// not copied yet: a read that starts on a fully copied WAL does not use it,
// so it would pin nothing. The WAL restarts when the gateway asks (it holds
// its writes meanwhile): drop the pin, copy everything, make a tiny write
// here — this thread restarts the WAL and takes the header fsync — and pin
// again.
const { parentPort, workerData } = require('node:worker_threads');
const { closeSync, openSync, readSync } = require('node:fs');
const Database = require('better-sqlite3');

const { path, intervalMs, walSizeLimitBytes, restartState, states } = workerData;
/** The restart handshake with the gateway (RESTART_STATE in checkpointer.ts). */
const handshake = new Int32Array(restartState);
/**
 * Only the gateway's own writes outside the commit queue (first-start
 * seeding) or another process (an operator's sqlite3 shell) compete for the
 * lock. Waiting here holds the gateway's writes, which is better than
 * letting them fail on the same lock.
 */
const RESTART_BUSY_TIMEOUT_MS = 2000;

const db = new Database(path, { fileMustExist: true, timeout: RESTART_BUSY_TIMEOUT_MS });
// In WAL mode NORMAL still syncs the WAL before and the database after each checkpoint, and the header at a restart.
db.pragma('synchronous = NORMAL');
// The restart's commit is this connection's: it is the one that cuts a WAL a burst grew back to the limit.
db.pragma(`journal_size_limit = ${walSizeLimitBytes}`);
const pin = new Database(path, { fileMustExist: true });
const pinRead = pin.prepare('SELECT count(*) FROM meta');
const markWal = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('checkpoint_worker_wrote_at', ?)");
/** The pin's read uses the WAL (it began while some frames were not copied yet), so the gateway's writes cannot restart it. */
let pinned = false;

function unpin() {
  if (pin.inTransaction) pin.exec('COMMIT');
  pinned = false;
}

/** `usesWal`: the caller knows some frames are not copied yet (only this thread copies them), so the read really pins. */
function pinNow(usesWal) {
  unpin();
  pin.exec('BEGIN');
  pinRead.get();
  pinned = usesWal;
}

function checkpoint() {
  const [row] = db.pragma('wal_checkpoint(PASSIVE)');
  return row;
}

/** Salt-1 of the WAL header (null while the WAL is empty): SQLite changes it at every restart. */
function walSalt() {
  const header = Buffer.alloc(32);
  const fd = openSync(`${path}-wal`, 'r');
  try {
    return readSync(fd, header, 0, 32, 0) === 32 ? header.readUInt32BE(16) : null;
  } finally {
    closeSync(fd);
  }
}

function report(hold, run) {
  try {
    parentPort.postMessage({ ok: true, hold, ...run(), pinned });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: String((err && err.message) || err), code: (err && err.code) || null, hold, pinned });
  }
}

function summary(row, restarted) {
  return { walFrames: row.log, restarted, skipped: false };
}

/** A report with no checkpoint in it. */
function noCheckpoint(restarted, skipped) {
  return { walFrames: null, restarted, skipped };
}

function tick() {
  // Unpinned, a checkpoint that caught up would let the gateway's next write restart the WAL on its event loop: copy
  // nothing until a restart (the gateway asks for one on this report) pins again.
  if (!pinned) return noCheckpoint(false, false);
  let row = checkpoint();
  // Frames past the pin: the WAL is not fully copied, so a read started now uses it (and pins).
  if (row.log > row.checkpointed) {
    pinNow(true);
    row = checkpoint();
  }
  return summary(row, false);
}

/**
 * A tiny write of this thread's, then the pin: the frame just written is not
 * copied yet, so the read uses the WAL. If every frame was copied, this write
 * is the one that restarts the WAL (and fsyncs its header) — here, not on the
 * event loop. True if it restarted.
 */
function writeAndPin() {
  let wrote = false;
  try {
    const before = walSalt();
    markWal.run(String(Date.now()));
    wrote = true;
    return before !== null && walSalt() !== before;
  } finally {
    pinNow(wrote);
  }
}

/** Every frame copied, then the write that restarts the WAL. */
function restart() {
  unpin();
  let row;
  let caughtUp = false;
  try {
    row = checkpoint();
    caughtUp = row.log === row.checkpointed;
  } finally {
    // Not caught up (a reader of the gateway's still inside older frames, or the checkpoint failed): no restart this
    // time, pinned again; the next request tries again.
    if (!caughtUp) pinNow(true);
  }
  return summary(row, caughtUp && writeAndPin());
}

/**
 * Runs `fn` only if the gateway still holds its writes for it (HELD →
 * WORKING; the gateway's timeout cannot end the hold from then on), IDLE
 * again after. A hold that expired first is skipped: the gateway may be
 * writing, and a write here could meet its lock or restart the WAL under it.
 */
function whileHeld(fn) {
  if (Atomics.compareExchange(handshake, 0, states.HELD, states.WORKING) !== states.HELD) {
    Atomics.store(handshake, 0, states.IDLE);
    return noCheckpoint(false, true);
  }
  try {
    return fn();
  } finally {
    Atomics.store(handshake, 0, states.IDLE);
  }
}

const timer = setInterval(() => report(null, tick), intervalMs);
// Hold 0, the gateway's first: from this report on its writes only append. No checkpoint first,
// so at most one fsync (a restart's header) before the gateway may write.
report(0, () => whileHeld(() => noCheckpoint(writeAndPin(), false)));
/** The gateway answers `ready` by holding its writes within this, or the restart is skipped (it asks again later). */
const READY_WAIT_MS = 1000;

parentPort.on('message', (msg) => {
  if (msg && typeof msg.restart === 'number') {
    // Only now, with no checkpoint of this thread's running, do the gateway's writes need to wait.
    Atomics.store(handshake, 0, states.IDLE);
    parentPort.postMessage({ ready: msg.restart });
    Atomics.wait(handshake, 0, states.IDLE, READY_WAIT_MS);
    return report(msg.restart, () => whileHeld(restart));
  }
  if (msg !== 'stop') return;
  clearInterval(timer);
  unpin();
  report(null, () => summary(checkpoint(), false));
  pin.close();
  db.close();
  parentPort.close();
});
