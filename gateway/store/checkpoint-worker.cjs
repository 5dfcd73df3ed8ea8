'use strict';
// The WAL checkpointer's thread (see checkpointer.ts). Plain JavaScript so that
// it loads in any runtime the gateway runs in (tsx, vitest, plain node) with no
// transform. A checkpoint copies committed pages from the WAL into the database
// file and fsyncs both: milliseconds of disk wait that must not be the event
// loop's. PASSIVE never waits for the gateway's writer or readers.
const { parentPort, workerData } = require('node:worker_threads');
const Database = require('better-sqlite3');

const db = new Database(workerData.path, { fileMustExist: true });
// In WAL mode NORMAL still syncs the WAL before and the database after each checkpoint.
db.pragma('synchronous = NORMAL');

function checkpoint() {
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, busy: row.busy, walFrames: row.log, checkpointed: row.checkpointed });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: String((err && err.message) || err), code: (err && err.code) || null });
  }
}

const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (msg) => {
  if (msg !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.close();
});
