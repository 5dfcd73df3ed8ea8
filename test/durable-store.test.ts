// The store's disk work off the event loop, on a real SQLite file: the WAL
// flush on the thread pool and the checkpoints on a worker thread.
import { afterEach, describe, expect, it } from 'vitest';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import pino from 'pino';
import { Counters } from '../gateway/metrics/counters.ts';
import { Checkpointer } from '../gateway/store/checkpointer.ts';
import { CommitQueue } from '../gateway/store/commit-queue.ts';
import { openDatabase, type Db } from '../gateway/store/database.ts';
import { DurableStore } from '../gateway/store/durable-store.ts';
import { WalFlusher } from '../gateway/store/wal-flusher.ts';
import { waitFor } from './support/harness.ts';
import { removeDir, tempDataDir } from './support/gateway-process.ts';

const log = pino({ level: 'silent' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function freshDb(): Db {
  const dir = tempDataDir('safehaven-store-');
  const db = openDatabase({ dataDir: dir, synchronous: 'normal' });
  cleanups.push(() => removeDir(dir));
  cleanups.push(() => db.open && db.close());
  return db;
}

const insertAudit = (db: Db, n: number) => {
  const stmt = db.prepare("INSERT INTO audit (at, actor, action, detail) VALUES (?, 'test', 'fill', ?)");
  db.transaction(() => {
    for (let i = 0; i < n; i++) stmt.run(i, 'x'.repeat(500));
  })();
};

describe('WalFlusher', () => {
  it('flushes the WAL, lets concurrent callers share a flush, and refuses after stop', async () => {
    const db = freshDb();
    const flusher = new WalFlusher(`${db.name}-wal`);
    flusher.start();
    insertAudit(db, 10);
    await Promise.all(Array.from({ length: 50 }, () => flusher.flush()));
    // The first call starts a flush; the other 49 arrive during it and share the next one.
    expect(flusher.count()).toBeLessThanOrEqual(2);
    expect(flusher.count()).toBeGreaterThanOrEqual(1);
    await flusher.stop();
    await expect(flusher.flush()).rejects.toMatchObject({ code: 'STORE_CLOSED' });
  });
});

describe('Checkpointer', () => {
  /** Salt-1 of the WAL header, which SQLite changes at every restart of the WAL. */
  const walSalt = (db: Db) => {
    const header = Buffer.alloc(32);
    const fd = openSync(`${db.name}-wal`, 'r');
    try {
      readSync(fd, header, 0, 32, 0);
    } finally {
      closeSync(fd);
    }
    return header.readUInt32BE(16);
  };

  function restartingCheckpointer(db: Db, restartWalFrames: number) {
    const commits = new CommitQueue(db, log);
    const checkpointer = new Checkpointer(db, 20, new Counters(), log, (until) => commits.holdWhile(until), restartWalFrames);
    checkpointer.start();
    cleanups.push(() => checkpointer.stop());
    return { commits, checkpointer };
  }

  it('checkpoints on its worker thread and restarts the WAL there: the gateway\'s writes only ever append', async () => {
    const db = freshDb();
    const { commits, checkpointer } = restartingCheckpointer(db, 300);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    // Sparse writes: almost every checkpoint catches up, and without the pin the next write
    // (on this thread) would restart the WAL, fsyncing its header on the event loop.
    let salt = walSalt(db);
    let saltChanges = 0;
    for (let i = 0; i < 120 || (checkpointer.status().restarts < 2 && i < 1000); i++) {
      await commits.write(() => {
        // Inside the transaction, before its frames: the salt as the last commit or a restart left it.
        const now = walSalt(db);
        if (now !== salt) saltChanges++;
        salt = now;
        insertAudit(db, 20);
      });
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const status = checkpointer.status();
    expect(status).toMatchObject({ offLoop: true, lastError: null });
    expect(status.checkpoints).toBeGreaterThan(10);
    // Every restart this thread saw was one the worker reports having made (with the writes held).
    expect(saltChanges).toBeGreaterThan(0);
    expect(saltChanges).toBeLessThanOrEqual(status.restarts);
    expect(db.prepare('SELECT count(*) FROM audit').pluck().get()).toBeGreaterThanOrEqual(120 * 20);
  });

  it('restarts the WAL although writes never stop', async () => {
    const db = freshDb();
    const { commits, checkpointer } = restartingCheckpointer(db, 300);
    let writing = true;
    let largest = 0;
    const writer = (async () => {
      while (writing) {
        await commits.write(() => insertAudit(db, 20));
        largest = Math.max(largest, checkpointer.status().walFrames);
      }
    })();
    cleanups.push(async () => {
      writing = false;
      await writer;
    });
    await waitFor(() => checkpointer.status().restarts > 1 && largest > 300 && checkpointer.status().walFrames < 300, 'a WAL cut back under steady writes');
    expect(checkpointer.status().lastError).toBeNull();
  });

  /** The restart handshake's shared state (RESTART_STATE: 0 idle, 1 held, 2 working, 3 expired). */
  const restartState = (checkpointer: Checkpointer) => (checkpointer as unknown as { restartState: Int32Array }).restartState;

  it('does not end a hold once the worker has begun: its write may wait for the lock, and a write here would wait on the event loop', async () => {
    const db = freshDb();
    // Another connection (an operator's shell, say) holds the write lock past the hold's 1 s bound.
    const other = openDatabase({ dataDir: dirname(db.name), synchronous: 'normal' });
    cleanups.push(() => other.open && other.close());
    other.exec('BEGIN IMMEDIATE');
    let heldUntil = 0;
    const checkpointer = new Checkpointer(db, 20, new Counters(), log, (until) => void until.then(() => { heldUntil = performance.now(); }));
    checkpointer.start();
    cleanups.push(() => checkpointer.stop());
    // The worker has begun its first write (and waits for the lock): from now on the hold outlasts its 1 s bound.
    await waitFor(() => restartState(checkpointer)[0] === 2, 'the worker at work on the first hold', 5000);
    await new Promise((resolve) => setTimeout(resolve, 1300));
    other.exec('COMMIT');
    const releasedAt = performance.now();
    await waitFor(() => heldUntil > 0, 'the end of the first hold', 5000);
    expect(heldUntil).toBeGreaterThanOrEqual(releasedAt);
    expect(checkpointer.status()).toMatchObject({ holds: 1, lastError: null });
  });

  it('skips a hold that expired before the worker began, and pins with a restart later', async () => {
    const db = freshDb();
    const { commits, checkpointer } = restartingCheckpointer(db, 100_000);
    // As if the worker took longer than the hold's bound to start: the gateway may be writing, so the worker must not.
    Atomics.store(restartState(checkpointer), 0, 3);
    await waitFor(() => checkpointer.status().holds >= 2 && checkpointer.status().restartFailures >= 1, 'a second hold, after the skipped first');
    // Pinned by that hold: sparse writes after caught-up checkpoints no longer restart the WAL here.
    let salt = walSalt(db);
    let saltChanges = 0;
    for (let i = 0; i < 40; i++) {
      await commits.write(() => {
        if (walSalt(db) !== salt) saltChanges++;
        salt = walSalt(db);
        insertAudit(db, 5);
      });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(checkpointer.status().restarts).toBeGreaterThanOrEqual(1);
    expect(saltChanges).toBeLessThanOrEqual(checkpointer.status().restarts);
    expect(checkpointer.status().lastError).toBeNull();
  });

  it('hands checkpoints back to the connection when its worker dies, and the WAL restarts here again', async () => {
    const db = freshDb();
    const counters = new Counters();
    const commits = new CommitQueue(db, log);
    const checkpointer = new Checkpointer(db, 20, counters, log, (until) => commits.holdWhile(until));
    checkpointer.start();
    // Pinned (the first hold is over), and checkpointing.
    await commits.write(() => insertAudit(db, 1));
    await waitFor(() => checkpointer.status().checkpoints > 0, 'a checkpoint');
    await (checkpointer as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await waitFor(() => !checkpointer.status().offLoop, 'the fallback to checkpoints on commit');
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    expect(counters.get('store_checkpoint_failures_total')).toBe(1);
    // Its pin went with it: a checkpoint here catches up, and the next write restarts the WAL.
    insertAudit(db, 1);
    const [row] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number; checkpointed: number }>;
    expect(row!.checkpointed).toBe(row!.log);
    const before = walSalt(db);
    insertAudit(db, 1);
    expect(walSalt(db)).not.toBe(before);
    await checkpointer.stop();
  });
});

describe('DurableStore', () => {
  it('commits through the flusher, reports it, and leaves everything on disk when stopped', async () => {
    const dir = tempDataDir('safehaven-store-');
    cleanups.push(() => removeDir(dir));
    const store = new DurableStore({ dataDir: dir, synchronous: 'full', checkpointIntervalMs: 50 }, new Counters(), log);
    const { db, commits } = store.start();
    const writes = Array.from({ length: 200 }, (_, i) => commits.write(() => db.prepare("INSERT INTO audit (at, actor, action) VALUES (?, 'test', 'w')").run(i).changes));
    expect(await Promise.all(writes)).toEqual(Array(200).fill(1));
    const status = store.status();
    expect(status).toMatchObject({ ok: true, flushing: 0, checkpoint: { offLoop: true } });
    expect(status.walFlushes).toBeGreaterThanOrEqual(1);
    await store.stop();
    // The last connection closed: SQLite checkpointed and removed the WAL.
    expect(() => statSync(`${db.name}-wal`)).toThrow();

    const again = openDatabase({ dataDir: dir, synchronous: 'normal' });
    expect(again.prepare('SELECT count(*) FROM audit').pluck().get()).toBe(200);
    again.close();
  });

  it('with synchronous = normal, acknowledges on commit without flushing', async () => {
    const dir = tempDataDir('safehaven-store-');
    cleanups.push(() => removeDir(dir));
    const store = new DurableStore({ dataDir: dir, synchronous: 'normal', checkpointIntervalMs: 50 }, new Counters(), log);
    const { db, commits } = store.start();
    await commits.write(() => db.prepare("INSERT INTO audit (at, actor, action) VALUES (1, 'test', 'w')").run());
    expect(store.status().walFlushes).toBe(0);
    await store.stop();
  });
});
