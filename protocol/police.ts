// The webhook the gateway POSTs to a police endpoint (INTERFACES §4).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ALERT_ID_PATTERN } from './alert-id.ts';
import { EventType, POLICE_STATUSES, PoliceStatus, Site } from './schemas.ts';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
export const SIGNATURE_HEADER = 'x-safehaven-signature';
const SIGNATURE_PREFIX = 'sha256=';

/**
 * Fixed fields: alertId, type, site, deviceId, pressedAt, receivedAt, attempt.
 * The rest help the police triage: `priority` orders their queue the way ours
 * is ordered, `test` marks an installer's test press, `clockSkew` says the
 * device clock was off and `pressedAt` is the receive time, `sentAt` dates
 * this attempt (it is inside the signed body, so a captured request cannot be
 * passed off as a fresh one).
 */
export const PoliceAlertBody = z.object({
  alertId: z.string(),
  type: EventType,
  site: Site,
  deviceId: z.string(),
  pressedAt: z.iso.datetime(),
  receivedAt: z.iso.datetime(),
  attempt: z.int().min(1),
  priority: z.int(),
  test: z.boolean(),
  clockSkew: z.boolean(),
  sentAt: z.iso.datetime(),
});
export type PoliceAlertBody = z.infer<typeof PoliceAlertBody>;

/** A 2xx answer may carry the police case number; anything else in it is ignored. */
export const PoliceAnswer = z.looseObject({ caseId: z.string().min(1).max(200).optional() });

/** Ranked so that a late, out-of-order callback never moves the reported progress backwards. */
export function policeStatusRank(status: PoliceStatus): number {
  return status === 'rejected' ? 0 : POLICE_STATUSES.indexOf(status);
}

/** Body of `POST /api/police/status`, signed like our alerts: `X-SafeHaven-Signature` with the route's secret. */
export const PoliceStatusUpdate = z.strictObject({
  alertId: z.string().regex(ALERT_ID_PATTERN, 'an alert id: al- and 20 hex digits'),
  status: PoliceStatus,
  /** Why the police rejected the alert; free text for the dispatcher. */
  reason: z.string().min(1).max(500).optional(),
  caseId: z.string().min(1).max(200).optional(),
  /** The patrol unit sent, for the dashboard. */
  unit: z.string().min(1).max(100).optional(),
  /** When it happened on the police side. */
  at: z.iso.datetime({ offset: true }).optional(),
  /**
   * When this callback was sent. It is inside the signed body, so a captured
   * callback cannot be replayed later: the gateway refuses one more than
   * POLICE_CALLBACK_MAX_AGE_MS away from its clock.
   */
  sentAt: z.iso.datetime({ offset: true }),
});
export type PoliceStatusUpdate = z.infer<typeof PoliceStatusUpdate>;

export const POLICE_CALLBACK_MAX_AGE_MS = 5 * 60_000;

/** A status callback is a small JSON object; larger bodies are refused before parsing. */
export const MAX_POLICE_STATUS_BYTES = 4096;

export function signBody(secret: string, body: string): string {
  return SIGNATURE_PREFIX + createHmac('sha256', secret).update(body).digest('hex');
}

/** Constant-time check of an `X-SafeHaven-Signature` header against the raw body. */
export function verifySignature(secret: string, body: string, header: string | undefined): boolean {
  if (!header || !header.startsWith(SIGNATURE_PREFIX)) return false;
  const expected = Buffer.from(signBody(secret, body));
  const given = Buffer.from(header);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface PoliceBodyInput {
  alertId: string;
  type: PoliceAlertBody['type'];
  site: PoliceAlertBody['site'];
  deviceId: string;
  pressedAt: number;
  receivedAt: number;
  attempt: number;
  priority: number;
  clockSkew: boolean;
  sentAt: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Serialised once per attempt; the exact string is what gets signed. */
export function buildPoliceBody(input: PoliceBodyInput): string {
  const body: PoliceAlertBody = {
    alertId: input.alertId,
    type: input.type,
    site: {
      id: input.site.id, kind: input.site.kind, name: input.site.name, address: input.site.address,
      phone: input.site.phone, lat: input.site.lat, lon: input.site.lon, district: input.site.district,
      policeStation: input.site.policeStation,
    },
    deviceId: input.deviceId,
    pressedAt: iso(input.pressedAt),
    receivedAt: iso(input.receivedAt),
    attempt: input.attempt,
    priority: input.priority,
    test: input.type === 'test',
    clockSkew: input.clockSkew,
    sentAt: iso(input.sentAt),
  };
  return JSON.stringify(body);
}

/** Headers of one attempt: the same Idempotency-Key on every attempt and every endpoint. */
export function policeHeaders(alertId: string, secret: string, body: string, contentType = 'application/json'): Record<string, string> {
  return {
    'content-type': contentType,
    'idempotency-key': alertId,
    'x-safehaven-signature': signBody(secret, body),
  };
}
