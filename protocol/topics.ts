// MQTT topic strings. Nothing outside protocol/ spells a topic.
import { DEVICE_ID_PATTERN } from './schemas.ts';

export const TOPIC_ROOT = 'safehaven/v1';
const DEVICE_PREFIX = `${TOPIC_ROOT}/dev/`;
const ALERT_PREFIX = `${TOPIC_ROOT}/alerts/`;

/** Channels a device publishes on. */
export const DEVICE_UPLINK = ['event', 'heartbeat', 'status'] as const;
/** Channels the gateway publishes to a device; the only ones it may subscribe to. */
export const DEVICE_DOWNLINK = ['ack', 'config'] as const;
export type DeviceUplink = (typeof DEVICE_UPLINK)[number];
export type DeviceDownlink = (typeof DEVICE_DOWNLINK)[number];
export type DeviceChannel = DeviceUplink | DeviceDownlink;

export const topics = {
  event: (deviceId: string) => `${DEVICE_PREFIX}${deviceId}/event`,
  heartbeat: (deviceId: string) => `${DEVICE_PREFIX}${deviceId}${HEARTBEAT_SUFFIX}`,
  status: (deviceId: string) => `${DEVICE_PREFIX}${deviceId}/status`,
  ack: (deviceId: string) => `${DEVICE_PREFIX}${deviceId}/ack`,
  config: (deviceId: string) => `${DEVICE_PREFIX}${deviceId}/config`,
  /** Every alert state change, for integrators (INTERFACES §2, fixed). */
  alert: (alertId: string) => `${ALERT_PREFIX}${alertId}`,
} as const;

const HEARTBEAT_SUFFIX = '/heartbeat';

/** `topics.heartbeat(deviceId) === topic`, without building the string (checked for every heartbeat). */
export function isHeartbeatTopicOf(topic: string, deviceId: string): boolean {
  return topic.length === DEVICE_PREFIX.length + deviceId.length + HEARTBEAT_SUFFIX.length
    && topic.startsWith(DEVICE_PREFIX) && topic.startsWith(deviceId, DEVICE_PREFIX.length) && topic.endsWith(HEARTBEAT_SUFFIX);
}

export interface DeviceTopic {
  deviceId: string;
  channel: DeviceChannel;
}

const CHANNELS: ReadonlySet<string> = new Set<string>([...DEVICE_UPLINK, ...DEVICE_DOWNLINK]);

/**
 * Splits `safehaven/v1/dev/{id}/{channel}`; anything else (extra levels,
 * unknown channel, malformed id, wildcards) is null, so callers treat it as
 * "not a device topic" without string surgery of their own.
 */
export function parseDeviceTopic(topic: string): DeviceTopic | null {
  if (!topic.startsWith(DEVICE_PREFIX)) return null;
  const rest = topic.slice(DEVICE_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || rest.indexOf('/', slash + 1) !== -1) return null;
  const deviceId = rest.slice(0, slash);
  const channel = rest.slice(slash + 1);
  if (!CHANNELS.has(channel) || !DEVICE_ID_PATTERN.test(deviceId)) return null;
  return { deviceId, channel: channel as DeviceChannel };
}

export function isUplink(channel: DeviceChannel): channel is DeviceUplink {
  return (DEVICE_UPLINK as readonly string[]).includes(channel);
}
