// Demo devices get secrets derived from a random per-install key kept in the
// data dir, so `safehaven sim` and the README's demo press can find any demo
// device's secret on this machine without a file of secrets in clear. Real
// devices are provisioned through the API and their secrets exist only once,
// in the provisioning answer.
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const DEMO_KEY_FILE = 'demo.key';

export function demoKeyPath(dataDir: string): string {
  return join(dataDir, DEMO_KEY_FILE);
}

/** Reads the install's demo key, creating it (mode 0600) on first use. */
export function loadOrCreateDemoKey(dataDir: string): Buffer {
  const path = demoKeyPath(dataDir);
  if (!existsSync(path)) writeFileSync(path, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return readDemoKey(dataDir);
}

export function readDemoKey(dataDir: string): Buffer {
  return Buffer.from(readFileSync(demoKeyPath(dataDir), 'utf8').trim(), 'hex');
}

export function demoSecret(demoKey: Buffer, deviceId: string): string {
  return createHmac('sha256', demoKey).update(`demo-device-secret\n${deviceId}`).digest('base64url').slice(0, 32);
}
