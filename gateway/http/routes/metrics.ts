// GET /metrics in the Prometheus text format (INTERFACES §5): every counter
// the gateway keeps. Unauthenticated like /healthz, for scrapers; counters
// carry reasons and channels, never personal data.
import type { FastifyPluginAsync } from 'fastify';
import type { Counters } from '../../metrics/counters.ts';

export function prometheusText(snapshot: Record<string, number>): string {
  const lines: string[] = [];
  let current = '';
  for (const [series, value] of Object.entries(snapshot)) {
    const name = series.split('{')[0]!;
    if (name !== current) {
      lines.push(`# TYPE safehaven_${name} counter`);
      current = name;
    }
    lines.push(`safehaven_${series} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

export const metricsRoutes: FastifyPluginAsync<{ counters: Counters }> = async (app, { counters }) => {
  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(prometheusText(counters.snapshot())));
};
