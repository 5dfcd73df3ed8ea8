import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { District, MAX_IMPORT_BYTES, parseSitesCsv, parseSitesJson, Site, SiteKind } from '../../../protocol/index.ts';
import type { AuditRepo } from '../../store/audit-repo.ts';
import type { CommitQueue } from '../../store/commit-queue.ts';
import type { Registry } from '../../registry/registry.ts';
import { RegistryError } from '../../registry/registry.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { HttpError, validate } from '../errors.ts';
import { auditHomeReads, siteView, type HomeReadAudit } from '../personal-data.ts';

export interface SiteRoutesDeps {
  auth: AuthDeps;
  homeAudit: HomeReadAudit;
  registry: Registry;
  audit: AuditRepo;
  commits: CommitQueue;
}

const ListQuery = z.strictObject({ kind: SiteKind.optional(), district: District.optional() });
const ImportQuery = z.strictObject({ existing: z.enum(['skip', 'fail']).default('fail') });

export const siteRoutes: FastifyPluginAsync<SiteRoutesDeps> = async (app, deps) => {
  const { auth, registry } = deps;
  app.get('/api/sites', { preHandler: requireRole(auth, 'viewer') }, async (req) => {
    const q = validate(ListQuery, req.query, 'query');
    const sites = [...registry.allSites()].filter((s) => (!q.kind || s.kind === q.kind) && (!q.district || s.district === q.district));
    auditHomeReads(deps.homeAudit, req, sites, 'homes.read.sites');
    const items = sites.map((s) => siteView(s, req.principal!.role));
    return { items, total: items.length };
  });

  // CSV as text; JSON goes through fastify's own parser. Scoped to this plugin.
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: MAX_IMPORT_BYTES }, (_req, body, done) => done(null, body));

  app.post('/api/sites/import', { preHandler: requireRole(auth, 'admin'), bodyLimit: MAX_IMPORT_BYTES }, async (req, reply) => {
    const q = validate(ImportQuery, req.query, 'query');
    const parsed = typeof req.body === 'string' ? parseSitesCsv(req.body) : parseSitesJson(req.body);
    if (!parsed.ok) {
      const first = parsed.problems[0]!;
      return reply.code(400).send({
        statusCode: 400, error: 'INVALID_IMPORT', message: `row ${first.row}: ${first.message} (${parsed.problems.length} problem(s); nothing imported)`,
        ...(first.field ? { field: first.field } : {}), problems: parsed.problems,
      });
    }
    try {
      const { added, skipped } = await registry.addSites(parsed.sites, q.existing);
      const by = req.principal!.name;
      await deps.commits.write(() => deps.audit.record(auth.now(), by, 'sites.import', null, { added: added.length, skipped: skipped.length }));
      req.log.info({ added: added.length, skipped: skipped.length, by }, 'sites imported');
      return reply.code(201).send({ added: added.length, skipped });
    } catch (err) {
      if (err instanceof RegistryError) throw new HttpError(409, err.code, err.message, err.field);
      throw err;
    }
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
