// Radio keys in the store: computed at provisioning and seeding, filled in for
// demo devices of a data dir from before the serial bridge, never for others.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../gateway/clock.ts';
import { demoSecret, readDemoKey } from '../gateway/registry/demo-credentials.ts';
import { Registry } from '../gateway/registry/registry.ts';
import { backfillDemoRadioKeys, seedDemoRegistry } from '../gateway/registry/seed.ts';
import { CommitQueue } from '../gateway/store/commit-queue.ts';
import { openDatabase, type Db } from '../gateway/store/database.ts';
import { RegistryRepo } from '../gateway/store/registry-repo.ts';
import { deriveRadioKey } from '../protocol/index.ts';

const silent = pino({ level: 'silent' });
let dataDir: string;
let db: Db;
let repo: RegistryRepo;

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'safehaven-radio-keys-'));
  db = openDatabase({ dataDir, synchronous: 'normal' });
  repo = new RegistryRepo(db);
  await seedDemoRegistry(db, repo, systemClock, { dataDir, stores: 2, homes: 1, seed: 1 }, silent);
});

afterEach(() => {
  db.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const radioKeys = () => new Map(repo.allDevices().map((d) => [d.id, d.radioKey?.toString('hex') ?? null]));
const expectedDemoKey = (id: string) => deriveRadioKey(demoSecret(readDemoKey(dataDir), id)).toString('hex');

describe('radio keys', () => {
  it('are seeded with the demo devices, derived from their demo secrets', () => {
    const keys = radioKeys();
    expect(keys.size).toBe(5);
    for (const [id, key] of keys) expect(key, id).toBe(expectedDemoKey(id));
  });

  it('are derived from the secret handed out at provisioning, and stored', async () => {
    const commits = new CommitQueue(db, silent);
    const registry = new Registry(repo, commits, systemClock);
    registry.load();
    const { device, secret } = await registry.provision({ siteId: 'store-0001', type: 'panic-button' });
    expect(device.radioKey).toEqual(deriveRadioKey(secret));
    expect(radioKeys().get(device.id)).toBe(deriveRadioKey(secret).toString('hex'));
    commits.close();
  });

  it('are filled in for demo devices of an older data dir, once, and for no other device', () => {
    repo.insertDevice({ id: 'pb-provisioned', siteId: 'store-0001', type: 'panic-button', secretHash: 'scrypt$x', radioKey: null, createdAt: 1 });
    db.exec('UPDATE devices SET radio_key = NULL'); // what migration 3 leaves in a data dir seeded before it

    expect(backfillDemoRadioKeys(db, repo, dataDir, silent)).toBe(5);
    const keys = radioKeys();
    expect(keys.get('pb-provisioned')).toBeNull();
    for (const [id, key] of keys) if (id !== 'pb-provisioned') expect(key, id).toBe(expectedDemoKey(id));
    expect(backfillDemoRadioKeys(db, repo, dataDir, silent)).toBe(0);
  });

  it('are left missing, with a warning, when the demo key file is gone', () => {
    db.exec('UPDATE devices SET radio_key = NULL');
    rmSync(join(dataDir, 'demo.key'));
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) });
    expect(backfillDemoRadioKeys(db, repo, dataDir, log)).toBe(0);
    expect(warnings.join('')).toContain('DEMO_KEY_MISSING');
    expect([...radioKeys().values()].every((k) => k === null)).toBe(true);
  });
});
