// The trouble book as logic over a real SQLite store: one open trouble per
// kind and target, restores, severity order, durability, and a storm of
// troubles that occupies the CommitQueue one job at a time.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TroubleChange } from '../protocol/index.ts';
import { Counters } from '../gateway/metrics/counters.ts';
import { CommitQueue } from '../gateway/store/commit-queue.ts';
import { openDatabase, type Db } from '../gateway/store/database.ts';
import { TroubleRepo } from '../gateway/store/trouble-repo.ts';
import { TroubleBook } from '../gateway/supervision/trouble-book.ts';

let dir: string;
let db: Db;
let commits: CommitQueue;
let now = Date.parse('2026-03-02T09:00:00Z');

function book(): TroubleBook {
  const b = new TroubleBook({
    repo: new TroubleRepo(db), commits, siteOf: (id) => (id.startsWith('pb-') ? 'store-0001' : null),
    clock: { now: () => now }, counters: new Counters(), log: pino({ level: 'silent' }),
  });
  b.start();
  return b;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'safehaven-troubles-'));
  db = openDatabase({ dataDir: dir, synchronous: 'normal' });
  commits = new CommitQueue(db, pino({ level: 'silent' }));
});

afterEach(() => {
  commits.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('TroubleBook', () => {
  it('keeps one open trouble per kind and target, and a restore ends it', async () => {
    const b = book();
    const changes: TroubleChange[] = [];
    b.on((c) => changes.push(c));
    const first = b.raise('offline', { deviceId: 'pb-1' }, 'silent');
    expect(b.raise('offline', { deviceId: 'pb-1' }, 'still silent').id).toBe(first.id);
    expect(first).toMatchObject({ kind: 'offline', severity: 7, deviceId: 'pb-1', siteId: 'store-0001', clearedAt: null, detail: 'silent' });
    now += 1000;
    expect(b.clear('offline', { deviceId: 'pb-1' }, 'back')).toMatchObject({ id: first.id, clearedAt: new Date(now).toISOString() });
    expect(b.clear('offline', { deviceId: 'pb-1' }, 'back again')).toBeNull();
    const second = b.raise('offline', { deviceId: 'pb-1' }, 'silent again');
    expect(second.id).not.toBe(first.id);
    expect(changes.map((c) => c.kind)).toEqual(['raised', 'cleared', 'raised']);
    await b.stop();
    expect(db.prepare('SELECT count(*) FROM troubles').pluck().get()).toBe(2);
  });

  it('lists open troubles most severe first, then oldest, and loads them again after a restart', async () => {
    const b = book();
    b.raise('low-battery', { deviceId: 'pb-1' }, 'battery 12 %');
    now += 1;
    b.raise('unprotected', { siteId: 'store-0001' }, 'its only button is offline');
    now += 1;
    b.raise('receiver-offline', { port: 'rx1' }, 'port down');
    now += 1;
    b.raise('offline', { deviceId: 'pb-2' }, 'silent');
    expect(b.open().map((t) => t.kind)).toEqual(['unprotected', 'receiver-offline', 'offline', 'low-battery']);
    expect(b.open().find((t) => t.kind === 'receiver-offline')).toMatchObject({ deviceId: null, siteId: null });
    await b.stop();
    const again = book();
    expect(again.open()).toEqual(b.open());
    expect(again.isOpen('receiver-offline', { port: 'rx1' })).toBe(true);
    expect(again.openFor('pb-1')).toEqual(['low-battery']);
  });

  it('writes a storm of troubles as one queued job at a time, so an alert never waits behind the storm', async () => {
    const b = book();
    for (let i = 0; i < 1200; i++) b.raise('offline', { deviceId: `pb-${i}` }, 'silent');
    // The alert's write is queued after the storm began and still commits in the first transaction.
    const committedBefore = commits.status().commits;
    await commits.write(() => db.prepare("INSERT INTO meta (key, value) VALUES ('alert', 'x')").run());
    expect(commits.status().commits).toBe(committedBefore + 1);
    expect(db.prepare('SELECT count(*) FROM troubles').pluck().get()).toBeLessThanOrEqual(500);
    await b.stop();
    expect(db.prepare('SELECT count(*) FROM troubles WHERE cleared_at IS NULL').pluck().get()).toBe(1200);
    expect(b.recent().length).toBe(1000);
  });
});
