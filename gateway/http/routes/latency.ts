import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import type { LatencyQuery } from '../../metrics/latency-query.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { validate } from '../errors.ts';

export interface LatencyRoutesDeps {
  auth: AuthDeps;
  latency: LatencyQuery;
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** Past the default retention InfluxDB has nothing more to give. */
const MAX_WINDOW_MS = 30 * UNIT_MS.d;

const LatencyParams = z.strictObject({
  window: z.string()
    .regex(/^[1-9]\d{0,6}[smhd]$/, 'a duration such as 15m, 1h or 7d')
    .default('1h')
    .transform((label) => ({ label, ms: Number(label.slice(0, -1)) * UNIT_MS[label.slice(-1) as keyof typeof UNIT_MS] }))
    .refine(({ ms }) => ms <= MAX_WINDOW_MS, 'at most 30d'),
  by: z.enum(['site_kind', 'district']).optional(),
});

export const latencyRoutes: FastifyPluginAsync<LatencyRoutesDeps> = async (app, { auth, latency }) => {
  // p50/p95/p99 of each alert stage over the window: from InfluxDB when it answers, else from memory (`source`).
  app.get('/api/latency', { preHandler: requireRole(auth, 'viewer') }, async (req) => {
    const { window, by } = validate(LatencyParams, req.query, 'query');
    return { window: window.label, ...(await latency.summary({ windowMs: window.ms, by: by ?? null })) };
  });
};
