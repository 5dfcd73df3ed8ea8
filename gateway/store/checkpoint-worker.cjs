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

const { path, intervalMs, walSizeLimitBytes, writing } = workerData;
/** Set while this thread holds or waits for the write lock: the gateway does not end a hold meanwhile (its write would block its event loop on the lock). */
const writeFlag = new Int32Array(writing);
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

function unpin() {
  if (pin.inTransaction) pin.exec('COMMIT');
}

function pinNow() {
  unpin();
  pin.exec('BEGIN');
  pinRead.get();
}

function checkpoint() {
  const [row] = db.pragma('wal_checkpoint(PASSIVE)');
  return row;
}

/** Salt-1 of the WAL header: SQLite changes it at every restart. */
function walSalt() {
  const header = Buffer.alloc(32);
  const fd = openSync(`${path}-wal`, 'r');
  try {
    return readSync(fd, header, 0, 32, 0) === 32 ? header.readUInt32BE(16) : null;
  } finally {
    closeSync(fd);
  }
}

function report(requested, run) {
  try {
    parentPort.postMessage({ ok: true, requested, ...run() });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: String((err && err.message) || err), code: (err && err.code) || null, requested });
  }
}

function summary(row, restarted) {
  return { busy: row.busy, walFrames: row.log, checkpointed: row.checkpointed, restarted };
}

function tick() {
  let row = checkpoint();
  // Frames past the pin: the WAL is not fully copied, so a read started now uses it (and pins).
  if (row.log > row.checkpointed) {
    pinNow();
    row = checkpoint();
  }
  return summary(row, false);
}

/**
 * A tiny write of this thread's, then the pin: the frame just written is not
 * copied yet, so the read uses the WAL. If every frame was copied, this write
 * is the one that restarts the WAL (and fsyncs its header) — here, not on the
 * event loop. Only while the gateway holds its writes. True if it restarted.
 */
function writeAndPin() {
  try {
    const before = walSalt();
    Atomics.store(writeFlag, 0, 1);
    try {
      markWal.run(String(Date.now()));
    } finally {
      Atomics.store(writeFlag, 0, 0);
    }
    return walSalt() !== before;
  } finally {
    pinNow();
  }
}

/** Only while the gateway holds its writes. */
function restart() {
  unpin();
  let row;
  try {
    row = checkpoint();
  } catch (err) {
    pinNow();
    throw err;
  }
  // A reader of the gateway's still inside older frames: no restart this time (pinned again), the next request tries again.
  if (row.log > row.checkpointed) {
    pinNow();
    return summary(row, false);
  }
  return summary(row, writeAndPin());
}

const timer = setInterval(() => report(false, tick), intervalMs);
// The gateway holds its writes until this first report: from then on its writes only append.
// No checkpoint first: at most one fsync (a restart's header) before the gateway may write.
report(true, () => ({ busy: 0, walFrames: null, checkpointed: null, restarted: writeAndPin() }));
parentPort.on('message', (msg) => {
  if (msg === 'restart') return report(true, restart);
  if (msg !== 'stop') return;
  clearInterval(timer);
  unpin();
  report(false, () => summary(checkpoint(), false));
  pin.close();
  db.close();
  parentPort.close();
});
