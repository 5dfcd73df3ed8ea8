// What the store costs the event loop per alert: the real DurableStore
// (synchronous=full: WAL flush on the thread pool, checkpoints on their
// worker) takes each alert's three writes as the gateway makes them — the
// insert with its timeline entry and outbox row, the "dispatched" advance
// (queued in the same turn), and, a turn later, the delivery with its
// "acknowledged" advance — and the bench times the transactions on the main
// thread. No MQTT, no HTTP: the figure to compare schema and statement
// changes by.
//
//   npm run bench:store                          # 20,000 alerts, 5 a turn
//   npm run bench:store -- --alerts 50000 --per-turn 1
//
// Progress on stderr; ONE JSON line on stdout.
import { parseArgs } from 'node:util';
import pino from 'pino';
import { deriveAlertId } from '../protocol/index.ts';
import { Counters } from '../gateway/metrics/counters.ts';
import { AlertRepo, type AlertRecord } from '../gateway/store/alert-repo.ts';
import { CommitQueue } from '../gateway/store/commit-queue.ts';
import { DurableStore } from '../gateway/store/durable-store.ts';
import { removeDir, tempDataDir } from '../test/support/gateway-process.ts';

const { values: args } = parseArgs({
  options: {
    alerts: { type: 'string', default: '20000' },
    /** Alerts whose writes are queued in one event-loop turn (at 1,000/s the gateway sees a few per turn). */
    'per-turn': { type: 'string', default: '5' },
  },
  strict: true,
});
const ALERTS = Number(args.alerts);
const PER_TURN = Number(args['per-turn']);
if (!(Number.isInteger(ALERTS) && ALERTS >= 100)) throw new Error('--alerts must be a whole number ≥ 100');
if (!(Number.isInteger(PER_TURN) && PER_TURN >= 1 && PER_TURN <= 250)) throw new Error('--per-turn must be a whole number from 1 to 250');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DEVICES = 10_000;

function alertOf(n: number, now: number): AlertRecord {
  const deviceId = `pb-store-${String(n % DEVICES).padStart(5, '0')}`;
  const seq = 1 + Math.floor(n / DEVICES);
  return {
    id: deriveAlertId(deviceId, seq), deviceId, seq, siteId: `st-${n % DEVICES}`, type: 'panic', priority: 100, state: 'received', source: 'mqtt',
    pressedAt: now, deviceTs: now, receivedAt: now, clockSkew: false, caseId: null, deliveredAt: null, ackedAt: null, ackedBy: null,
    resolvedAt: null, resolvedBy: null, outcome: null, note: null, escalatedAt: null, remindedAt: null, policeStatus: null, updatedAt: now,
  };
}

async function main(): Promise<void> {
  const dataDir = tempDataDir('safehaven-bench-store-');
  const store = new DurableStore({ dataDir, synchronous: 'full', checkpointIntervalMs: 1000 }, new Counters(), pino({ level: 'warn' }));
  const { db, commits } = store.start();
  const repo = new AlertRepo(db);
  // The transactions are where the store's CPU goes; time them where the queue runs them.
  let inCommitMs = 0;
  const queue = CommitQueue.prototype as unknown as { commit: (batch: unknown[]) => void };
  const commit = queue.commit;
  queue.commit = function timed(this: unknown, batch: unknown[]) {
    const t = performance.now();
    try {
      commit.call(this, batch);
    } finally {
      inCommitMs += performance.now() - t;
    }
  };
  // As AlertLifecycle.delivered writes it.
  const deliver = (id: string, at: number) => commits.write(() => {
    repo.markDelivered(id, 'primary', 1, at, 'case-1', 201);
    return repo.advance(id, 'acknowledged', at, 'police', { target: 'primary', caseId: 'case-1' });
  }, { ownSavepoint: false, outsideLimit: true });
  try {
    // The checkpoint worker's first report (its pin) comes within its boot.
    await sleep(1000);
    process.stderr.write(`store bench: ${ALERTS} alerts, ${PER_TURN} a turn, data dir ${dataDir}\n`);
    const start = performance.now();
    const commits0 = store.status().commits;
    let dispatched: string[] = [];
    const waits: Array<Promise<unknown>> = [];
    for (let n = 0; n < ALERTS; n += PER_TURN) {
      const now = Date.now();
      const delivering = dispatched;
      dispatched = [];
      for (let i = n; i < Math.min(ALERTS, n + PER_TURN); i++) {
        const alert = alertOf(i, now);
        waits.push(commits.write(() => repo.insert(alert, { alertId: alert.id, target: 'primary', route: 'default', priority: alert.priority, createdAt: now, nextAt: now }), { ownSavepoint: false }));
        waits.push(commits.write(() => repo.advance(alert.id, 'dispatched', now, null, { target: 'primary', url: 'http://127.0.0.1:9/alerts' }), { ownSavepoint: false, outsideLimit: true }));
        dispatched.push(alert.id);
      }
      // The police answered the previous turn's alerts.
      for (const id of delivering) waits.push(deliver(id, now));
      await sleep(1);
      if (waits.length >= 2000) await Promise.all(waits.splice(0));
      if (n % 5000 < PER_TURN && n > 0) process.stderr.write(`  ${n} alerts\n`);
    }
    for (const id of dispatched) waits.push(deliver(id, Date.now()));
    await Promise.all(waits);
    const wallS = (performance.now() - start) / 1000;
    const status = store.status();
    const result = {
      bench: 'store-alert-cost', alerts: ALERTS, per_turn: PER_TURN,
      commit_us_per_alert: Math.round((1000 * inCommitMs) / ALERTS),
      transactions_per_alert: Math.round((1000 * (status.commits - commits0)) / ALERTS) / 1000,
      wal_restarts: status.checkpoint.restarts,
      db_mb: Math.round(((db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number)) / 1e5) / 10,
      wall_s: Math.round(wallS * 100) / 100, node: process.version,
    };
    process.stderr.write(`  main-thread time in transactions: ${result.commit_us_per_alert} µs per alert (${result.transactions_per_alert} transactions per alert)\n`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    queue.commit = commit;
    await store.stop();
    removeDir(dataDir);
  }
}

await main();
