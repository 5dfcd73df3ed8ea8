// The embedded store: one SQLite file in WAL mode under the data dir.
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type { Db };

/**
 * Each entry upgrades the schema by one version; applied in order inside a
 * transaction and recorded in `user_version`, so an old data dir is migrated
 * on start and a half-applied migration cannot exist.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE sites (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    phone TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    district TEXT NOT NULL,
    police_station TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites(id),
    type TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    fw TEXT,
    battery INTEGER,
    rssi INTEGER,
    last_seen INTEGER,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX devices_site ON devices(site_id);
  CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    site_id TEXT NOT NULL,
    type TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    pressed_at INTEGER NOT NULL,
    device_ts INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    clock_skew INTEGER NOT NULL,
    case_id TEXT,
    delivered_at INTEGER,
    acked_at INTEGER,
    acked_by TEXT,
    resolved_at INTEGER,
    resolved_by TEXT,
    outcome TEXT,
    note TEXT,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX alerts_open ON alerts(priority DESC, received_at) WHERE state != 'resolved';
  CREATE INDEX alerts_received ON alerts(received_at);
  CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT,
    actor TEXT,
    detail TEXT
  );
  CREATE INDEX alert_events_alert ON alert_events(alert_id, id);
  CREATE TABLE outbox (
    alert_id TEXT NOT NULL,
    target TEXT NOT NULL,
    route TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    last_error TEXT,
    done_at INTEGER,
    PRIMARY KEY (alert_id, target)
  );
  CREATE INDEX outbox_due ON outbox(priority DESC, created_at) WHERE done_at IS NULL;
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
  );
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
  );
  `,
  // Escalation and reminders are decided from these columns, so a restart neither repeats nor forgets them.
  `
  ALTER TABLE alerts ADD COLUMN escalated_at INTEGER;
  ALTER TABLE alerts ADD COLUMN reminded_at INTEGER;
  ALTER TABLE alerts ADD COLUMN police_status TEXT;
  CREATE INDEX alerts_unescalated ON alerts(received_at) WHERE delivered_at IS NULL AND escalated_at IS NULL AND state != 'resolved';
  `,
  // Serial bridge: the key radio frames are signed with (the gateway has only a hash of the
  // secret), and the index the per-device replay window reads its highest seq from.
  `
  ALTER TABLE devices ADD COLUMN radio_key BLOB;
  CREATE INDEX alerts_device_seq ON alerts(device_id, seq);
  `,
  // Trouble entries (supervision): open ones survive a restart; at most one open per (kind, subject),
  // the subject being the device id, the site id, or `port:<name>` for a receiver port with no device.
  `
  CREATE TABLE troubles (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    device_id TEXT,
    site_id TEXT,
    detail TEXT NOT NULL,
    raised_at INTEGER NOT NULL,
    cleared_at INTEGER,
    clear_detail TEXT
  );
  CREATE UNIQUE INDEX troubles_open ON troubles(kind, subject) WHERE cleared_at IS NULL;
  CREATE INDEX troubles_raised ON troubles(raised_at);
  `,
  // The dispatcher's timer asks for the next retry time, the reminder tick for alerts due a
  // reminder: seeks, not scans of every undelivered or open alert, once a second, in a burst.
  `
  CREATE INDEX outbox_next ON outbox(next_at) WHERE done_at IS NULL;
  CREATE INDEX alerts_unreminded ON alerts(coalesce(reminded_at, received_at)) WHERE state != 'resolved' AND acked_at IS NULL;
  `,
  // "Open" is `resolved_at IS NULL` (set in the same transaction as the state 'resolved'), not
  // `state != 'resolved'`: SQLite rewrites a partial index's entry whenever a column its WHERE
  // names changes, so every state advance (two per alert) rewrote three indexes for nothing.
  `
  UPDATE alerts SET resolved_at = updated_at WHERE state = 'resolved' AND resolved_at IS NULL;
  DROP INDEX alerts_open;
  CREATE INDEX alerts_open ON alerts(priority DESC, received_at) WHERE resolved_at IS NULL;
  DROP INDEX alerts_unescalated;
  CREATE INDEX alerts_unescalated ON alerts(received_at) WHERE delivered_at IS NULL AND escalated_at IS NULL AND resolved_at IS NULL;
  DROP INDEX alerts_unreminded;
  CREATE INDEX alerts_unreminded ON alerts(coalesce(reminded_at, received_at)) WHERE resolved_at IS NULL AND acked_at IS NULL;
  `,
  // Only "every alert, newest first" read this index, and the rowid (insertion order) says the same
  // without one: an index written by every alert (a random page of the WAL each time) for a listing.
  `
  DROP INDEX IF EXISTS alerts_received;
  `,
];

const BUSY_TIMEOUT_MS = 250;
/** A WAL a burst grew is cut back to this when it restarts (set on every connection that may write). */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

export interface OpenOptions {
  dataDir: string;
  synchronous: 'full' | 'normal';
  /** For tests that want a throwaway store. */
  fileName?: string;
}

export class StoreOpenError extends Error {
  readonly code = 'STORE_OPEN_FAILED';
}

export function openDatabase({ dataDir, synchronous, fileName = 'safehaven.db' }: OpenOptions): Db {
  const path = join(dataDir, fileName);
  let db: Db | null = null;
  try {
    mkdirSync(dataDir, { recursive: true });
    // Only another process (a backup, an operator's sqlite3 shell) can hold the write lock, and while
    // it waits the event loop is blocked: wait briefly, then fail the commit so the device retries.
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous.toUpperCase()}`);
    db.pragma('foreign_keys = ON');
    // Savepoints (one per commit-queue job) keep their undo journal in memory, not in a temp file.
    db.pragma('temp_store = MEMORY');
    // Checkpoints run on commit past this many pages (until a Checkpointer takes them off the
    // event loop); bounded WAL, bounded recovery time.
    db.pragma('wal_autocheckpoint = 1000');
    // A WAL that a burst grew is cut back to this size when it restarts.
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    migrate(db);
    return db;
  } catch (err) {
    db?.close();
    // A gateway that cannot store cannot acknowledge anything: say exactly where and why, then stop.
    const { code, message } = err as { code?: string; message: string };
    throw new StoreOpenError(`cannot open the store ${path} (data dir ${dataDir}): ${code ? `${code}: ` : ''}${message}; is the data dir writable by this user?`, { cause: err });
  }
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
