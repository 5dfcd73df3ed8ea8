// Headers on every answer: the dashboard loads only its own scripts (no
// inline script, so an injected site name cannot run), cannot be framed
// (click-jacking an "acknowledge" button), and API answers are never cached
// by a browser or proxy (they hold personal data). No CORS headers are sent:
// other origins cannot read the API from a browser.
import type { FastifyInstance } from 'fastify';

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // Leaflet positions its panes with inline style attributes.
  "style-src 'self' 'unsafe-inline'",
  // Map tiles come from a configurable tile server.
  "img-src 'self' data: https:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "object-src 'none'",
].join('; ');

export function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('content-security-policy', CSP);
    if (req.url.startsWith('/api/')) reply.header('cache-control', 'no-store');
    return payload;
  });
}
