import type { FastifyPluginAsync } from 'fastify';
import { FEED_PATH } from '../../../protocol/index.ts';
import { principalFor, requireRole, type AuthDeps } from '../auth.ts';
import { HttpError } from '../errors.ts';
import type { FeedHub } from '../feed-hub.ts';

export interface FeedRoutesDeps {
  auth: AuthDeps;
  feed: FeedHub;
}

export const feedRoutes: FastifyPluginAsync<FeedRoutesDeps> = async (app, { auth, feed }) => {
  app.get(FEED_PATH, { preHandler: requireRole(auth, 'viewer') }, async (req, reply) => {
    // Refused before the response is taken over, so the client gets a JSON error it can show.
    if (feed.full(req.principal!)) {
      reply.header('retry-after', '10');
      throw new HttpError(503, 'FEED_FULL', 'too many live feeds are connected: try again shortly');
    }
    reply.hijack();
    try {
      const authorization = req.headers.authorization;
      const principal = req.principal!;
      feed.attach(principal, reply.raw, () => {
        try {
          return principalFor(auth, authorization).role === principal.role;
        } catch {
          return false;
        }
      });
    } catch (err) {
      // Taken over: fastify's error handler can no longer answer, so close, and the client retries.
      req.log.error({ err }, 'live feed could not start');
      reply.raw.destroy();
    }
  });
};
