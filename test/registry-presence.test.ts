// Presence (last seen, battery, signal) reaches the store in small transactions, never one per heartbeat nor one huge one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../gateway/clock.ts';
import { PRESENCE_PERSIST_MS, Registry } from '../gateway/registry/registry.ts';
import { seedDemoRegistry } from '../gateway/registry/seed.ts';
import { CommitQueue } from '../gateway/store/commit-queue.ts';
import { openDatabase, type Db } from '../gateway/store/database.ts';
import { RegistryRepo } from '../gateway/store/registry-repo.ts';

const silent = pino({ level: 'silent' });
let dataDir: string;
let db: Db;
let repo: RegistryRepo;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'safehaven-presence-'));
  db = openDatabase({ dataDir, synchronous: 'normal' });
  repo = new RegistryRepo(db);
  await seedDemoRegistry(db, repo, systemClock, { dataDir, stores: 300, homes: 0, seed: 1 }, silent);
});

afterEach(() => {
  db.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A registry over the store's 300 devices, with a spy on its commit queue's writes. */
function loadedRegistry() {
  const commits = new CommitQueue(db, silent);
  const writes = vi.spyOn(commits, 'write');
  const registry = new Registry(repo, commits, systemClock);
  registry.load();
  return { writes, registry, ids: repo.allDevices().map((d) => d.id) };
}

describe('presence flush', () => {
  it('writes every device heard, in transactions of a few hundred, and nothing when nobody was heard', async () => {
    const { writes, registry, ids } = loadedRegistry();
    expect(ids.length).toBe(300);
    ids.forEach((id, i) => registry.notePresence(id, { battery: 50 + (i % 50), rssi: -60 }, 1_000_000 + i));

    expect(await registry.flushPresence()).toBe(300);
    expect(writes).toHaveBeenCalledTimes(2);
    const stored = new Map(repo.allDevices().map((d) => [d.id, d]));
    ids.forEach((id, i) => expect(stored.get(id)).toMatchObject({ lastSeen: 1_000_000 + i, battery: 50 + (i % 50), rssi: -60 }));
    expect(await registry.flushPresence()).toBe(0);
    expect(writes).toHaveBeenCalledTimes(2);
  });

  it('writes a device again within a minute only for a new battery level or firmware, and everything heard on shutdown', async () => {
    const commits = new CommitQueue(db, silent);
    const registry = new Registry(repo, commits, systemClock);
    registry.load();
    const [a, b, c] = repo.allDevices().map((d) => d.id);
    for (const id of [a!, b!, c!]) registry.notePresence(id, { battery: 80, rssi: -60 }, 1_000_000);
    expect(await registry.flushPresence()).toBe(3);

    registry.notePresence(a!, { battery: 80, rssi: -61 }, 1_010_000);
    registry.notePresence(b!, { battery: 79, rssi: -60 }, 1_010_000);
    registry.notePresence(c!, { battery: 80, rssi: -60 }, 1_000_000 + PRESENCE_PERSIST_MS);
    // b: new battery level; c: a minute since its last write; a: only heard again.
    expect(await registry.flushPresence()).toBe(2);
    expect(repo.allDevices().find((d) => d.id === a)).toMatchObject({ lastSeen: 1_000_000, rssi: -60 });
    expect(registry.device(a!)).toMatchObject({ lastSeen: 1_010_000, rssi: -61 });

    expect(await registry.flushPresence({ all: true })).toBe(1);
    expect(repo.allDevices().find((d) => d.id === a)).toMatchObject({ lastSeen: 1_010_000, rssi: -61 });
  });
});

describe('a paced presence flush', () => {
  it('pauses between chunks, lets no second timed flush run meanwhile, and stops pausing for a shutdown flush', async () => {
    const { writes, registry, ids } = loadedRegistry();
    ids.forEach((id, i) => registry.notePresence(id, { battery: 60, rssi: -60 }, 2_000_000 + i));

    // 300 devices: a chunk of 250, a pause of 10 s, then the other 50.
    const paced = registry.flushPresence({ pauseMs: 10_000 });
    // The first chunk is stored: the flush is in its pause.
    await vi.waitFor(() => expect(repo.allDevices().filter((d) => d.lastSeen !== null && d.lastSeen >= 2_000_000)).toHaveLength(250));
    expect(await registry.flushPresence({ pauseMs: 10_000 })).toBe(0);
    expect(writes).toHaveBeenCalledTimes(1);

    registry.notePresence(ids[0]!, { battery: 59, rssi: -60 }, 2_100_000);
    // Shutdown (well within the test's 5 s timeout): the paced flush ends its pause and finishes, then the new battery level is written.
    expect(await registry.flushPresence({ all: true })).toBe(1);
    expect(await paced).toBe(300);
    expect(repo.allDevices().find((d) => d.id === ids[0])).toMatchObject({ battery: 59, lastSeen: 2_100_000 });
    expect(repo.allDevices().find((d) => d.id === ids[299])).toMatchObject({ lastSeen: 2_000_299 });
  });
});
