import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { TroubleBook } from '../../supervision/trouble-book.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { validate } from '../errors.ts';

export interface TroubleRoutesDeps {
  auth: AuthDeps;
  troubles: Pick<TroubleBook, 'open' | 'recent'>;
}

const ListQuery = z.strictObject({ state: z.enum(['open', 'all']).default('open') });

export const troubleRoutes: FastifyPluginAsync<TroubleRoutesDeps> = async (app, { auth, troubles }) => {
  // open: most severe first, then oldest; all: the latest entries, open or cleared, newest first.
  app.get('/api/troubles', { preHandler: requireRole(auth, 'viewer') }, async (req) => {
    const q = validate(ListQuery, req.query, 'query');
    return { items: q.state === 'open' ? troubles.open() : troubles.recent() };
  });
};
