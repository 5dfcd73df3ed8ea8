// What a device says, once the broker has authorised it: events become
// alerts, heartbeats and status update presence. Bad payloads are counted and
// logged (once per burst), never fatal and never an alert.
import type { Logger } from 'pino';
import {
  DEVICE_UPLINK, EventPayload, parseHeartbeat, parseJsonPayload, StatusPayload, type DeviceUplink as UplinkChannel, type ParsedPayload,
} from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import { LogThrottle } from '../log-throttle.ts';
import type { Counters } from '../metrics/counters.ts';
import type { AlertIntake } from '../pipeline/alert-intake.ts';
import type { PresenceSink } from '../supervision/supervisor.ts';
import type { DeviceRateLimiter } from './device-rate-limiter.ts';

export interface DeviceUplinkDeps {
  intake: AlertIntake;
  /** Supervision: every message is a check-in. */
  presence: PresenceSink;
  clock: Clock;
  counters: Counters;
  log: Logger;
  rateLimiter: DeviceRateLimiter;
}

/** `"online"` as JSON (the contract) or bare `online` (what mosquitto_pub users type). */
function parseStatus(payload: Buffer): ParsedPayload<StatusPayload> {
  const text = payload.toString('utf8').trim();
  return parseJsonPayload(StatusPayload, text.startsWith('"') ? text : JSON.stringify(text));
}

export class DeviceUplink {
  private readonly throttle: LogThrottle;
  /** device_messages_total per channel, its key built once: it counts every heartbeat. */
  private readonly received: Record<UplinkChannel, () => void>;

  constructor(private readonly deps: DeviceUplinkDeps) {
    this.throttle = new LogThrottle(deps.log);
    this.received = Object.fromEntries(DEVICE_UPLINK.map((channel) => [channel, deps.counters.counter('device_messages_total', { channel })])) as Record<UplinkChannel, () => void>;
  }

  /**
   * Resolves when the message is handled; for an event, only once the alert
   * is durable. Rejects only when the device must not get its PUBACK (the
   * store could not commit), so that it retries.
   */
  async handle(deviceId: string, channel: UplinkChannel, payload: Buffer): Promise<void> {
    if (channel === 'heartbeat') return this.heartbeat(deviceId, payload);
    const receivedAt = this.deps.clock.now();
    if (!this.admit(deviceId, channel)) return;
    switch (channel) {
      case 'event': {
        const parsed = parseJsonPayload(EventPayload, payload);
        if (!parsed.ok) return this.reject(deviceId, channel, parsed);
        this.deps.presence.heard(deviceId, { battery: parsed.value.battery, rssi: parsed.value.rssi }, receivedAt, 'mqtt');
        await this.deps.intake.accept({ deviceId, event: parsed.value, source: 'mqtt', receivedAt });
        return;
      }
      case 'status': {
        const parsed = parseStatus(payload);
        if (!parsed.ok) return this.reject(deviceId, channel, parsed);
        if (parsed.value === 'offline') this.deps.presence.statusOffline(deviceId, receivedAt);
        else this.deps.presence.heard(deviceId, {}, receivedAt, 'mqtt');
        return;
      }
    }
  }

  /**
   * A heartbeat, handled in full before this returns: it never waits for
   * anything, so the broker's lean lane calls it straight from the parser.
   */
  heartbeat(deviceId: string, payload: Buffer): void {
    const receivedAt = this.deps.clock.now();
    if (!this.admit(deviceId, 'heartbeat')) return;
    const parsed = parseHeartbeat(payload);
    if (!parsed.ok) return this.reject(deviceId, 'heartbeat', parsed);
    const { battery, rssi, fw } = parsed.value;
    this.deps.presence.heard(deviceId, { battery, rssi, fw }, receivedAt, 'mqtt');
  }

  /** Counts a message; false when the device is over its rate and the message is dropped (never an event). */
  private admit(deviceId: string, channel: UplinkChannel): boolean {
    this.received[channel]();
    if (this.deps.rateLimiter.take(deviceId) || channel === 'event') return true;
    this.deps.counters.inc('device_messages_dropped_total', { channel, reason: 'rate-limit' });
    return false;
  }

  private reject(deviceId: string, channel: UplinkChannel, failure: Extract<ParsedPayload<unknown>, { ok: false }>): void {
    this.deps.counters.inc('device_payload_rejected_total', { channel, reason: failure.reason });
    this.throttle.warn(`${deviceId}:${channel}:${failure.reason}:${failure.field ?? ''}`, {
      deviceId, channel, reason: failure.reason, field: failure.field, error: failure.message, code: 'BAD_PAYLOAD',
    }, `rejected ${channel} payload from ${deviceId}: ${failure.message}`);
  }
}
