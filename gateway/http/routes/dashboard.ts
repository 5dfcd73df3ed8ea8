import type { FastifyPluginAsync } from 'fastify';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const INDEX = fileURLToPath(new URL('../../../dashboard/index.html', import.meta.url));

export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(await readFile(INDEX, 'utf8')));
};
