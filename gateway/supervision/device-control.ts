// What an admin does to a device beyond provisioning, and what the device is
// told: its heartbeat interval on its retained config topic (at start-up and
// when provisioned), revocation (sessions closed at once, reconnects refused,
// no longer supervised) and secret rotation (the old secret stops working).
import type { Logger } from 'pino';
import { ConfigPayload, topics, type DeviceType } from '../../protocol/index.ts';
import type { SupervisionClassConfig } from '../config.ts';
import type { Registry } from '../registry/registry.ts';
import type { DeviceRecord } from '../store/registry-repo.ts';
import type { Supervisor } from './supervisor.ts';

export interface DeviceControlDeps {
  registry: Registry;
  supervisor: Pick<Supervisor, 'revoked' | 'describe'>;
  classes: Record<DeviceType, SupervisionClassConfig>;
  /** Publishes from the gateway itself (MqttBroker.publish). */
  publish: (topic: string, payload: string, opts: { qos: 0 | 1; retain: boolean }) => Promise<void>;
  /** Closes the device's live MQTT session, if it has one; true if it had. */
  kick: (deviceId: string) => boolean;
  log: Logger;
}

export class DeviceControl {
  constructor(private readonly deps: DeviceControlDeps) {}

  /** The device's own class interval, retained so it reaches the device whenever it subscribes. */
  async publishConfig(device: Pick<DeviceRecord, 'id' | 'type'>): Promise<void> {
    const payload = JSON.stringify(ConfigPayload.parse({ heartbeatSec: this.deps.classes[device.type].intervalSec }));
    await this.deps.publish(topics.config(device.id), payload, { qos: 1, retain: true });
  }

  async publishAllConfigs(): Promise<void> {
    for (const device of this.deps.registry.allDevices()) {
      if (device.revokedAt === null) await this.publishConfig(device);
    }
  }

  /** A newly provisioned device finds its interval waiting on its config topic. */
  provisioned(device: DeviceRecord): void {
    this.publishConfig(device).catch((err: unknown) => this.deps.log.error({ err, deviceId: device.id }, 'could not publish the config of a new device'));
  }

  /** Null for an unknown device. Idempotent: revoking a revoked device changes nothing. */
  async revoke(deviceId: string): Promise<{ device: DeviceRecord; kicked: boolean; already: boolean } | null> {
    const already = (this.deps.registry.device(deviceId)?.revokedAt ?? null) !== null;
    const device = await this.deps.registry.revoke(deviceId);
    if (!device) return null;
    if (already) return { device, kicked: false, already };
    // Unwatched before the kick, so the lost session is not mistaken for an outage.
    this.deps.supervisor.revoked(deviceId);
    const kicked = this.deps.kick(deviceId);
    // An empty retained payload deletes the retained config: nothing is left for the id.
    this.deps.publish(topics.config(deviceId), '', { qos: 1, retain: true })
      .catch((err: unknown) => this.deps.log.error({ err, deviceId }, 'could not clear the config of a revoked device'));
    this.deps.log.warn({ deviceId, kicked, code: 'DEVICE_REVOKED' }, `device ${deviceId} revoked${kicked ? ': its session was closed' : ''}`);
    return { device, kicked, already };
  }

  /** Null for an unknown or revoked device. The session holding the old secret is closed. */
  async rotateSecret(deviceId: string): Promise<{ device: DeviceRecord; secret: string; kicked: boolean } | null> {
    const rotated = await this.deps.registry.rotateSecret(deviceId);
    if (!rotated) return null;
    const kicked = this.deps.kick(deviceId);
    this.deps.log.warn({ deviceId, kicked, code: 'DEVICE_SECRET_ROTATED' }, `device ${deviceId}: secret rotated, the old one is refused`);
    return { ...rotated, kicked };
  }

  supervision(deviceId: string): ReturnType<Supervisor['describe']> {
    return this.deps.supervisor.describe(deviceId);
  }
}
