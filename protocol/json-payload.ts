import type { z } from 'zod';
import { HeartbeatPayload, isWellFormedHeartbeat, MAX_JSON_PAYLOAD_BYTES } from './schemas.ts';

export type PayloadRejection = 'too-large' | 'bad-json' | 'invalid';

export type ParsedPayload<T> =
  | { ok: true; value: T }
  | { ok: false; reason: PayloadRejection; field?: string; message: string };

/** `a.b[2]` style path of the first schema issue, for error messages that name the field. */
export function issuePath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => {
    if (typeof key === 'number') return `${acc}[${key}]`;
    return acc ? `${acc}.${String(key)}` : String(key);
  }, '');
}

/** First issue of a failed parse as `field: message` plus the field on its own. */
export function describeIssues(error: z.ZodError): { field?: string; message: string } {
  const issue = error.issues[0];
  if (!issue) return { message: 'invalid' };
  // An unknown key is reported on the parent object; name the key itself.
  const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
  const path = keys.length > 0 ? [...issue.path, keys[0]!] : issue.path;
  const field = issuePath(path) || undefined;
  return { field, message: field ? `${field}: ${issue.message}` : issue.message };
}

/**
 * Parses an MQTT (or HTTP) JSON payload with a hard size cap, never throwing:
 * the caller turns the rejection into a log line and a counter.
 */
export function parseJsonPayload<S extends z.ZodType>(
  schema: S,
  payload: Buffer | string,
  maxBytes = MAX_JSON_PAYLOAD_BYTES,
  wellFormed?: (json: unknown) => json is z.infer<S>,
): ParsedPayload<z.infer<S>> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (size > maxBytes) {
    return { ok: false, reason: 'too-large', message: `payload is ${size} bytes, the limit is ${maxBytes}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: 'bad-json', message: `not JSON: ${(err as Error).message}` };
  }
  if (wellFormed?.(json)) return { ok: true, value: json };
  const result = schema.safeParse(json);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, reason: 'invalid', ...describeIssues(result.error) };
}

/** A heartbeat payload: the common well-formed one by a hand check, anything else by the schema. */
export const parseHeartbeat = (payload: Buffer | string): ParsedPayload<HeartbeatPayload> =>
  parseJsonPayload(HeartbeatPayload, payload, MAX_JSON_PAYLOAD_BYTES, isWellFormedHeartbeat);
