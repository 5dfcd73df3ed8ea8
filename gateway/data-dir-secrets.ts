// Secrets the gateway generates for itself when none is configured, kept in
// the data dir with mode 0600 so they survive restarts and stay off the logs.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ADMIN_TOKEN_FILE = 'admin-token';
export const POLICE_SECRET_FILE = 'police-secret';

export function loadOrCreateSecret(dataDir: string, file: string): { value: string; path: string; created: boolean } {
  const path = join(dataDir, file);
  if (existsSync(path)) return { value: readFileSync(path, 'utf8').trim(), path, created: false };
  const value = randomBytes(24).toString('base64url');
  writeFileSync(path, value + '\n', { mode: 0o600, flag: 'wx' });
  return { value, path, created: true };
}
