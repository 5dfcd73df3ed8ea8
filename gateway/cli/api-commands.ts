// CLI commands that work through a running gateway's HTTP API, as an
// operator would with curl: `import` (sites from CSV or JSON) and
// `provision` (a device, whose secret is printed this once).
import { readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { ADMIN_TOKEN_FILE } from '../data-dir-secrets.ts';

/** The gateway answers in milliseconds; a minute covers a 100,000-row import on a slow disk. */
const API_TIMEOUT_MS = 60_000;

export class ApiCommandError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export interface ApiTarget {
  url: string;
  token: string;
}

/** --url, else the local gateway; --token, else SAFEHAVEN_ADMIN_TOKEN, else <data-dir>/admin-token. */
export function apiTarget(values: { url?: string; token?: string }, dataDir: string): ApiTarget {
  const url = (values.url ?? `http://127.0.0.1:${process.env.SAFEHAVEN_HTTP_PORT ?? 8080}`).replace(/\/$/, '');
  let token = values.token ?? process.env.SAFEHAVEN_ADMIN_TOKEN;
  if (!token) {
    const file = join(dataDir, ADMIN_TOKEN_FILE);
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch {
      throw new ApiCommandError('NO_TOKEN', `no admin token: pass --token, set SAFEHAVEN_ADMIN_TOKEN, or run where ${file} exists`);
    }
  }
  return { url, token };
}

async function call(target: ApiTarget, method: string, path: string, body: string, contentType: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${target.url}${path}`, {
      method, body, headers: { authorization: `Bearer ${target.token}`, 'content-type': contentType }, signal: AbortSignal.timeout(API_TIMEOUT_MS),
    });
  } catch (err) {
    throw new ApiCommandError('GATEWAY_UNREACHABLE', `${target.url}: ${(err as Error).message} — is the gateway running (npm start)?`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiCommandError('NOT_THE_GATEWAY', `${target.url} answered ${res.status} with something that is not JSON: is that the gateway's API address?`);
  }
  if (!res.ok) {
    const { error, message, problems } = (json ?? {}) as { error?: string; message?: string; problems?: Array<{ row: number; field?: string; message: string }> };
    const lines = (problems ?? []).map((p) => `  row ${p.row}${p.field ? ` ${p.field}` : ''}: ${p.message}`);
    throw new ApiCommandError(error ?? `HTTP_${res.status}`, [`${res.status} ${message ?? text}`, ...lines].join('\n'));
  }
  return json;
}

/** A .csv file is sent as CSV; anything else must be JSON. */
export async function importSites(target: ApiTarget, file: string, existing: 'skip' | 'fail'): Promise<{ added: number; skipped: string[] }> {
  let body: string;
  try {
    body = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ApiCommandError('FILE_UNREADABLE', `${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const type = extname(file).toLowerCase() === '.csv' ? 'text/csv' : 'application/json';
  return (await call(target, 'POST', `/api/sites/import?existing=${existing}`, body, type)) as { added: number; skipped: string[] };
}

export async function provisionDevice(target: ApiTarget, input: { siteId: string; type: string; id?: string | undefined }): Promise<{ id: string; secret: string }> {
  return (await call(target, 'POST', '/api/devices', JSON.stringify(input), 'application/json')) as { id: string; secret: string };
}
