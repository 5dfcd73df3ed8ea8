// First start with an empty store: a demo registry of Seoul, so the gateway
// works end to end before anyone has imported a single real site.
import type { Logger } from 'pino';
import type { DeviceType, Site } from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import type { Db } from '../store/database.ts';
import type { RegistryRepo } from '../store/registry-repo.ts';
import { demoSecret, loadOrCreateDemoKey } from './demo-credentials.ts';
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
    devices.forEach((d, i) => repo.insertDevice({ id: d.id, siteId: d.siteId, type: d.type, secretHash: hashes[i]!, createdAt: now }));
    db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('demo_seeded_at', ?)").run(String(now));
  })();
  return { sites: sites.length, devices: devices.length };
}
