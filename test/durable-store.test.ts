// The store's disk work off the event loop, on a real SQLite file: the WAL
// flush on the thread pool and the checkpoints on a worker thread.
import { afterEach, describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import pino from 'pino';
import { Counters } from '../gateway/metrics/counters.ts';
import { Checkpointer } from '../gateway/store/checkpointer.ts';
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
  it('checkpoints on its worker thread, with the connection\'s own checkpoints off, so the WAL restarts small', async () => {
    const db = freshDb();
    const checkpointer = new Checkpointer(db, 20, new Counters(), log);
    checkpointer.start();
    cleanups.push(() => checkpointer.stop());
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    insertAudit(db, 5000);
    const walFrames = () => checkpointer.status().walFrames;
    // 5,000 rows of 500 bytes are hundreds of pages; the migrations alone are a few dozen.
    await waitFor(() => walFrames() > 300, 'a checkpoint of the filled WAL');
    // All frames copied: the next write restarts the WAL from its start.
    insertAudit(db, 1);
    await waitFor(() => { const f = walFrames(); return f > 0 && f < 10; }, 'a restarted WAL');
    expect(checkpointer.status()).toMatchObject({ offLoop: true, lastError: null });
    expect(db.prepare('SELECT count(*) FROM audit').pluck().get()).toBe(5001);
  });

  it('hands checkpoints back to the connection when its worker dies', async () => {
    const db = freshDb();
    const counters = new Counters();
    const checkpointer = new Checkpointer(db, 1000, counters, log);
    checkpointer.start();
    await (checkpointer as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await waitFor(() => !checkpointer.status().offLoop, 'the fallback to checkpoints on commit');
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    expect(counters.get('store_checkpoint_failures_total')).toBe(1);
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
