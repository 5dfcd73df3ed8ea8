// The one root logger. Components get `child({ module })`. Secrets that could
// reach a log line through an object are redacted by path.
import pino, { type Logger } from 'pino';

export const REDACT_PATHS = [
  'secret', '*.secret', 'password', '*.password', 'token', '*.token', 'adminToken', '*.adminToken',
  'req.headers.authorization', 'headers.authorization', 'headers["x-safehaven-signature"]',
];

export function createRootLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { app: 'safehaven' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination ?? pino.destination({ sync: false }));
}
