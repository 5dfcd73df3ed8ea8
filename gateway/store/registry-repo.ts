// Sites and devices as rows. Only this module writes their SQL.
import type { DeviceType, Site, SiteKind } from '../../protocol/index.ts';
import type { Db } from './database.ts';

export interface DeviceRecord {
  id: string;
  siteId: string;
  type: DeviceType;
  secretHash: string;
  /** Key of the MACs on radio frames (deriveRadioKey); null for a device provisioned before radio keys existed. */
  radioKey: Buffer | null;
  fw: string | null;
  battery: number | null;
  rssi: number | null;
  lastSeen: number | null;
  createdAt: number;
  revokedAt: number | null;
}

interface SiteRow {
  id: string; kind: SiteKind; name: string; address: string; phone: string;
  lat: number; lon: number; district: Site['district']; police_station: string;
}

interface DeviceRow {
  id: string; site_id: string; type: DeviceType; secret_hash: string; radio_key: Buffer | null; fw: string | null;
  battery: number | null; rssi: number | null; last_seen: number | null; created_at: number; revoked_at: number | null;
}

const siteFromRow = (r: SiteRow): Site => ({
  id: r.id, kind: r.kind, name: r.name, address: r.address, phone: r.phone,
  lat: r.lat, lon: r.lon, district: r.district, policeStation: r.police_station,
});

const deviceFromRow = (r: DeviceRow): DeviceRecord => ({
  id: r.id, siteId: r.site_id, type: r.type, secretHash: r.secret_hash, radioKey: r.radio_key, fw: r.fw, battery: r.battery,
  rssi: r.rssi, lastSeen: r.last_seen, createdAt: r.created_at, revokedAt: r.revoked_at,
});

export class RegistryRepo {
  private readonly stmts;

  constructor(private readonly db: Db) {
    this.stmts = {
      insertSite: db.prepare(`INSERT INTO sites (id, kind, name, address, phone, lat, lon, district, police_station, created_at)
        VALUES (@id, @kind, @name, @address, @phone, @lat, @lon, @district, @policeStation, @createdAt)`),
      insertDevice: db.prepare(`INSERT INTO devices (id, site_id, type, secret_hash, radio_key, created_at)
        VALUES (@id, @siteId, @type, @secretHash, @radioKey, @createdAt)`),
      setRadioKey: db.prepare('UPDATE devices SET radio_key = ? WHERE id = ?'),
      // Demo devices are exactly those created in the seeding transaction, which stamps meta.demo_seeded_at.
      demoWithoutRadioKey: db.prepare(`SELECT id FROM devices WHERE radio_key IS NULL
        AND created_at = (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'demo_seeded_at') ORDER BY id`).pluck(),
      presence: db.prepare(`UPDATE devices SET fw = coalesce(@fw, fw), battery = coalesce(@battery, battery),
        rssi = coalesce(@rssi, rssi), last_seen = @lastSeen WHERE id = @id`),
      siteCount: db.prepare('SELECT count(*) AS n FROM sites').pluck(),
      revoke: db.prepare('UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      setSecret: db.prepare('UPDATE devices SET secret_hash = ?, radio_key = ? WHERE id = ?'),
    };
  }

  allSites(): Site[] {
    return (this.db.prepare('SELECT * FROM sites ORDER BY id').all() as SiteRow[]).map(siteFromRow);
  }

  allDevices(): DeviceRecord[] {
    return (this.db.prepare('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]).map(deviceFromRow);
  }

  siteCount(): number {
    return this.stmts.siteCount.get() as number;
  }

  insertSite(site: Site, createdAt: number): void {
    this.stmts.insertSite.run({ ...site, createdAt });
  }

  insertDevice(device: Pick<DeviceRecord, 'id' | 'siteId' | 'type' | 'secretHash' | 'radioKey' | 'createdAt'>): void {
    this.stmts.insertDevice.run(device);
  }

  demoDevicesWithoutRadioKey(): string[] {
    return this.stmts.demoWithoutRadioKey.all() as string[];
  }

  setRadioKey(id: string, radioKey: Buffer): void {
    this.stmts.setRadioKey.run(radioKey, id);
  }

  revoke(id: string, at: number): void {
    this.stmts.revoke.run(at, id);
  }

  setSecret(id: string, secretHash: string, radioKey: Buffer): void {
    this.stmts.setSecret.run(secretHash, radioKey, id);
  }

  savePresence(p: { id: string; fw: string | null; battery: number | null; rssi: number | null; lastSeen: number | null }): void {
    this.stmts.presence.run(p);
  }
}
