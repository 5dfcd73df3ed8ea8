// Payload and entity schemas shared by the gateway, the device simulator, the
// dashboard and the police side. Types are derived from these schemas so a
// field cannot drift between the validator and the code that uses it.
import { z } from 'zod';

/** Seoul's 25 autonomous districts, romanised as the city publishes them. */
export const SEOUL_DISTRICTS = [
  'Jongno-gu', 'Jung-gu', 'Yongsan-gu', 'Seongdong-gu', 'Gwangjin-gu',
  'Dongdaemun-gu', 'Jungnang-gu', 'Seongbuk-gu', 'Gangbuk-gu', 'Dobong-gu',
  'Nowon-gu', 'Eunpyeong-gu', 'Seodaemun-gu', 'Mapo-gu', 'Yangcheon-gu',
  'Gangseo-gu', 'Guro-gu', 'Geumcheon-gu', 'Yeongdeungpo-gu', 'Dongjak-gu',
  'Gwanak-gu', 'Seocho-gu', 'Gangnam-gu', 'Songpa-gu', 'Gangdong-gu',
] as const;
export const District = z.enum(SEOUL_DISTRICTS);
export type District = z.infer<typeof District>;

/**
 * Ids travel in MQTT client ids and topic levels, so they are restricted to a
 * charset that needs no escaping anywhere. 23 characters is the longest client
 * id every MQTT 3.1.1 server must accept [MQTT-3.1.3-5], so a device id always
 * fits even on minimal firmware stacks.
 */
export const DEVICE_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,22}$/;
export const DeviceId = z.string().regex(DEVICE_ID_PATTERN, 'lowercase letters, digits and "-", 1 to 23 characters');
export const SiteId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lowercase letters, digits and "-", 1 to 40 characters');

export const SiteKind = z.enum(['store', 'home']);
export type SiteKind = z.infer<typeof SiteKind>;

/** A protected place. Field names are fixed by INTERFACES §1. */
export const Site = z.strictObject({
  id: SiteId,
  kind: SiteKind,
  name: z.string().min(1).max(200),
  address: z.string().min(1).max(300),
  phone: z.string().regex(/^\+?[0-9][0-9 -]{5,20}$/, 'a phone number such as 02-555-0134'),
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
  district: District,
  policeStation: z.string().min(1).max(100),
});
export type Site = z.infer<typeof Site>;

export const DEVICE_TYPES = ['panic-button', 'motion-sensor', 'door-sensor', 'alarm-bell', 'rf-receiver'] as const;
export const DeviceType = z.enum(DEVICE_TYPES);
export type DeviceType = z.infer<typeof DeviceType>;

/** Device event types; `test` is an installer's test press and is dispatched flagged as such. */
export const EVENT_TYPES = ['panic', 'intrusion', 'door', 'tamper', 'test'] as const;
export const EventType = z.enum(EVENT_TYPES);
export type EventType = z.infer<typeof EventType>;

/**
 * Dispatch priority: the outbox delivers higher first, then older first.
 * A panic is a person in danger now; a tamper may be a prelude; a test is paperwork.
 */
export const EVENT_PRIORITY: Record<EventType, number> = {
  panic: 100,
  intrusion: 90,
  door: 80,
  tamper: 50,
  test: 10,
};

/** `seq` is a per-device counter kept in the device's flash; 2^53-1 never wraps in practice. */
const Seq = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
/** Device clock, epoch milliseconds. A wrong clock is tolerated (see clock skew), a missing one is not. */
const DeviceTs = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
const Battery = z.int().min(0).max(100);
const Rssi = z.int().min(-150).max(0);

export const EventPayload = z.strictObject({
  seq: Seq,
  ts: DeviceTs,
  type: EventType,
  battery: Battery.optional(),
  rssi: Rssi.optional(),
});
export type EventPayload = z.infer<typeof EventPayload>;

export const HeartbeatPayload = z.strictObject({
  seq: Seq,
  ts: DeviceTs,
  battery: Battery.optional(),
  rssi: Rssi.optional(),
  fw: z.string().max(32).optional(),
});
export type HeartbeatPayload = z.infer<typeof HeartbeatPayload>;

const intIn = (v: unknown, min: number, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
const HEARTBEAT_KEYS = new Set(['seq', 'ts', 'battery', 'rssi', 'fw']);

/**
 * True only for what HeartbeatPayload accepts, checked by hand: thousands of
 * devices heartbeat every minute, and this costs a fraction of a schema
 * parse. Anything it does not accept goes through the schema, which names
 * the problem; a test holds the two to the same verdicts.
 */
export function isWellFormedHeartbeat(v: unknown): v is HeartbeatPayload {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  for (const key in o) if (!HEARTBEAT_KEYS.has(key)) return false;
  return intIn(o.seq, 0, Number.MAX_SAFE_INTEGER) && intIn(o.ts, 0, Number.MAX_SAFE_INTEGER)
    && (o.battery === undefined || intIn(o.battery, 0, 100)) && (o.rssi === undefined || intIn(o.rssi, -150, 0))
    && (o.fw === undefined || (typeof o.fw === 'string' && o.fw.length <= 32));
}

export const StatusPayload = z.enum(['online', 'offline']);
export type StatusPayload = z.infer<typeof StatusPayload>;

/**
 * Alert states, in the only order they can be reached (a state never goes back):
 * received (stored) → dispatched (first POST sent) → escalated (fallback engaged)
 * → acknowledged (police answered 2xx, or a dispatcher took it) → resolved.
 * `escalated` is skipped when the primary answers in time.
 */
export const ALERT_STATES = ['received', 'dispatched', 'escalated', 'acknowledged', 'resolved'] as const;
export const AlertState = z.enum(ALERT_STATES);
export type AlertState = z.infer<typeof AlertState>;

export function stateRank(state: AlertState): number {
  return ALERT_STATES.indexOf(state);
}

/**
 * Progress the police report back for an alert, after the states ASAP-to-PSAP
 * uses: the PSAP accepted or rejected it, sent a unit, the unit arrived, the
 * incident is closed.
 */
export const POLICE_STATUSES = ['accepted', 'rejected', 'dispatched', 'arrived', 'closed'] as const;
export const PoliceStatus = z.enum(POLICE_STATUSES);
export type PoliceStatus = z.infer<typeof PoliceStatus>;

/** gateway → device on `.../ack`. The device maps states to blinks ("help is coming"). */
export const AckPayload = z.strictObject({
  seq: Seq,
  alertId: z.string(),
  state: AlertState,
  /** The police's own progress once they report it ("dispatched" = a patrol car is on its way). */
  police: PoliceStatus.optional(),
});
export type AckPayload = z.infer<typeof AckPayload>;

/** gateway → device on the retained `.../config`. */
export const ConfigPayload = z.strictObject({
  heartbeatSec: z.int().min(1).max(86_400),
});
export type ConfigPayload = z.infer<typeof ConfigPayload>;

/** How a dispatcher closed an alert; `other` needs a note. */
export const RESOLVE_OUTCOMES = ['police-dispatched', 'false-alarm', 'test', 'other'] as const;
export const ResolveOutcome = z.enum(RESOLVE_OUTCOMES);
export type ResolveOutcome = z.infer<typeof ResolveOutcome>;

/** Largest MQTT payload the gateway reads as JSON; real events are under 200 bytes. */
export const MAX_JSON_PAYLOAD_BYTES = 4096;
