// For admins: who is failing to log in right now (MQTT and API), and which
// devices are flooding. Counters of refusals are in /healthz and /metrics.
import type { FastifyPluginAsync } from 'fastify';
import type { AuthFailureReport } from '../../broker/auth-limiter.ts';
import { requireRole, type AuthDeps } from '../auth.ts';

export interface SecurityReport {
  mqttAuthFailures: AuthFailureReport;
  httpAuthFailures: AuthFailureReport;
  floodingDevices: string[];
}

export const securityRoutes: FastifyPluginAsync<{ auth: AuthDeps; security: () => SecurityReport }> = async (app, { auth, security }) => {
  app.get('/api/security', { preHandler: requireRole(auth, 'admin') }, async () => security());
};
