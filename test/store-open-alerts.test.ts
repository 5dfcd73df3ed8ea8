// "Open" in the store is resolved_at IS NULL, which the resolving transaction
// sets together with the state 'resolved': state advances then rewrite no
// index. Checked on a real SQLite file, including a store whose rows predate
// the change (migration 6).
import { afterEach, describe, expect, it } from 'vitest';
import { AlertRepo, type AlertRecord } from '../gateway/store/alert-repo.ts';
import { openDatabase, type Db } from '../gateway/store/database.ts';
import { removeDir, tempDataDir } from './support/gateway-process.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function open(dir: string): Db {
  const db = openDatabase({ dataDir: dir, synchronous: 'normal' });
  cleanups.push(() => db.open && db.close());
  return db;
}

function freshDir(): string {
  const dir = tempDataDir('safehaven-open-alerts-');
  cleanups.push(() => removeDir(dir));
  return dir;
}

const T0 = 1_764_000_000_000;
const alert = (n: number): AlertRecord => ({
  id: `al-${n}`, deviceId: `pb-${n}`, seq: 1, siteId: 'st-1', type: 'panic', priority: 100, state: 'received', source: 'mqtt',
  pressedAt: T0 + n, deviceTs: T0 + n, receivedAt: T0 + n, clockSkew: false, caseId: null, deliveredAt: null, ackedAt: null, ackedBy: null,
  resolvedAt: null, resolvedBy: null, outcome: null, note: null, escalatedAt: null, remindedAt: null, policeStatus: null, updatedAt: T0 + n,
});

function store(repo: AlertRepo, n: number): void {
  const a = alert(n);
  repo.insert(a, { alertId: a.id, target: 'primary', route: 'default', priority: a.priority, createdAt: a.receivedAt, nextAt: a.receivedAt });
}

describe('open alerts in the store', () => {
  it('counts, lists, escalates and reminds exactly the unresolved ones, whatever their state', () => {
    const repo = new AlertRepo(open(freshDir()));
    for (const n of [1, 2, 3]) store(repo, n);
    repo.advance('al-1', 'dispatched', T0 + 10, null);
    repo.advance('al-2', 'acknowledged', T0 + 10, 'police');
    repo.markResolved('al-3', 'op', T0 + 10, 'false-alarm', null);
    repo.advance('al-3', 'resolved', T0 + 10, 'op');

    expect(repo.openCount()).toBe(2);
    expect(repo.list({ open: true, limit: 10 }).map((a) => a.id).sort()).toEqual(['al-1', 'al-2']);
    expect(repo.overdueForEscalation(T0 + 100, 10).map((a) => a.id).sort()).toEqual(['al-1', 'al-2']);
    expect(repo.dueReminders(T0 + 100, 10).map((a) => a.id).sort()).toEqual(['al-1', 'al-2']);
  });

  it('reads every column of an alert into its own field (rows come back as arrays, by position)', () => {
    const db = open(freshDir());
    const repo = new AlertRepo(db);
    store(repo, 1);
    db.prepare(`UPDATE alerts SET state = 'escalated', clock_skew = 1, case_id = 'case-7', delivered_at = ${T0 + 11}, acked_at = ${T0 + 12},
      acked_by = 'op-1', resolved_at = ${T0 + 13}, resolved_by = 'op-2', outcome = 'other', note = 'a note', escalated_at = ${T0 + 14},
      reminded_at = ${T0 + 15}, police_status = 'arrived', updated_at = ${T0 + 16} WHERE id = 'al-1'`).run();
    const expected: AlertRecord = {
      ...alert(1), state: 'escalated', clockSkew: true, caseId: 'case-7', deliveredAt: T0 + 11, ackedAt: T0 + 12, ackedBy: 'op-1',
      resolvedAt: T0 + 13, resolvedBy: 'op-2', outcome: 'other', note: 'a note', escalatedAt: T0 + 14, remindedAt: T0 + 15,
      policeStatus: 'arrived', updatedAt: T0 + 16,
    };
    expect(repo.get('al-1')).toEqual(expected);
    expect(repo.list({ limit: 1 })).toEqual([expected]);
    // The state advance reads its row back through RETURNING.
    expect(repo.advance('al-1', 'resolved', T0 + 20, 'op-2')).toEqual({ ...expected, state: 'resolved', updatedAt: T0 + 20 });
  });

  it('lists every alert newest stored first, also after the clock stepped back (migration 7: no receive-time index)', () => {
    const db = open(freshDir());
    const repo = new AlertRepo(db);
    // al-3 is stored last with the earliest receive time: a wall clock set back between two presses.
    for (const n of [2, 5]) store(repo, n);
    const stepped = alert(3);
    repo.insert({ ...stepped, receivedAt: T0 - 60_000 }, { alertId: stepped.id, target: 'primary', route: 'default', priority: 100, createdAt: T0 - 60_000, nextAt: T0 - 60_000 });
    expect(repo.list({ limit: 10 }).map((a) => a.id)).toEqual(['al-3', 'al-5', 'al-2']);
    expect(repo.list({ limit: 2 }).map((a) => a.id)).toEqual(['al-3', 'al-5']);
    expect(db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'alerts_received'").pluck().get()).toBe(0);
  });

  it('treats a resolved row without resolved_at, from before migration 6, as closed once migrated', () => {
    const dir = freshDir();
    const db = open(dir);
    store(new AlertRepo(db), 1);
    store(new AlertRepo(db), 2);
    // A row as an older gateway could have left it, and the store put back at version 5.
    db.exec("UPDATE alerts SET state = 'resolved', updated_at = updated_at + 5 WHERE id = 'al-2'");
    db.pragma('user_version = 5');
    db.close();

    const repo = new AlertRepo(open(dir));
    expect(repo.get('al-2')).toMatchObject({ state: 'resolved', resolvedAt: T0 + 2 + 5 });
    expect(repo.openCount()).toBe(1);
    expect(repo.list({ open: true, limit: 10 }).map((a) => a.id)).toEqual(['al-1']);
  });
});
