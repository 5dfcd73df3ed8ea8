// The HTTP application, built from its dependencies and not yet listening,
// so tests drive it with app.inject and the composition root calls listen.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RouteTable } from '../dispatch/route-table.ts';
import type { Counters } from '../metrics/counters.ts';
import type { LatencyQuery } from '../metrics/latency-query.ts';
import type { AlertLifecycle } from '../pipeline/alert-lifecycle.ts';
import type { Registry } from '../registry/registry.ts';
import type { AlertRepo } from '../store/alert-repo.ts';
import type { AuditRepo } from '../store/audit-repo.ts';
import type { CommitQueue } from '../store/commit-queue.ts';
import type { TokenRepo } from '../store/token-repo.ts';
import type { Config } from '../config.ts';
import type { AuthDeps } from './auth.ts';
import type { FeedHub } from './feed-hub.ts';
import { installErrorHandler } from './errors.ts';
import { installSecurityHeaders } from './security-headers.ts';
import { alertRoutes } from './routes/alerts.ts';
import { auditRoutes } from './routes/audit.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { deviceRoutes } from './routes/devices.ts';
import { feedRoutes } from './routes/feed.ts';
import { healthRoutes, type HealthReport } from './routes/health.ts';
import { latencyRoutes } from './routes/latency.ts';
import { policeStatusRoutes } from './routes/police-status.ts';
import { siteRoutes } from './routes/sites.ts';
import { tokenRoutes } from './routes/tokens.ts';

export interface AppDeps {
  auth: AuthDeps;
  registry: Registry;
  alerts: AlertRepo;
  audit: AuditRepo;
  tokens: TokenRepo;
  commits: CommitQueue;
  lifecycle: AlertLifecycle;
  routes: RouteTable;
  counters: Counters;
  isOnline: (deviceId: string) => boolean;
  health: () => HealthReport;
  latency: LatencyQuery;
  /** The live feed's fan-out; started and stopped by its owner (before the server closes: feeds never end by themselves). */
  feed: FeedHub;
  dashboard: Config['dashboard'];
  log: Logger;
}

/** Request bodies are small JSON documents; anything larger is refused before it is read. */
const BODY_LIMIT_BYTES = 256 * 1024;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: deps.log as FastifyBaseLogger, bodyLimit: BODY_LIMIT_BYTES, logController: new LogController({ disableRequestLogging: true }) });
  app.decorateRequest('principal', null);
  installErrorHandler(app);
  installSecurityHeaders(app);
  await app.register(healthRoutes, { health: deps.health });
  await app.register(deviceRoutes, deps);
  await app.register(siteRoutes, deps);
  await app.register(alertRoutes, deps);
  await app.register(tokenRoutes, deps);
  await app.register(policeStatusRoutes, { ...deps, now: deps.auth.now });
  await app.register(latencyRoutes, deps);
  await app.register(auditRoutes, deps);
  await app.register(feedRoutes, deps);
  await app.register(dashboardRoutes, deps);
  return app;
}
