// First start with an empty store: a demo registry of Seoul, so the gateway
// works end to end before anyone has imported a single real site.
import type { Logger } from 'pino';
import { existsSync } from 'node:fs';
import { deriveRadioKey, type DeviceType, type Site } from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import type { Db } from '../store/database.ts';
import type { RegistryRepo } from '../store/registry-repo.ts';
import { demoKeyPath, demoSecret, loadOrCreateDemoKey, readDemoKey } from './demo-credentials.ts';
import { generateDemoSites } from './demo-registry.ts';
import { DEVICE_ID_PREFIX } from './registry.ts';
import { DEMO_COST, hashSecret } from './secrets.ts';

/** What each demo site is fitted with: a store's clerk carries a button; a home has the patrol kit. */
const KIT: Record<Site['kind'], DeviceType[]> = {
  store: ['panic-button'],
  home: ['motion-sensor', 'door-sensor', 'alarm-bell'],
};

export function demoDeviceIds(site: Pick<Site, 'id' | 'kind'>): Array<{ id: string; type: DeviceType }> {
  return KIT[site.kind].map((type) => ({ id: `${DEVICE_ID_PREFIX[type]}-${site.id}`, type }));
}

export interface SeedOptions {
  dataDir: string;
  stores: number;
  homes: number;
  seed: number;
}

/** Hashes run on libuv's thread pool; this many at once keeps both cores busy without a burst of 16 MiB buffers. */
const HASH_PARALLELISM = 8;

export async function seedDemoRegistry(db: Db, repo: RegistryRepo, clock: Clock, opts: SeedOptions, log: Logger): Promise<{ sites: number; devices: number }> {
  const sites = generateDemoSites({ stores: opts.stores, homes: opts.homes, seed: opts.seed });
  const key = loadOrCreateDemoKey(opts.dataDir);
  const devices = sites.flatMap((site) => demoDeviceIds(site).map((d) => ({ ...d, siteId: site.id })));
  log.info({ stores: opts.stores, homes: opts.homes, devices: devices.length }, 'empty store: seeding the Seoul demo registry (first start only)');

  const hashes: string[] = new Array(devices.length);
  let next = 0;
  let done = 0;
  let lastReport = clock.now();
  const worker = async () => {
    while (next < devices.length) {
      const i = next++;
      hashes[i] = await hashSecret(demoSecret(key, devices[i]!.id), DEMO_COST);
      done++;
      if (clock.now() - lastReport > 2000) {
        lastReport = clock.now();
        log.info({ done, of: devices.length }, `seeding demo devices: ${Math.round((100 * done) / devices.length)}%`);
      }
    }
  };
  await Promise.all(Array.from({ length: HASH_PARALLELISM }, worker));

  const now = clock.now();
  db.transaction(() => {
    for (const site of sites) repo.insertSite(site, now);
    devices.forEach((d, i) => repo.insertDevice({
      id: d.id, siteId: d.siteId, type: d.type, secretHash: hashes[i]!, radioKey: deriveRadioKey(demoSecret(key, d.id)), createdAt: now,
    }));
    db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('demo_seeded_at', ?)").run(String(now));
  })();
  return { sites: sites.length, devices: devices.length };
}

/**
 * Demo devices seeded before radio keys existed (store migration 3) have none;
 * their secrets are derivable from the demo key, so theirs can be filled in.
 * One HMAC per device, no scrypt: a no-op on every later start.
 */
export function backfillDemoRadioKeys(db: Db, repo: RegistryRepo, dataDir: string, log: Logger): number {
  const ids = repo.demoDevicesWithoutRadioKey();
  if (ids.length === 0) return 0;
  if (!existsSync(demoKeyPath(dataDir))) {
    log.warn({ devices: ids.length, code: 'DEMO_KEY_MISSING' }, `${ids.length} demo devices have no radio key and ${demoKeyPath(dataDir)} is gone: their radio frames will be refused`);
    return 0;
  }
  const key = readDemoKey(dataDir);
  db.transaction(() => ids.forEach((id) => repo.setRadioKey(id, deriveRadioKey(demoSecret(key, id)))))();
  log.info({ devices: ids.length }, 'gave demo devices their radio keys (data dir from before the serial bridge)');
  return ids.length;
}
