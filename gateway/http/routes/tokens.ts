import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AuditRepo } from '../../store/audit-repo.ts';
import type { CommitQueue } from '../../store/commit-queue.ts';
import { ROLES, type TokenRepo } from '../../store/token-repo.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { validate } from '../errors.ts';

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
    return reply.code(201).send({ ...record, createdAt: new Date(record.createdAt).toISOString(), expiresAt: expiresAt && new Date(expiresAt).toISOString(), token });
  });
};
