import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { ALERT_ID_PATTERN, ResolveOutcome } from '../../../protocol/index.ts';
import { AlertNotFoundError, type AlertLifecycle } from '../../pipeline/alert-lifecycle.ts';
import type { Registry } from '../../registry/registry.ts';
import type { AlertRepo } from '../../store/alert-repo.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { HttpError, validate } from '../errors.ts';
import { auditHomeReads, type HomeReadAudit } from '../personal-data.ts';
import { alertView, deliveryView, timelineView } from '../views.ts';

export interface AlertRoutesDeps {
  auth: AuthDeps;
  homeAudit: HomeReadAudit;
  alerts: AlertRepo;
  registry: Registry;
  lifecycle: AlertLifecycle;
}

const ListQuery = z.strictObject({
  state: z.enum(['open', 'all']).default('open'),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});
const IdParams = z.strictObject({ id: z.string().regex(ALERT_ID_PATTERN, 'an alert id such as al-0123456789abcdef0123') });
const AckBody = z.strictObject({ note: z.string().max(1000).optional() });
const ResolveBody = z.strictObject({ outcome: ResolveOutcome, note: z.string().max(1000).optional() })
  .refine((b) => b.outcome !== 'other' || (b.note?.trim().length ?? 0) > 0, { message: 'a note is required when the outcome is "other"', path: ['note'] });

export const alertRoutes: FastifyPluginAsync<AlertRoutesDeps> = async (app, deps) => {
  const { auth, alerts, registry, lifecycle } = deps;
  const notFound = (err: unknown, id: string): never => {
    if (err instanceof AlertNotFoundError) throw new HttpError(404, err.code, `no alert ${id}`, 'id');
    throw err;
  };

  app.get('/api/alerts', { preHandler: requireRole(auth, 'viewer') }, async (req) => {
    const q = validate(ListQuery, req.query, 'query');
    const list = alerts.list({ open: q.state === 'open', limit: q.limit });
    auditHomeReads(deps.homeAudit, req, list.map((a) => registry.site(a.siteId)), 'homes.read.alerts');
    const items = list.map((a) => alertView(a, registry.site(a.siteId), req.principal!.role));
    return { items, total: items.length };
  });

  app.get('/api/alerts/:id', { preHandler: requireRole(auth, 'viewer') }, async (req) => {
    const { id } = validate(IdParams, req.params, 'params');
    const alert = alerts.get(id);
    if (!alert) throw new HttpError(404, 'ALERT_NOT_FOUND', `no alert ${id}`, 'id');
    auditHomeReads(deps.homeAudit, req, [registry.site(alert.siteId)], 'home.read.alert');
    const device = registry.device(alert.deviceId);
    return {
      ...alertView(alert, registry.site(alert.siteId), req.principal!.role),
      device: device ? { id: device.id, type: device.type, battery: device.battery, rssi: device.rssi, firmware: device.fw } : null,
      timeline: timelineView(alerts.timeline(id)),
      deliveries: deliveryView(alerts.outboxFor(id)),
    };
  });

  app.post('/api/alerts/:id/ack', { preHandler: requireRole(auth, 'dispatcher') }, async (req) => {
    const { id } = validate(IdParams, req.params, 'params');
    validate(AckBody, req.body, 'body');
    const alert = await lifecycle.acknowledge(id, req.principal!.name).catch((err) => notFound(err, id));
    return alertView(alert, registry.site(alert.siteId), req.principal!.role);
  });

  app.post('/api/alerts/:id/resolve', { preHandler: requireRole(auth, 'dispatcher') }, async (req) => {
    const { id } = validate(IdParams, req.params, 'params');
    const body = validate(ResolveBody, req.body, 'body');
    const alert = await lifecycle.resolve(id, req.principal!.name, body.outcome, body.note ?? null).catch((err) => notFound(err, id));
    return alertView(alert, registry.site(alert.siteId), req.principal!.role);
  });
};
