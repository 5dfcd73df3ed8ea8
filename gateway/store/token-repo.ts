// Operator API tokens, stored only as hashes. Only this module writes their SQL.
import { randomBytes } from 'node:crypto';
import { hashToken } from '../registry/secrets.ts';
import type { Db } from './database.ts';

export const ROLES = ['viewer', 'dispatcher', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface TokenRecord {
  id: string;
  role: Role;
  name: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

const COLUMNS = 'id, role, name, created_at AS createdAt, expires_at AS expiresAt, revoked_at AS revokedAt';

export class TokenRepo {
  private readonly stmts;

  constructor(db: Db) {
    this.stmts = {
      insert: db.prepare('INSERT INTO tokens (id, hash, role, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)'),
      byHash: db.prepare(`SELECT ${COLUMNS} FROM tokens WHERE hash = ?`),
      all: db.prepare(`SELECT ${COLUMNS} FROM tokens ORDER BY created_at`),
      revoke: db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
    };
  }

  /** Returns the token itself: shown once, never stored. */
  create(role: Role, name: string, createdAt: number, expiresAt: number | null): { token: string; record: TokenRecord } {
    const token = `sht_${randomBytes(24).toString('base64url')}`;
    const id = `tok-${randomBytes(6).toString('hex')}`;
    this.stmts.insert.run(id, hashToken(token), role, name, createdAt, expiresAt);
    return { token, record: { id, role, name, createdAt, expiresAt, revokedAt: null } };
  }

  lookup(token: string): TokenRecord | undefined {
    return this.stmts.byHash.get(hashToken(token)) as TokenRecord | undefined;
  }

  /** Every token ever issued, revoked and expired ones too (never their hashes). */
  list(): TokenRecord[] {
    return this.stmts.all.all() as TokenRecord[];
  }

  /** False if there is no such token or it was already revoked. */
  revoke(id: string, at: number): boolean {
    return this.stmts.revoke.run(at, id).changes === 1;
  }
}
