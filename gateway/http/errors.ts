// Every API error is JSON: {statusCode, error (a code), message, field?}.
import type { FastifyError, FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { describeIssues } from '../../protocol/index.ts';

export class HttpError extends Error {
  constructor(readonly statusCode: number, readonly code: string, message: string, readonly field?: string) {
    super(message);
  }
}

/** Parses request input with a schema; a failure is a 400 naming the field. */
export function validate<S extends z.ZodType>(schema: S, input: unknown, where: 'body' | 'query' | 'params'): z.infer<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const { field, message } = describeIssues(result.error);
  throw new HttpError(400, 'INVALID_REQUEST', `${where}${field ? '.' : ''}${message}`, field);
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    if (err instanceof HttpError) {
      return reply.code(err.statusCode).send({ statusCode: err.statusCode, error: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'request failed');
    const message = status === 500 ? 'internal error' : err.message;
    return reply.code(status).send({ statusCode: status, error: err.code ?? 'ERROR', message, ...(status === 400 ? { field: 'body' } : {}) });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ statusCode: 404, error: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });
}
