import type { FastifyPluginAsync } from 'fastify';

/** What /healthz reports; `status` is "unhealthy" when alerts cannot be stored. */
export interface HealthReport {
  status: 'ok' | 'degraded' | 'unhealthy';
  [part: string]: unknown;
}

export const healthRoutes: FastifyPluginAsync<{ health: () => HealthReport }> = async (app, { health }) => {
  // Unauthenticated on purpose: load balancers and watchdogs poll it. It reveals no personal data.
  app.get('/healthz', async (_req, reply) => {
    const report = health();
    return reply.code(report.status === 'unhealthy' ? 503 : 200).send(report);
  });
};
