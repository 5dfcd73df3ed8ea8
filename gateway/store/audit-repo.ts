// Who did what and when: every operator action and every read of a home's
// personal details. Only this module writes the audit table.
import type { Db } from './database.ts';

export interface AuditEntry {
  at: number;
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown> | null;
}

export class AuditRepo {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare('INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)'),
      recent: db.prepare('SELECT at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?'),
      forTarget: db.prepare('SELECT at, actor, action, target, detail FROM audit WHERE target = ? ORDER BY id'),
    };
  }

  record(at: number, actor: string, action: string, target: string | null, detail: Record<string, unknown> | null): void {
    this.stmts.insert.run(at, actor, action, target, detail ? JSON.stringify(detail) : null);
  }

  recent(limit: number): AuditEntry[] {
    return this.parse(this.stmts.recent.all(limit));
  }

  forTarget(target: string): AuditEntry[] {
    return this.parse(this.stmts.forTarget.all(target));
  }

  private parse(rows: unknown[]): AuditEntry[] {
    return (rows as Array<Omit<AuditEntry, 'detail'> & { detail: string | null }>).map((r) => ({
      ...r,
      detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null,
    }));
  }
}
