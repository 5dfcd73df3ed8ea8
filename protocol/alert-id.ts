import { createHash } from 'node:crypto';

/**
 * The alert id is a pure function of (deviceId, seq): a device that repeats a
 * publish (QoS 1 DUP after a reconnect, the same radio frame heard twice,
 * a gateway restart between PUBACK and dispatch) always lands on the same
 * alert, and the police see the same Idempotency-Key.
 *
 * Hashing keeps the id opaque (it does not reveal the device) and fixed-length:
 * `al-` + 20 hex digits (80 bits) fits the 23-character MQTT topic-level
 * budget the gateway keeps for ids.
 */
export function deriveAlertId(deviceId: string, seq: number): string {
  const digest = createHash('sha256').update(`safehaven/v1/alert\n${deviceId}\n${seq}`).digest('hex');
  return `al-${digest.slice(0, 20)}`;
}

export const ALERT_ID_PATTERN = /^al-[0-9a-f]{20}$/;
