import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { DeviceId, DeviceType, SiteId } from '../../../protocol/index.ts';
import type { Registry } from '../../registry/registry.ts';
import { RegistryError } from '../../registry/registry.ts';
import type { AuditRepo } from '../../store/audit-repo.ts';
import type { CommitQueue } from '../../store/commit-queue.ts';
import type { DeviceRecord } from '../../store/registry-repo.ts';
import type { DeviceControl } from '../../supervision/device-control.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { HttpError, validate } from '../errors.ts';
import { auditHomeReads, siteView, type HomeReadAudit } from '../personal-data.ts';
import { deviceView } from '../views.ts';

export interface DeviceRoutesDeps {
  auth: AuthDeps;
  homeAudit: HomeReadAudit;
  registry: Registry;
  audit: AuditRepo;
  commits: CommitQueue;
  isOnline: (deviceId: string) => boolean;
  devices: Pick<DeviceControl, 'provisioned' | 'revoke' | 'rotateSecret' | 'supervision'>;
}

const ProvisionBody = z.strictObject({ siteId: SiteId, type: DeviceType, id: DeviceId.optional() });
const ListQuery = z.strictObject({ siteId: SiteId.optional(), type: DeviceType.optional() });
const IdParams = z.strictObject({ id: DeviceId });

export const deviceRoutes: FastifyPluginAsync<DeviceRoutesDeps> = async (app, deps) => {
  const { auth, registry, audit, commits, isOnline, devices } = deps;
  const view = (d: DeviceRecord) => ({ ...deviceView(d, isOnline(d.id)), supervision: devices.supervision(d.id) });
  const audited = (req: FastifyRequest, action: string, deviceId: string, detail: Record<string, unknown> | null) =>
    commits.write(() => audit.record(Date.now(), req.principal!.name, action, deviceId, detail));

  app.post('/api/devices', { preHandler: requireRole(auth, 'admin') }, async (req, reply) => {
    const body = validate(ProvisionBody, req.body, 'body');
    try {
      const { device, secret } = await registry.provision(body);
      await audited(req, 'device.provision', device.id, { siteId: device.siteId, type: device.type });
      req.log.info({ deviceId: device.id, siteId: device.siteId, type: device.type, by: req.principal!.name }, 'device provisioned');
      devices.provisioned(device);
      return reply.code(201).send({ ...view(device), secret });
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
      items.push(view(d));
    }
    return { items, total: items.length };
  });

  app.get('/api/devices/:id', { preHandler: requireRole(auth, 'viewer') }, async (req) => {
    const { id } = validate(IdParams, req.params, 'params');
    const device = registry.device(id);
    if (!device) throw new HttpError(404, 'DEVICE_NOT_FOUND', `no device ${id}`, 'id');
    const site = registry.site(device.siteId);
    auditHomeReads(deps.homeAudit, req, [site], 'home.read.device');
    return { ...view(device), site: site ? siteView(site, req.principal!.role) : null };
  });

  // Revoking: the device's sessions are closed now and it can never connect or be heard by radio again.
  app.delete('/api/devices/:id', { preHandler: requireRole(auth, 'admin') }, async (req) => {
    const { id } = validate(IdParams, req.params, 'params');
    const revoked = await devices.revoke(id);
    if (!revoked) throw new HttpError(404, 'DEVICE_NOT_FOUND', `no device ${id}`, 'id');
    if (!revoked.already) await audited(req, 'device.revoke', id, { kicked: revoked.kicked });
    return view(revoked.device);
  });

  app.post('/api/devices/:id/rotate-secret', { preHandler: requireRole(auth, 'admin') }, async (req) => {
    const { id } = validate(IdParams, req.params, 'params');
    const device = registry.device(id);
    if (!device) throw new HttpError(404, 'DEVICE_NOT_FOUND', `no device ${id}`, 'id');
    if (device.revokedAt !== null) throw new HttpError(409, 'DEVICE_REVOKED', `device ${id} is revoked: provision a new one`, 'id');
    const rotated = await devices.rotateSecret(id);
    if (!rotated) throw new HttpError(409, 'DEVICE_REVOKED', `device ${id} is revoked: provision a new one`, 'id');
    await audited(req, 'device.rotate-secret', id, { kicked: rotated.kicked });
    return { ...view(rotated.device), secret: rotated.secret };
  });
};
