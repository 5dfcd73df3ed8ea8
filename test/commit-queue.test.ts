import { describe, it, expect, beforeEach, afterEach, vi } from 'vitest';
import Database from 'better-sqlite3';
import pino from 'pino';
import { CommitQueue, StoreError, type CommitQueueOptions } from '../gateway/store/commit-queue.ts';
import type { Db } from '../gateway/store/database.ts';

let db: Db;

beforeEach(() => {
  db = new Database(':memory:');
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, v BLOB)');
});
afterEach(() => db.close());

const queue = (opts?: CommitQueueOptions) => new CommitQueue(db, pino({ level: 'silent' }), opts);
const insert = (id: number) => () => db.prepare('INSERT INTO items (id) VALUES (?)').run(id).changes;
const ids = () => db.prepare('SELECT id FROM items ORDER BY id').pluck().all();
/** A StoreError with this code (asymmetric matcher for toEqual / rejects.toEqual). */
const storeError = (code: StoreError['code']) => expect.objectContaining({ code, message: expect.any(String) });

describe('CommitQueue', () => {
  it('groups writes of the same tick into one transaction and resolves each with its own result', async () => {
    const q = queue();
    const results = await Promise.all([q.write(() => 'a'), q.write(insert(1)), q.write(() => ({ n: 3 }))]);
    expect(results).toEqual(['a', 1, { n: 3 }]);
    expect(q.status()).toMatchObject({ ok: true, commits: 1, pending: 0 });

    await q.write(insert(2));
    expect(q.status().commits).toBe(2);
    expect(ids()).toEqual([1, 2]);
  });

  it('splits a burst into transactions of at most maxBatch jobs', async () => {
    const q = queue({ maxPending: 100, maxBatch: 2 });
    await Promise.all([1, 2, 3, 4, 5].map((id) => q.write(insert(id))));
    expect(q.status().commits).toBe(3);
    expect(ids()).toEqual([1, 2, 3, 4, 5]);
  });

  it('with a group window, gathers writes of later turns into the next transaction; a full batch does not wait', async () => {
    const q = queue({ maxPending: 100, maxBatch: 3, groupWindowMs: 200 });
    await q.write(insert(1));
    expect(q.status().commits).toBe(1);
    // Within the window after that commit: these wait and share one transaction.
    const later = [q.write(insert(2))];
    await new Promise((r) => setTimeout(r, 20));
    later.push(q.write(insert(3)));
    await new Promise((r) => setTimeout(r, 20));
    expect(q.status()).toMatchObject({ commits: 1, pending: 2 });
    await Promise.all(later);
    expect(q.status().commits).toBe(2);

    // Three pending fill a batch: committed in the next turn, window or not.
    const full = [4, 5, 6].map((id) => q.write(insert(id)));
    await new Promise((r) => setImmediate(r));
    expect(q.status()).toMatchObject({ commits: 3, pending: 0 });
    await Promise.all(full);
    expect(ids()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('holds every transaction while held, a full batch too, commits them one per turn after, and reports a hold that lasts', async () => {
    const q = queue({ maxPending: 100, maxBatch: 3, flushStallMs: 50 });
    let release!: () => void;
    q.holdWhile(new Promise<void>((resolve) => { release = resolve; }));
    const writes = [1, 2, 3, 4, 5, 6, 7].map((id) => q.write(insert(id)));
    await new Promise((r) => setTimeout(r, 100));
    expect(q.status()).toMatchObject({ commits: 0, pending: 7, ok: false, lastError: expect.stringContaining('writes held') });
    release();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    // One transaction in the first turn after the release, the next in the turn after.
    expect(q.status().commits).toBeLessThan(3);
    await Promise.all(writes);
    expect(q.status()).toMatchObject({ commits: 3, pending: 0, ok: true });
    expect(ids()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('keeps its group window when the wall clock steps back', async () => {
    const q = queue({ maxPending: 100, maxBatch: 1000, groupWindowMs: 20 });
    await q.write(insert(1));
    const now = Date.now();
    // NTP steps the clock back an hour: the next write still commits within its window.
    const stepped = vi.spyOn(Date, 'now').mockReturnValue(now - 3_600_000);
    try {
      await q.write(insert(2));
      expect(q.status().commits).toBe(2);
    } finally {
      stepped.mockRestore();
    }
  });

  it('rejects only a job that throws, rolls back only its writes, and commits the others', async () => {
    const q = queue();
    const boom = new Error('job failed');
    const [a, b, c] = await Promise.allSettled([
      q.write(insert(1)),
      q.write(() => { insert(2)(); throw boom; }),
      q.write(insert(3)),
    ]);
    expect(a).toEqual({ status: 'fulfilled', value: 1 });
    expect(b).toEqual({ status: 'rejected', reason: boom });
    expect(c).toEqual({ status: 'fulfilled', value: 1 });
    expect(ids()).toEqual([1, 3]);
    expect(q.status()).toMatchObject({ ok: true, commits: 1, failedCommits: 0 });
  });

  it('refuses an async job (its synchronous writes are rolled back)', async () => {
    const q = queue();
    await expect(q.write(async () => insert(1)())).rejects.toThrow(/promise/);
    expect(ids()).toEqual([]);
  });

  it('refuses writes beyond maxPending with STORE_OVERLOADED and counts them', async () => {
    const q = queue({ maxPending: 2, maxBatch: 10 });
    expect(q.accepting()).toBe(true);
    const accepted = [q.write(insert(1)), q.write(insert(2))];
    // What the intake asks before it lets a POST start ahead of the commit.
    expect(q.accepting()).toBe(false);
    await expect(q.write(insert(3))).rejects.toEqual(storeError('STORE_OVERLOADED'));
    expect(q.status().rejectedOverloaded).toBe(1);
    // The outcome of a police attempt is bounded by its caller: never refused (it would be POSTed again).
    accepted.push(q.write(insert(4), { outsideLimit: true }));
    await Promise.all(accepted);
    expect(ids()).toEqual([1, 2, 4]);
  });

  it('rejects every job of a batch whose COMMIT fails, reports unhealthy, and recovers on the next commit', async () => {
    // A deferred foreign key is checked only at COMMIT: the job itself succeeds, the commit does not.
    db.pragma('foreign_keys = ON');
    db.exec(`CREATE TABLE parent (id INTEGER PRIMARY KEY);
      CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)`);
    const q = queue();
    const results = await Promise.allSettled([
      q.write(insert(1)),
      q.write(() => db.prepare('INSERT INTO child VALUES (1, 99)').run()),
    ]);
    for (const r of results) {
      expect(r).toEqual({ status: 'rejected', reason: storeError('STORE_COMMIT_FAILED') });
      expect(((r as PromiseRejectedResult).reason as Error).cause).toBeInstanceOf(Error);
    }
    expect(ids()).toEqual([]);
    expect(db.inTransaction).toBe(false);
    const failed = q.status();
    expect(failed).toMatchObject({ ok: false, commits: 0, failedCommits: 1 });
    expect(failed.lastError).toMatch(/FOREIGN KEY/);
    expect(failed.lastErrorAt).toEqual(expect.any(Number));
    expect(q.accepting()).toBe(false);

    await q.write(insert(2));
    expect(q.status()).toMatchObject({ ok: true, commits: 1, failedCommits: 1 });
    expect(ids()).toEqual([2]);
  });

  it('fails the whole batch and turns unhealthy when the database refuses writes (read-only)', async () => {
    db.pragma('query_only = ON');
    const q = queue();
    const results = await Promise.allSettled([q.write(insert(1)), q.write(insert(2))]);
    for (const r of results) {
      expect(r).toEqual({ status: 'rejected', reason: expect.objectContaining({ code: 'STORE_COMMIT_FAILED', cause: expect.objectContaining({ code: 'SQLITE_READONLY' }) }) });
    }
    expect(q.status()).toMatchObject({ ok: false, failedCommits: 1 });
    db.pragma('query_only = OFF');
    await q.write(insert(3));
    expect(q.status().ok).toBe(true);
  });

  // Disk full (SQLITE_FULL), I/O errors and the like roll back the whole outer transaction, not
  // just the job's savepoint; the batch must stop there, so no later job commits on its own.
  it('never leaves a job durable that it reported as failed (disk full mid-batch)', async () => {
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages + 3}`); // room for small rows, not for a 100 kB blob
    const q = queue();
    const results = await Promise.allSettled([
      q.write(insert(1)),
      q.write(() => db.prepare('INSERT INTO items VALUES (2, zeroblob(100000))').run()),
      q.write(insert(3)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(ids()).toEqual([]);
    expect(q.status().ok).toBe(false);
  });

  it('flushes pending writes on close and refuses writes afterwards with STORE_CLOSED', async () => {
    const q = queue();
    const before = q.write(insert(1));
    const closing = q.close();
    expect(ids()).toEqual([1]);
    await closing;
    await expect(before).resolves.toBe(1);
    await expect(q.write(insert(2))).rejects.toEqual(storeError('STORE_CLOSED'));
  });

  describe('with a WAL flusher (store.synchronous = full)', () => {
    /** A flusher whose flushes the test finishes by hand. */
    function manualFlusher() {
      const calls: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
      return { calls, flush: () => new Promise<void>((resolve, reject) => calls.push({ resolve, reject })) };
    }

    it('tells no caller of a committed write before the WAL is flushed', async () => {
      const flusher = manualFlusher();
      const q = new CommitQueue(db, pino({ level: 'silent' }), undefined, flusher);
      let told = false;
      const written = q.write(insert(1)).then((v) => { told = true; return v; });
      await new Promise((r) => setTimeout(r, 20));
      // Committed (this connection reads it) but not yet durable: not told.
      expect(ids()).toEqual([1]);
      expect(flusher.calls).toHaveLength(1);
      expect(told).toBe(false);
      expect(q.status()).toMatchObject({ flushing: 1, commits: 0 });
      flusher.calls[0]!.resolve();
      await expect(written).resolves.toBe(1);
      expect(q.status()).toMatchObject({ ok: true, flushing: 0, commits: 1 });
    });

    it('reports the store failing while a flush hangs, and healthy again once it returns', async () => {
      const flusher = manualFlusher();
      const q = new CommitQueue(db, pino({ level: 'silent' }), { maxPending: 100, maxBatch: 10, flushStallMs: 50 }, flusher);
      const written = q.write(insert(1));
      await new Promise((r) => setTimeout(r, 100));
      expect(q.status()).toMatchObject({ ok: false, lastError: expect.stringContaining('WAL flush not finished') });
      flusher.calls[0]!.resolve();
      await written;
      expect(q.status()).toMatchObject({ ok: true });
    });

    it('after a failed flush acknowledges nothing again — not even batches whose later flush succeeds — and close still ends', async () => {
      const flusher = manualFlusher();
      const q = new CommitQueue(db, pino({ level: 'silent' }), undefined, flusher);
      const first = Promise.allSettled([q.write(insert(1)), q.write(insert(2))]);
      await new Promise((r) => setImmediate(r));
      // A second batch, committed while the first one's flush runs.
      const second = q.write(insert(3));
      q.flush();
      expect(flusher.calls).toHaveLength(2);
      flusher.calls[0]!.reject(Object.assign(new Error('fdatasync of the WAL failed: EIO'), { code: 'EIO' }));
      const results = await first;
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      expect((results[0] as PromiseRejectedResult).reason).toEqual(storeError('STORE_COMMIT_FAILED'));
      flusher.calls[1]!.resolve();
      await expect(second).rejects.toEqual(storeError('STORE_COMMIT_FAILED'));
      expect(q.status()).toMatchObject({ ok: false, lastError: expect.stringContaining('restart required') });
      expect(q.accepting()).toBe(false);
      await expect(q.write(insert(4))).rejects.toThrow(/restart the gateway/);
      await q.close();
      expect(q.status().ok).toBe(false);
    });
  });
});
