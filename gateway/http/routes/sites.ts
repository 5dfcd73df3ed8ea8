import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { District, Site, SiteKind } from '../../../protocol/index.ts';
import type { Registry } from '../../registry/registry.ts';
import { RegistryError } from '../../registry/registry.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { HttpError, validate } from '../errors.ts';
import { auditHomeReads, siteView, type HomeReadAudit } from '../personal-data.ts';

export interface SiteRoutesDeps extends Omit<HomeReadAudit, 'now'> {
  auth: AuthDeps;
  registry: Registry;
}

const ListQuery = z.strictObject({ kind: SiteKind.optional(), district: District.optional() });

export const siteRoutes: FastifyPluginAsync<SiteRoutesDeps> = async (app, deps) => {
  const { auth, registry } = deps;
  app.get('/api/sites', { preHandler: requireRole(auth, 'viewer') }, async (req) => {
    const q = validate(ListQuery, req.query, 'query');
    const sites = [...registry.allSites()].filter((s) => (!q.kind || s.kind === q.kind) && (!q.district || s.district === q.district));
    auditHomeReads({ ...deps, now: auth.now }, req, sites, 'homes.read.sites');
    const items = sites.map((s) => siteView(s, req.principal!.role));
    return { items, total: items.length };
  });

  app.post('/api/sites', { preHandler: requireRole(auth, 'admin') }, async (req, reply) => {
    const site = validate(Site, req.body, 'body');
    try {
      return reply.code(201).send(await registry.addSite(site));
    } catch (err) {
      if (err instanceof RegistryError) throw new HttpError(409, err.code, err.message, err.field);
      throw err;
    }
  });
};
