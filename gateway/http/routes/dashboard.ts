// The dispatcher dashboard: its page, the bundle `npm run build:dashboard`
// writes to dist/dashboard, the map settings and the optional district
// boundaries. A bad boundary file is an error in the log and an empty map
// layer, never a gateway that does not start.
import type { FastifyPluginAsync } from 'fastify';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { describeIssues, DistrictCollection, MAX_DISTRICTS_FILE_BYTES } from '../../../protocol/index.ts';
import type { Config } from '../../config.ts';
import { requireRole, type AuthDeps } from '../auth.ts';
import { HttpError } from '../errors.ts';

const INDEX = fileURLToPath(new URL('../../../dashboard/index.html', import.meta.url));
export const DASHBOARD_BUILD_DIR = fileURLToPath(new URL('../../../dist/dashboard/', import.meta.url));

const ASSET_NAME = /^[a-z0-9][a-z0-9._-]*\.(js|css|png|svg|map)$/i;
const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.png': 'image/png', '.svg': 'image/svg+xml', '.map': 'application/json',
};

export interface DashboardRoutesDeps {
  auth: AuthDeps;
  dashboard: Config['dashboard'];
  log: Logger;
}

/** The boundary file as JSON text, or why there is none. */
async function loadDistricts(path: string | undefined, log: Logger): Promise<{ json: string } | { missing: string }> {
  if (!path) return { missing: 'no district boundary file is configured (dashboard.districtsFile)' };
  try {
    const size = (await stat(path)).size;
    if (size > MAX_DISTRICTS_FILE_BYTES) throw new Error(`${size} bytes, more than the ${MAX_DISTRICTS_FILE_BYTES} allowed`);
    const parsed = DistrictCollection.safeParse(JSON.parse(await readFile(path, 'utf8')));
    if (!parsed.success) {
      const { field, message } = describeIssues(parsed.error);
      throw new Error(`not a FeatureCollection of polygons: ${field ? `${field}: ` : ''}${message}`);
    }
    log.info({ path, districts: parsed.data.features.length }, 'district boundaries loaded for the dashboard map');
    return { json: JSON.stringify(parsed.data) };
  } catch (err) {
    const reason = `dashboard.districtsFile ${path}: ${(err as Error).message}`;
    log.error({ path, code: 'DISTRICTS_FILE_INVALID', reason }, 'district boundaries not loaded: the map is drawn without them');
    return { missing: reason };
  }
}

export const dashboardRoutes: FastifyPluginAsync<DashboardRoutesDeps> = async (app, { auth, dashboard, log }) => {
  const districts = await loadDistricts(dashboard.districtsFile, log);
  if (!existsSync(join(DASHBOARD_BUILD_DIR, 'main.js'))) {
    log.warn({ dir: DASHBOARD_BUILD_DIR, code: 'DASHBOARD_NOT_BUILT' }, 'the dashboard is not built: run npm run build:dashboard (npm start does it first)');
  }

  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(await readFile(INDEX, 'utf8')));

  app.get<{ Params: { name: string } }>('/assets/:name', async (req, reply) => {
    const { name } = req.params;
    if (!ASSET_NAME.test(name)) throw new HttpError(404, 'ASSET_NOT_FOUND', `no asset ${name}`, 'name');
    const body = await readFile(join(DASHBOARD_BUILD_DIR, name)).catch(() => {
      throw new HttpError(404, 'ASSET_NOT_FOUND', `no asset ${name} (is the dashboard built? npm run build:dashboard)`, 'name');
    });
    return reply.type(CONTENT_TYPES[extname(name).toLowerCase()]!).header('cache-control', 'no-cache').send(body);
  });

  app.get('/api/dashboard/config', { preHandler: requireRole(auth, 'viewer') }, async () => ({
    tileUrl: dashboard.tileUrl || null,
    tileAttribution: dashboard.tileAttribution,
    districts: 'json' in districts,
  }));

  app.get('/api/dashboard/districts', { preHandler: requireRole(auth, 'viewer') }, async (_req, reply) => {
    if (!('json' in districts)) throw new HttpError(404, 'NO_DISTRICTS', districts.missing);
    return reply.type('application/geo+json').send(districts.json);
  });
};
