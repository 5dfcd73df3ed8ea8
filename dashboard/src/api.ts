// The REST API with the session's bearer token. A 401 anywhere means the
// token is gone (revoked, expired): back to the login form.
const TOKEN_KEY = 'safehaven.token';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly field?: string) {
    super(message);
  }
}

let onUnauthorized: () => void = () => {};

export const session = {
  /** sessionStorage: gone when the tab closes, never written to disk as a cookie would be. */
  token: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  save: (token: string) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
  onUnauthorized: (handler: () => void) => { onUnauthorized = handler; },
};

/** Deadline of one API call: a hung gateway shows as an error, not a frozen button. */
const TIMEOUT_MS = 15_000;

export async function api<T>(method: string, path: string, body?: unknown, token = session.token()): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token ?? ''}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  if (!res.ok) {
    if (res.status === 401 && token === session.token()) onUnauthorized();
    throw new ApiError(res.status, String(json.error ?? 'ERROR'), String(json.message ?? res.statusText), json.field as string | undefined);
  }
  return json as T;
}
