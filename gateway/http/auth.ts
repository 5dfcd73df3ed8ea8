// Bearer-token auth with three roles, each including the ones below it:
// viewer (sees), dispatcher (acts on alerts), admin (also manages devices).
import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { hashToken } from '../registry/secrets.ts';
import { ROLES, type Role, type TokenRepo } from '../store/token-repo.ts';
import type { AuthLimiter } from '../broker/auth-limiter.ts';
import { HttpError } from './errors.ts';

export interface Principal {
  name: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

export interface AuthDeps {
  tokens: TokenRepo;
  adminToken: string;
  now: () => number;
  /** Failed token checks per address: past the limit, 429 before any check. */
  limiter: AuthLimiter;
}

function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(Buffer.from(hashToken(a), 'hex'), Buffer.from(hashToken(b), 'hex'));
}

export function principalFor(deps: AuthDeps, authorization: string | undefined): Principal {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (!match) throw new HttpError(401, 'UNAUTHENTICATED', 'an Authorization: Bearer <token> header is required');
  const token = match[1]!;
  if (sameSecret(token, deps.adminToken)) return { name: 'bootstrap-admin', role: 'admin' };
  const record = deps.tokens.lookup(token);
  if (!record || record.revokedAt !== null) throw new HttpError(401, 'BAD_TOKEN', 'unknown or revoked token');
  if (record.expiresAt !== null && record.expiresAt <= deps.now()) throw new HttpError(401, 'TOKEN_EXPIRED', 'token expired');
  return { name: record.name, role: record.role };
}

/**
 * preHandler: authenticates the request and demands at least `role`. A valid
 * token always gets in, whatever its address did: one stale script behind a
 * control room's NAT must not lock every dispatcher out. A token check is a
 * SHA-256 and an index lookup, so checking first costs nothing worth saving;
 * past the limit, a bad token gets 429 instead of 401.
 */
export function requireRole(deps: AuthDeps, role: Role) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    let principal: Principal;
    try {
      principal = principalFor(deps, req.headers.authorization);
    } catch (err) {
      if (deps.limiter.limited(req.ip, undefined)) {
        reply.header('retry-after', '60');
        throw new HttpError(429, 'TOO_MANY_AUTH_FAILURES', 'too many failed token checks from this address: try again in a minute');
      }
      deps.limiter.failure(req.ip, undefined);
      throw err;
    }
    if (ROLES.indexOf(principal.role) < ROLES.indexOf(role)) {
      throw new HttpError(403, 'FORBIDDEN', `this needs the ${role} role; the token has ${principal.role}`);
    }
    req.principal = principal;
  };
}
