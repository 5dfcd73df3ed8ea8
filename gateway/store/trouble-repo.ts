// Trouble entries as rows. Only this module writes their SQL.
import type { TroubleKind } from '../../protocol/index.ts';
import type { Db } from './database.ts';

export interface TroubleRecord {
  id: string;
  kind: TroubleKind;
  /** What the trouble is about, unique per kind among open troubles: a device id, a site id or `port:<name>`. */
  subject: string;
  deviceId: string | null;
  siteId: string | null;
  detail: string;
  raisedAt: number;
  clearedAt: number | null;
}

interface TroubleRow {
  id: string; kind: TroubleKind; subject: string; device_id: string | null; site_id: string | null;
  detail: string; raised_at: number; cleared_at: number | null;
}

const fromRow = (r: TroubleRow): TroubleRecord => ({
  id: r.id, kind: r.kind, subject: r.subject, deviceId: r.device_id, siteId: r.site_id, detail: r.detail, raisedAt: r.raised_at, clearedAt: r.cleared_at,
});

export class TroubleRepo {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      // OR IGNORE: a raise replayed after a crash between memory and disk must not fail the batch.
      insert: db.prepare(`INSERT OR IGNORE INTO troubles (id, kind, subject, device_id, site_id, detail, raised_at)
        VALUES (@id, @kind, @subject, @deviceId, @siteId, @detail, @raisedAt)`),
      clear: db.prepare('UPDATE troubles SET cleared_at = ?, clear_detail = ? WHERE id = ? AND cleared_at IS NULL'),
      open: db.prepare('SELECT * FROM troubles WHERE cleared_at IS NULL ORDER BY raised_at'),
      recent: db.prepare('SELECT * FROM troubles ORDER BY raised_at DESC, id LIMIT ?'),
    };
  }

  insert(t: TroubleRecord): void {
    this.stmts.insert.run(t);
  }

  clear(id: string, at: number, detail: string): void {
    this.stmts.clear.run(at, detail, id);
  }

  open(): TroubleRecord[] {
    return (this.stmts.open.all() as TroubleRow[]).map(fromRow);
  }

  recent(limit: number): TroubleRecord[] {
    return (this.stmts.recent.all(limit) as TroubleRow[]).map(fromRow);
  }
}
