import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { DeviceId, DeviceType, SiteId } from '../../../protocol/index.ts';
import type { Registry } from '../../registry/registry.ts';
import { RegistryError } from '../../registry/registry.ts';
import type { AuditRepo } from '../../store/audit-repo.ts';
import type { CommitQueue } from '../../store/commit-queue.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { HttpError, validate } from '../errors.ts';
import { deviceView } from '../views.ts';

export interface DeviceRoutesDeps {
  auth: AuthDeps;
  registry: Registry;
  audit: AuditRepo;
  commits: CommitQueue;
  isOnline: (deviceId: string) => boolean;
}

const ProvisionBody = z.strictObject({ siteId: SiteId, type: DeviceType, id: DeviceId.optional() });
const ListQuery = z.strictObject({ siteId: SiteId.optional(), type: DeviceType.optional() });
const IdParams = z.strictObject({ id: DeviceId });

export const deviceRoutes: FastifyPluginAsync<DeviceRoutesDeps> = async (app, deps) => {
  const { auth, registry, audit, commits, isOnline } = deps;

  app.post('/api/devices', { preHandler: requireRole(auth, 'admin') }, async (req, reply) => {
    const body = validate(ProvisionBody, req.body, 'body');
    try {
      const { device, secret } = await registry.provision(body);
      await commits.write(() => audit.record(Date.now(), req.principal!.name, 'device.provision', device.id, { siteId: device.siteId, type: device.type }));
      req.log.info({ deviceId: device.id, siteId: device.siteId, type: device.type, by: req.principal!.name }, 'device provisioned');
      return reply.code(201).send({ ...deviceView(device, false), secret });
    } catch (err) {
      if (err instanceof RegistryError) throw new HttpError(err.code === 'UNKNOWN_SITE' ? 400 : 409, err.code, err.message, err.field);
      throw err;
    }
  });

  app.get('/api/devices', { preHandler: requireRole(auth, 'viewer') }, async (req) => {
    const q = validate(ListQuery, req.query, 'query');
    const items = [];
    for (const d of registry.allDevices()) {
      if ((q.siteId && d.siteId !== q.siteId) || (q.type && d.type !== q.type)) continue;
      items.push(deviceView(d, isOnline(d.id)));
    }
    return { items, total: items.length };
  });

  app.get('/api/devices/:id', { preHandler: requireRole(auth, 'viewer') }, async (req) => {
    const { id } = validate(IdParams, req.params, 'params');
    const device = registry.device(id);
    if (!device) throw new HttpError(404, 'DEVICE_NOT_FOUND', `no device ${id}`, 'id');
    return { ...deviceView(device, isOnline(id)), site: registry.site(device.siteId) ?? null };
  });
};
