import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AuditRepo } from '../../store/audit-repo.ts';
import type { CommitQueue } from '../../store/commit-queue.ts';
import { ROLES, type TokenRecord, type TokenRepo } from '../../store/token-repo.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { HttpError, validate } from '../errors.ts';
import { isoTime as iso } from '../../clock.ts';

export interface TokenRoutesDeps {
  auth: AuthDeps;
  tokens: TokenRepo;
  audit: AuditRepo;
  commits: CommitQueue;
}

const CreateBody = z.strictObject({
  role: z.enum(ROLES),
  name: z.string().min(1).max(100),
  expiresInSec: z.int().min(60).max(366 * 86_400).optional(),
});

const IdParams = z.strictObject({ id: z.string().regex(/^tok-[0-9a-f]{12}$/, 'a token id such as tok-0123456789ab') });

const tokenView = (t: TokenRecord) => ({ ...t, createdAt: iso(t.createdAt), expiresAt: iso(t.expiresAt), revokedAt: iso(t.revokedAt) });

export const tokenRoutes: FastifyPluginAsync<TokenRoutesDeps> = async (app, { auth, tokens, audit, commits }) => {
  app.post('/api/tokens', { preHandler: requireRole(auth, 'admin') }, async (req, reply) => {
    const body = validate(CreateBody, req.body, 'body');
    const now = auth.now();
    const expiresAt = body.expiresInSec ? now + body.expiresInSec * 1000 : null;
    const { token, record } = await commits.write(() => {
      const created = tokens.create(body.role, body.name, now, expiresAt);
      audit.record(now, req.principal!.name, 'token.create', created.record.id, { role: body.role, name: body.name });
      return created;
    });
    return reply.code(201).send({ ...tokenView(record), token });
  });

  app.get('/api/tokens', { preHandler: requireRole(auth, 'admin') }, async () => {
    const items = tokens.list().map(tokenView);
    return { items, total: items.length };
  });

  // Takes effect on the next request: every request looks its token up.
  app.delete('/api/tokens/:id', { preHandler: requireRole(auth, 'admin') }, async (req) => {
    const { id } = validate(IdParams, req.params, 'params');
    const now = auth.now();
    const revoked = await commits.write(() => {
      const done = tokens.revoke(id, now);
      if (done) audit.record(now, req.principal!.name, 'token.revoke', id, {});
      return done;
    });
    if (!revoked) throw new HttpError(404, 'TOKEN_NOT_FOUND', `no active token ${id}`, 'id');
    req.log.info({ tokenId: id, by: req.principal!.name }, 'API token revoked');
    return tokenView(tokens.list().find((t) => t.id === id)!);
  });
};
