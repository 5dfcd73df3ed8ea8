// What the dongles say: device events become alerts through the same intake as
// MQTT, heartbeats update presence, boot and health lines describe the
// receiver. Every refused line is counted by reason and logged once per burst;
// nothing a dongle sends can throw out of here.
import type { Logger } from 'pino';
import {
  formatConfig, MAX_LINE_BYTES, parseLine, verifyFrameMac,
  type DeviceEventFrame, type HeartbeatFrame, type LineErrorReason,
} from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import { LogThrottle } from '../log-throttle.ts';
import type { Counters } from '../metrics/counters.ts';
import { IntakeError, type AlertIntake } from '../pipeline/alert-intake.ts';
import type { Registry } from '../registry/registry.ts';
import type { PresenceSink } from '../supervision/supervisor.ts';
import type { DeviceRoutes } from './device-routes.ts';
import type { LinkSink, PortLink } from './port-link.ts';
import type { SeqWindow } from '../pipeline/seq-window.ts';

export type SerialRejectReason =
  | LineErrorReason
  | 'unknown-device' | 'unknown-site' | 'revoked' | 'no-radio-key' | 'bad-mac' | 'replayed' | 'unexpected-kind';

export interface SerialUplinkDeps {
  registry: Registry;
  intake: AlertIntake;
  window: SeqWindow;
  routes: DeviceRoutes;
  /** Supervision: every verified frame, boot and health line is a check-in. */
  presence: PresenceSink;
  /** The heartbeat interval for a device's CFG frame; null for a device not in the registry. */
  heartbeatSec: (deviceId: string) => number | null;
  clock: Clock;
  counters: Counters;
  log: Logger;
}

const INTAKE_REFUSAL: Record<IntakeError['code'], SerialRejectReason> = {
  UNKNOWN_DEVICE: 'unknown-device', UNKNOWN_SITE: 'unknown-site', REPLAYED: 'replayed',
};

export class SerialUplink implements LinkSink {
  private readonly throttle: LogThrottle;

  constructor(private readonly deps: SerialUplinkDeps) {
    this.throttle = new LogThrottle(deps.log, undefined, () => deps.clock.now());
  }

  line(link: PortLink, line: string): void {
    this.handle(link, line).catch((err: unknown) => this.deps.log.error({ err, port: link.name }, 'serial line handler failed'));
  }

  overflow(link: PortLink, droppedBytes: number): void {
    this.deps.counters.inc('serial_bytes_dropped_total', { port: link.name }, droppedBytes);
    this.reject(link, 'too-long', `a line of ${droppedBytes} bytes was dropped unread, the limit is ${MAX_LINE_BYTES}`);
  }

  /** Resolves when the line is handled; for an event, once its alert is durable (and acked) or refused. */
  async handle(link: PortLink, line: string): Promise<void> {
    const receivedAt = this.deps.clock.now();
    const parsed = parseLine(line);
    if (!parsed.ok) return this.reject(link, parsed.reason, parsed.message, { field: parsed.field });
    const frame = parsed.frame;
    this.deps.counters.inc('serial_frames_total', { port: link.name, kind: frame.kind });
    switch (frame.kind) {
      case 'EVT': return this.event(link, frame, receivedAt);
      case 'HB': return this.heartbeat(link, frame, receivedAt);
      case 'BOOT':
        link.noteBoot(frame, receivedAt);
        this.deps.log.info({ port: link.name, receiverId: frame.receiverId, fw: frame.fw }, `receiver ${frame.receiverId} booted on ${link.name}`);
        this.receiverHeard(frame.receiverId, { fw: frame.fw }, receivedAt);
        // A rebooted dongle has forgotten every interval: its own, and those it relays.
        for (const id of [frame.receiverId, ...this.deps.routes.devicesOnLink(link)]) this.sendConfig(link, id);
        return;
      case 'RHL':
        link.noteHealth(frame, receivedAt);
        this.receiverHeard(frame.receiverId, {}, receivedAt);
        return;
      case 'ACK': case 'CFG':
        // Our own downlink coming back: an echoing port or a wiring loop, never a dongle.
        return this.reject(link, 'unexpected-kind', `${frame.kind} is a gateway-to-dongle frame`);
    }
  }

  /**
   * BOOT and health lines carry no MAC: they may check in the receiver
   * itself, never another kind of device, or a dongle misconfigured with a
   * button's id would keep a dead button looking alive.
   */
  private receiverHeard(receiverId: string, seen: { fw?: string }, at: number): void {
    if (this.deps.registry.device(receiverId)?.type === 'rf-receiver') this.deps.presence.heard(receiverId, seen, at, 'serial');
  }

  private async event(link: PortLink, frame: DeviceEventFrame, receivedAt: number): Promise<void> {
    if (!this.authenticate(link, frame)) return;
    const { deviceId, seq, ts, type, battery, rssi } = frame;
    this.deps.presence.heard(deviceId, { battery, rssi }, receivedAt, 'serial');
    try {
      // The ACK goes out from the alert bus (serial-acks.ts) once the alert is durable.
      await this.deps.intake.accept({ deviceId, event: { seq, ts, type, battery, rssi }, source: 'serial', receivedAt });
    } catch (err) {
      if (err instanceof IntakeError) return this.reject(link, INTAKE_REFUSAL[err.code], err.message, { deviceId, seq });
      this.deps.counters.inc('serial_events_not_stored_total', { port: link.name });
      this.deps.log.error({ err, port: link.name, deviceId, seq, code: 'SERIAL_EVENT_NOT_STORED' }, 'radio event not stored: no ACK, the device retransmits');
    }
  }

  private heartbeat(link: PortLink, frame: HeartbeatFrame, receivedAt: number): void {
    if (!this.authenticate(link, frame)) return;
    const { deviceId, seq, battery, rssi, fw } = frame;
    const last = this.deps.window.heartbeatReplay(deviceId, seq);
    if (last !== null) return this.reject(link, 'replayed', `HB seq ${seq} from ${deviceId} does not follow its last HB seq ${last}`, { deviceId, seq });
    this.deps.presence.heard(deviceId, { battery, rssi, fw }, receivedAt, 'serial');
  }

  /** True when the frame's MAC verifies with its device's radio key; routes the device's acks to this link. */
  private authenticate(link: PortLink, frame: DeviceEventFrame | HeartbeatFrame): boolean {
    const refusal = this.refusal(frame);
    if (refusal) {
      this.reject(link, refusal[0], refusal[1], { deviceId: frame.deviceId });
      return false;
    }
    if (this.deps.routes.note(frame.deviceId, link)) this.sendConfig(link, frame.deviceId);
    return true;
  }

  /** The device's heartbeat interval, through the dongle that hears it (INTERFACES §3 CFG). */
  private sendConfig(link: PortLink, deviceId: string): void {
    const heartbeatSec = this.deps.heartbeatSec(deviceId);
    if (heartbeatSec === null) return;
    const outcome = link.sendWhenIdle(formatConfig({ deviceId, heartbeatSec }));
    this.deps.counters.inc(outcome === 'sent' ? 'serial_configs_sent_total' : 'serial_configs_dropped_total', { port: link.name });
  }

  private refusal(frame: DeviceEventFrame | HeartbeatFrame): [SerialRejectReason, string] | null {
    const { deviceId } = frame;
    const device = this.deps.registry.device(deviceId);
    if (!device) return ['unknown-device', `no device ${deviceId}`];
    if (device.revokedAt !== null) return ['revoked', `device ${deviceId} is revoked`];
    if (!device.radioKey) return ['no-radio-key', `device ${deviceId} has no radio key (provisioned before the serial bridge): provision it again`];
    if (!verifyFrameMac(frame, device.radioKey)) return ['bad-mac', `${frame.kind} from ${deviceId}: the MAC does not verify with its radio key`];
    return null;
  }

  private reject(link: PortLink, reason: SerialRejectReason, message: string, detail: Record<string, unknown> = {}): void {
    this.deps.counters.inc('serial_frames_rejected_total', { port: link.name, reason });
    this.throttle.warn(`${link.name}:${reason}`, {
      port: link.name, reason, ...detail, code: `SERIAL_${reason.toUpperCase().replaceAll('-', '_')}`,
    }, `serial line refused on ${link.name}: ${message}`);
  }
}
