import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { AuditRepo } from '../../store/audit-repo.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { validate } from '../errors.ts';

export interface AuditRoutesDeps {
  auth: AuthDeps;
  audit: AuditRepo;
}

const AuditQuery = z.strictObject({
  /** An alert, device or site id: its entries, oldest first. Without it: the latest entries, newest first. */
  target: z.string().min(1).max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const auditRoutes: FastifyPluginAsync<AuditRoutesDeps> = async (app, { auth, audit }) => {
  // Dispatcher and up: resolve notes and the trail of who read which home are not for a wall screen.
  app.get('/api/audit', { preHandler: requireRole(auth, 'dispatcher') }, async (req) => {
    const q = validate(AuditQuery, req.query, 'query');
    const entries = q.target ? audit.forTarget(q.target).slice(-q.limit) : audit.recent(q.limit);
    const items = entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() }));
    return { items, total: items.length };
  });
};
