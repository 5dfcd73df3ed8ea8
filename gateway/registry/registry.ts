// The registry of sites and devices, held in memory (a few MB for 50,000
// devices) so that resolving a device to its site on the alert path is a map
// lookup, with every change written through to the store.
import { randomBytes } from 'node:crypto';
import { deriveRadioKey, type DeviceType, type Site } from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import type { CommitQueue } from '../store/commit-queue.ts';
import type { DeviceRecord, RegistryRepo } from '../store/registry-repo.ts';
import { generateSecret, hashSecret, STRONG_COST, VerifiedSecretCache, verifySecret } from './secrets.ts';

export type AuthOutcome = 'ok' | 'unknown-device' | 'revoked' | 'bad-secret';

/** Devices per presence transaction: about a millisecond of the event loop each. */
const PRESENCE_CHUNK = 250;
/**
 * Between two chunks of a timed flush (at most 2,500 devices a second).
 * Ten thousand devices come due together after a restart or a reconnect
 * storm, and once a minute from then on: written back to back, their
 * updates (a random page each) held the event loop and flooded the WAL for
 * seconds — the city bench's p99 in the second after such a flush was
 * 123 ms, 19 ms with presence writes off.
 */
export const PRESENCE_CHUNK_PAUSE_MS = 100;
/**
 * Last seen (and signal) reach the store at most this often per device: the
 * in-memory value, which the API and supervision read, is always exact; the
 * stored one is only what a restart starts from. A new battery level or
 * firmware is written at the next flush.
 */
export const PRESENCE_PERSIST_MS = 60_000;

/** Short prefix per type so an installer can tell a device's kind from its id. */
export const DEVICE_ID_PREFIX: Record<DeviceType, string> = {
  'panic-button': 'pb',
  'motion-sensor': 'ms',
  'door-sensor': 'ds',
  'alarm-bell': 'ab',
  'rf-receiver': 'rx',
};

export class RegistryError extends Error {
  constructor(readonly code: 'UNKNOWN_SITE' | 'DEVICE_EXISTS' | 'SITE_EXISTS', message: string, readonly field: string) {
    super(message);
  }
}

export class Registry {
  private readonly sites = new Map<string, Site>();
  private readonly devices = new Map<string, DeviceRecord>();
  private readonly verified = new VerifiedSecretCache();
  /** Devices whose presence changed since the last flush to the store. */
  private dirty = new Set<string>();
  /** The lastSeen each device had when its presence was last written. */
  private readonly persistedSeen = new Map<string, number>();
  /** The flush running now, if any, and whether a shutdown asked it to stop pausing. */
  private presenceFlush: Promise<number> | null = null;
  private presenceHurry = false;
  private wakePresence: (() => void) | null = null;

  constructor(
    private readonly repo: RegistryRepo,
    private readonly commits: CommitQueue,
    private readonly clock: Clock,
  ) {}

  load(): void {
    this.sites.clear();
    this.devices.clear();
    for (const site of this.repo.allSites()) this.sites.set(site.id, site);
    for (const device of this.repo.allDevices()) this.devices.set(device.id, device);
  }

  site(id: string): Site | undefined {
    return this.sites.get(id);
  }

  device(id: string): DeviceRecord | undefined {
    return this.devices.get(id);
  }

  allSites(): IterableIterator<Site> {
    return this.sites.values();
  }

  allDevices(): IterableIterator<DeviceRecord> {
    return this.devices.values();
  }

  counts(): { sites: number; devices: number } {
    return { sites: this.sites.size, devices: this.devices.size };
  }

  async authenticate(deviceId: string, secret: string): Promise<AuthOutcome> {
    const device = this.devices.get(deviceId);
    if (!device) return 'unknown-device';
    if (device.revokedAt !== null) return 'revoked';
    if (this.verified.matches(deviceId, secret)) return 'ok';
    const hash = device.secretHash;
    if (!(await verifySecret(secret, hash))) return 'bad-secret';
    // Re-check: the device may have been revoked, or its secret rotated, while scrypt ran.
    if (this.devices.get(deviceId)?.revokedAt !== null) return 'revoked';
    if (device.secretHash !== hash) return 'bad-secret';
    this.verified.remember(deviceId, secret);
    return 'ok';
  }

  /** A secret already verified in this process (an HMAC, no scrypt): lets a known device in while its address or id is rate-limited. */
  knownSecret(deviceId: string, secret: string): boolean {
    const device = this.devices.get(deviceId);
    return device !== undefined && device.revokedAt === null && this.verified.matches(deviceId, secret);
  }

  async addSite(site: Site): Promise<Site> {
    if (this.sites.has(site.id)) throw new RegistryError('SITE_EXISTS', `site ${site.id} already exists`, 'id');
    await this.commits.write(() => this.repo.insertSite(site, this.clock.now()));
    this.sites.set(site.id, site);
    return site;
  }

  /**
   * Adds many sites in one transaction: all or none. Sites whose id exists
   * already are skipped, or refuse the whole batch when `existing` is 'fail'.
   */
  async addSites(sites: Site[], existing: 'skip' | 'fail'): Promise<{ added: Site[]; skipped: string[] }> {
    const skipped = sites.filter((s) => this.sites.has(s.id)).map((s) => s.id);
    if (skipped.length > 0 && existing === 'fail') {
      throw new RegistryError('SITE_EXISTS', `${skipped.length} sites exist already, e.g. ${skipped.slice(0, 5).join(', ')}`, 'id');
    }
    const added = sites.filter((s) => !this.sites.has(s.id));
    const at = this.clock.now();
    try {
      await this.commits.write(() => added.forEach((site) => this.repo.insertSite(site, at)));
    } catch (err) {
      // Another import took one of these ids while this one waited for its commit.
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new RegistryError('SITE_EXISTS', 'a site of this import was added meanwhile: retry with ?existing=skip', 'id');
      throw err;
    }
    for (const site of added) this.sites.set(site.id, site);
    return { added, skipped };
  }

  /** Creates a device and returns its secret: the only time the secret exists outside the device. */
  async provision(input: { siteId: string; type: DeviceType; id?: string }): Promise<{ device: DeviceRecord; secret: string }> {
    if (!this.sites.has(input.siteId)) throw new RegistryError('UNKNOWN_SITE', `siteId: no site with id ${input.siteId}`, 'siteId');
    const id = input.id ?? `${DEVICE_ID_PREFIX[input.type]}-${randomBytes(5).toString('hex')}`;
    if (this.devices.has(id)) throw new RegistryError('DEVICE_EXISTS', `device ${id} already exists`, 'id');
    const secret = generateSecret();
    const secretHash = await hashSecret(secret, STRONG_COST);
    const device: DeviceRecord = {
      id, siteId: input.siteId, type: input.type, secretHash, radioKey: deriveRadioKey(secret), fw: null, battery: null, rssi: null,
      lastSeen: null, createdAt: this.clock.now(), revokedAt: null,
    };
    // Checked again: another request may have taken the id while scrypt ran.
    if (this.devices.has(id)) throw new RegistryError('DEVICE_EXISTS', `device ${id} already exists`, 'id');
    this.devices.set(id, device);
    try {
      await this.commits.write(() => this.repo.insertDevice(device));
    } catch (err) {
      this.devices.delete(id);
      throw err;
    }
    return { device, secret };
  }

  /**
   * Refuses the device from now on (authenticate answers 'revoked'); idempotent.
   * The caller closes its live sessions. Returns null for an unknown device.
   */
  async revoke(deviceId: string): Promise<DeviceRecord | null> {
    const device = this.devices.get(deviceId);
    if (!device) return null;
    if (device.revokedAt !== null) return device;
    const at = this.clock.now();
    // In memory first: a CONNECT racing the commit is already refused.
    device.revokedAt = at;
    this.verified.forget(deviceId);
    try {
      await this.commits.write(() => this.repo.revoke(deviceId, at));
    } catch (err) {
      device.revokedAt = null;
      throw err;
    }
    return device;
  }

  /** A new secret for a device (and a new radio key from it); the only time this secret exists outside the device. */
  async rotateSecret(deviceId: string): Promise<{ device: DeviceRecord; secret: string } | null> {
    const device = this.devices.get(deviceId);
    if (!device || device.revokedAt !== null) return null;
    const secret = generateSecret();
    const secretHash = await hashSecret(secret, STRONG_COST);
    const radioKey = deriveRadioKey(secret);
    await this.commits.write(() => this.repo.setSecret(deviceId, secretHash, radioKey));
    device.secretHash = secretHash;
    device.radioKey = radioKey;
    this.verified.forget(deviceId);
    return { device, secret };
  }

  /** Latest battery/signal/firmware seen from a device; written to the store in batches by flushPresence. */
  notePresence(deviceId: string, seen: { battery?: number; rssi?: number; fw?: string }, at: number): void {
    const device = this.devices.get(deviceId);
    if (!device) return;
    const changed = (seen.battery !== undefined && seen.battery !== device.battery) || (seen.fw !== undefined && seen.fw !== device.fw);
    if (seen.battery !== undefined) device.battery = seen.battery;
    if (seen.rssi !== undefined) device.rssi = seen.rssi;
    if (seen.fw !== undefined) device.fw = seen.fw;
    device.lastSeen = at;
    const persisted = this.persistedSeen.get(deviceId);
    if (changed || persisted === undefined || at - persisted >= PRESENCE_PERSIST_MS) this.dirty.add(deviceId);
  }

  /**
   * Writes presence of devices seen since the last flush; a heartbeat never
   * waits for the disk. In chunks, each committed before the next is queued:
   * ten thousand devices heard in one interval must not become one
   * transaction that holds the event loop (and every alert) for tens of ms.
   * `pauseMs` between chunks spreads a large flush out (the timer's; one
   * runs at a time, a call meanwhile writes nothing). `all` (on shutdown):
   * also every device heard since its last write, after a paced flush still
   * running, which stops pausing.
   */
  async flushPresence({ all = false, pauseMs = 0 } = {}): Promise<number> {
    if (this.presenceFlush) {
      if (!all) return 0;
      this.presenceHurry = true;
      this.wakePresence?.();
      await this.presenceFlush.catch(() => 0);
    }
    const run = this.writePresence(all, pauseMs);
    this.presenceFlush = run;
    try {
      return await run;
    } finally {
      if (this.presenceFlush === run) this.presenceFlush = null;
      this.presenceHurry = false;
    }
  }

  /** A pause that a shutdown flush cuts short. */
  private presencePause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wakePresence?.(), ms);
      this.wakePresence = () => {
        clearTimeout(timer);
        this.wakePresence = null;
        resolve();
      };
    });
  }

  private async writePresence(all: boolean, pauseMs: number): Promise<number> {
    if (all) for (const [id, d] of this.devices) if (d.lastSeen !== null && d.lastSeen !== this.persistedSeen.get(id)) this.dirty.add(id);
    if (this.dirty.size === 0) return 0;
    const ids = [...this.dirty];
    this.dirty = new Set();
    let written = 0;
    for (let from = 0; from < ids.length; from += PRESENCE_CHUNK) {
      const rows = ids.slice(from, from + PRESENCE_CHUNK).flatMap((id) => {
        const d = this.devices.get(id);
        return d ? [{ id, fw: d.fw, battery: d.battery, rssi: d.rssi, lastSeen: d.lastSeen }] : [];
      });
      try {
        // Plain updates of existing rows: only a failing store can refuse them (no savepoint, see WriteOptions).
        await this.commits.write(() => rows.forEach((row) => this.repo.savePresence(row)), { ownSavepoint: false });
        for (const row of rows) if (row.lastSeen !== null) this.persistedSeen.set(row.id, row.lastSeen);
      } catch (err) {
        for (const id of ids.slice(from)) this.dirty.add(id);
        throw err;
      }
      written += rows.length;
      if (pauseMs > 0 && !this.presenceHurry && from + PRESENCE_CHUNK < ids.length) await this.presencePause(pauseMs);
    }
    return written;
  }
}
