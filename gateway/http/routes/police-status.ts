// The police report an alert's progress back to us (accepted, rejected,
// dispatched, arrived, closed). There is no bearer token on the police side:
// the body is signed like our alerts, with the route's shared secret, and a
// station may only report on alerts that were routed to it.
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import {
  MAX_POLICE_STATUS_BYTES, POLICE_CALLBACK_MAX_AGE_MS, PoliceStatusUpdate, SIGNATURE_HEADER, verifySignature,
} from '../../../protocol/index.ts';
import type { RouteTable } from '../../dispatch/route-table.ts';
import { LogThrottle } from '../../log-throttle.ts';
import type { Counters } from '../../metrics/counters.ts';
import { AlertNotFoundError, type AlertLifecycle } from '../../pipeline/alert-lifecycle.ts';
import type { AlertRepo } from '../../store/alert-repo.ts';
import { HttpError, validate } from '../errors.ts';

export interface PoliceStatusDeps {
  alerts: AlertRepo;
  lifecycle: AlertLifecycle;
  routes: RouteTable;
  counters: Counters;
  now: () => number;
  log: Logger;
  rateLimitPerMinute: number;
}

export const policeStatusRoutes: FastifyPluginAsync<PoliceStatusDeps> = async (app, { alerts, lifecycle, routes, counters, now, log, rateLimitPerMinute }) => {
  const throttle = new LogThrottle(log);
  const refuse = (status: number, code: string, message: string, detail: Record<string, unknown>): never => {
    counters.inc('police_callbacks_refused_total', { reason: code });
    throttle.warn(`police-status:${code}`, { ...detail, code }, `police status callback refused: ${message}`);
    throw new HttpError(status, code, message);
  };

  // The signature covers the exact bytes sent, so this plugin keeps the body as text.
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: MAX_POLICE_STATUS_BYTES }, (_req, body, done) => done(null, body));

  // Signed, and after an outage a station may report on hundreds of alerts at once: a budget of its own, ten times the API's.
  app.post('/api/police/status', { config: { rateLimit: { max: rateLimitPerMinute * 10, timeWindow: 60_000 } } }, async (req) => {
    const raw = typeof req.body === 'string' ? req.body : '';
    const signature = req.headers[SIGNATURE_HEADER] as string | undefined;
    const signers = routes.secrets().filter(({ secret }) => verifySignature(secret, raw, signature));
    if (signers.length === 0) {
      refuse(401, 'BAD_SIGNATURE', `${SIGNATURE_HEADER} must be sha256=<hex HMAC of the body> with the route's shared secret`, { ip: req.ip });
    }
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new HttpError(400, 'INVALID_REQUEST', 'body: not JSON', 'body');
    }
    const update = validate(PoliceStatusUpdate, json, 'body');
    if (Math.abs(now() - Date.parse(update.sentAt)) > POLICE_CALLBACK_MAX_AGE_MS) {
      refuse(401, 'STALE_CALLBACK', `sentAt ${update.sentAt} is more than ${POLICE_CALLBACK_MAX_AGE_MS / 60_000} minutes from the gateway clock: a replay, or a clock to fix`, { alertId: update.alertId });
    }
    const primary = alerts.outboxFor(update.alertId).find((row) => row.target === 'primary');
    if (!primary) throw new HttpError(404, 'ALERT_NOT_FOUND', `no alert ${update.alertId}`, 'alertId');
    const owner = routes.byName(primary.route).name;
    if (!signers.some(({ name }) => name === owner)) {
      refuse(403, 'WRONG_ROUTE', `alert ${update.alertId} was not routed to the endpoint whose secret signed this`, { alertId: update.alertId, ip: req.ip });
    }
    const { alert, changed } = await lifecycle.policeStatus(update).catch((err: unknown) => {
      if (err instanceof AlertNotFoundError) throw new HttpError(404, err.code, `no alert ${update.alertId}`, 'alertId');
      throw err;
    });
    counters.inc('police_callbacks_total', { status: update.status });
    const level = update.status === 'rejected' ? 'warn' : 'info';
    log[level]({ alertId: alert.id, status: update.status, caseId: update.caseId, reason: update.reason, changed, ...(level === 'warn' ? { code: 'POLICE_REJECTED' } : {}) },
      `police report alert ${update.status}`);
    return { alertId: alert.id, state: alert.state, policeStatus: alert.policeStatus, changed };
  });
};
