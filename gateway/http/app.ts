// The HTTP application, built from its dependencies and not yet listening,
// so tests drive it with app.inject and the composition root calls listen.
import rateLimit from '@fastify/rate-limit';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { TlsOptions } from 'node:tls';
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
import type { DeviceControl } from '../supervision/device-control.ts';
import type { TroubleBook } from '../supervision/trouble-book.ts';
import type { AuthDeps } from './auth.ts';
import type { FeedHub } from './feed-hub.ts';
import type { HomeReadAudit } from './personal-data.ts';
import { hashToken } from '../registry/secrets.ts';
import { LogThrottle } from '../log-throttle.ts';
import { HttpError, installErrorHandler } from './errors.ts';
import { installSecurityHeaders } from './security-headers.ts';
import { alertRoutes } from './routes/alerts.ts';
import { auditRoutes } from './routes/audit.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { deviceRoutes } from './routes/devices.ts';
import { feedRoutes } from './routes/feed.ts';
import { healthRoutes, type HealthReport } from './routes/health.ts';
import { latencyRoutes } from './routes/latency.ts';
import { policeStatusRoutes } from './routes/police-status.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { securityRoutes, type SecurityReport } from './routes/security.ts';
import { siteRoutes } from './routes/sites.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { troubleRoutes } from './routes/troubles.ts';

export interface AppDeps {
  auth: AuthDeps;
  registry: Registry;
  alerts: AlertRepo;
  audit: AuditRepo;
  tokens: TokenRepo;
  commits: CommitQueue;
  /** Where reads of home details are audited (REST routes and the feed). */
  homeAudit: HomeReadAudit;
  lifecycle: AlertLifecycle;
  routes: RouteTable;
  counters: Counters;
  isOnline: (deviceId: string) => boolean;
  devices: DeviceControl;
  troubles: TroubleBook;
  health: () => HealthReport;
  security: () => SecurityReport;
  latency: LatencyQuery;
  /** The live feed's fan-out; started and stopped by its owner (before the server closes: feeds never end by themselves). */
  feed: FeedHub;
  dashboard: Config['dashboard'];
  log: Logger;
  /** Requests per token (or, without one, per client address) and minute, all routes together. */
  rateLimitPerMinute: number;
  /** Fastify's trustProxy: true, or the proxies' addresses. */
  trustProxy: boolean | string;
  /** Given: the API and dashboard are served over HTTPS only. */
  https?: TlsOptions;
}

/** Request bodies are small JSON documents; anything larger is refused before it is read. */
const BODY_LIMIT_BYTES = 256 * 1024;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const options: FastifyServerOptions & { https?: TlsOptions } = {
    loggerInstance: deps.log as FastifyBaseLogger, bodyLimit: BODY_LIMIT_BYTES, logController: new LogController({ disableRequestLogging: true }),
    // Behind a reverse proxy the client's address is in X-Forwarded-For; without this every limit would key on the proxy.
    trustProxy: deps.trustProxy,
    ...(deps.https ? { https: deps.https } : {}),
  };
  // One instance type for both: routes never depend on the transport.
  const app = Fastify(options) as unknown as FastifyInstance;
  app.decorateRequest('principal', null);
  installErrorHandler(app);
  installSecurityHeaders(app);
  // A blunt cap against scraping and floods: per token when the request
  // carries one (dispatchers behind one NAT do not share a budget), per
  // address otherwise. Bad tokens have their own, tighter limit (auth.ts).
  const throttle = new LogThrottle(deps.log);
  await app.register(rateLimit, {
    max: deps.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: (req) => (req.headers.authorization ? `token:${hashToken(req.headers.authorization)}` : `ip:${req.ip}`),
    onExceeded: (req, key) => {
      deps.counters.inc('http_rate_limited_total');
      throttle.warn(`rate:${key}`, { ip: req.ip, url: req.url, code: 'HTTP_RATE_LIMITED' }, 'HTTP rate limit reached');
    },
    // Thrown by the plugin, so it goes through the JSON error handler like every other error.
    errorResponseBuilder: (_req, ctx) => new HttpError(ctx.statusCode, 'RATE_LIMITED', `more than ${ctx.max} requests a minute: retry in ${ctx.after}`),
  });
  await app.register(healthRoutes, { health: deps.health });
  await app.register(metricsRoutes, deps);
  await app.register(securityRoutes, deps);
  await app.register(deviceRoutes, deps);
  await app.register(siteRoutes, deps);
  await app.register(alertRoutes, deps);
  await app.register(tokenRoutes, deps);
  await app.register(troubleRoutes, deps);
  await app.register(policeStatusRoutes, { ...deps, now: deps.auth.now });
  await app.register(latencyRoutes, deps);
  await app.register(auditRoutes, deps);
  await app.register(feedRoutes, deps);
  await app.register(dashboardRoutes, deps);
  return app;
}
