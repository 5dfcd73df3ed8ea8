// Supervision: every device must check in (a heartbeat, an event, a connect,
// a radio frame) within its class's interval + grace, or it is flagged
// offline; a connection lost without DISCONNECT (keepalive timeout, a killed
// client, a last will) is flagged once the device is not back within the
// reconnect grace. Low batteries and tamper alerts raise troubles too, and a
// store whose panic buttons are all offline is flagged unprotected. Each
// trouble clears itself (a restore) when its cause goes away.
//
// Hot path: a check-in writes a deadline field and the registry's presence
// fields, nothing else. One tick for all devices walks a DeadlineWheel; it
// judges only deadlines that passed before the tick before last, so that a
// heartbeat waiting in a socket buffer while the gateway was busy is read
// before its device is judged (see `judgeUpTo`).
import type { Logger } from 'pino';
import type { DeviceType, TroubleKind } from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import type { SupervisionClassConfig } from '../config.ts';
import type { Counters } from '../metrics/counters.ts';
import type { AlertChange } from '../pipeline/alert-bus.ts';
import type { Registry } from '../registry/registry.ts';
import { DeadlineWheel, type WheelItem } from './deadline-wheel.ts';
import type { TroubleBook } from './trouble-book.ts';
import type { PresenceChange, PresenceSource } from './trouble-source.ts';

/**
 * `pending`: never heard since it was provisioned (not yet installed), so not
 * flagged; `ok`: checked in within its window; `missed`: flagged offline;
 * `revoked`: no longer supervised.
 */
export type SupervisionState = 'pending' | 'ok' | 'missed' | 'revoked';
export type Channel = 'mqtt' | 'serial';

/** What the uplinks report: a device was heard, with what it said about itself. */
export interface PresenceSink {
  heard(deviceId: string, seen: { battery?: number | undefined; rssi?: number | undefined; fw?: string | undefined }, at: number, via: Channel): void;
  /** The device's status topic said `offline` (its last will, or the device itself). */
  statusOffline(deviceId: string, at: number): void;
}

export interface SupervisorDeps {
  registry: Registry;
  troubles: TroubleBook;
  classes: Record<DeviceType, SupervisionClassConfig>;
  /** A connection lost without DISCONNECT is trouble unless the device is back within this. */
  reconnectGraceMs: number;
  /** Has a live connection now: an MQTT session, or (a receiver) an open port with its dongle. */
  connected: (deviceId: string) => boolean;
  clock: Clock;
  counters: Counters;
  log: Logger;
}

interface Watched extends WheelItem {
  id: string;
  type: DeviceType;
  siteId: string;
  state: SupervisionState;
  /** Why the deadline was brought forward (a lost connection), or null for the heartbeat window. */
  lost: string | null;
  batteryLow: boolean;
  /** The channel last heard on: radio devices have no connection, so "online" is "checked in lately". */
  via: Channel | null;
  online: boolean;
}

/**
 * 50 ms: judging two ticks behind, in slots of one tick, a missed check-in
 * is flagged at most ~0.2 s (plus event-loop lag) after interval + grace; 20
 * ticks a second cost nothing while no deadline is due.
 */
export const TICK_MS = 50;
/** A low-battery trouble clears only this far above the threshold, so a battery hovering at it does not flap. */
const BATTERY_HYSTERESIS = 5;
/** Troubles about a device that a revocation clears: a revoked device protects no one and is not watched. */
const DEVICE_KINDS: TroubleKind[] = ['offline', 'receiver-offline', 'low-battery', 'tamper', 'flooding'];

const missedKind = (type: DeviceType): TroubleKind => (type === 'rf-receiver' ? 'receiver-offline' : 'offline');
const seconds = (ms: number) => Math.round(ms / 1000);

export class Supervisor implements PresenceSink, PresenceSource {
  private readonly watched = new Map<string, Watched>();
  /** Panic buttons per store site, revoked ones included ("its only button was revoked" is unprotected too). */
  private readonly storeButtons = new Map<string, Watched[]>();
  private readonly presenceListeners = new Set<(change: PresenceChange) => void>();
  private wheel: DeadlineWheel<Watched>;
  private timer: NodeJS.Timeout | null = null;
  /** Start times of the last two ticks: [before last, last]. */
  private ticks: [number, number];

  constructor(private readonly deps: SupervisorDeps) {
    // Replaced by start(), which knows the time.
    this.wheel = new DeadlineWheel(TICK_MS, 0);
    this.ticks = [0, 0];
  }

  /**
   * Watches every registered device. One heard before gets a whole window
   * from now to check in again (it could not while the gateway was down);
   * troubles still open from the last run keep their devices flagged.
   */
  start(): void {
    const now = this.deps.clock.now();
    this.wheel = new DeadlineWheel(TICK_MS, now);
    this.ticks = [now, now];
    for (const device of this.deps.registry.allDevices()) {
      const w = this.watch(device.id);
      if (!w || w.state === 'revoked') continue;
      if (this.deps.troubles.isOpen(missedKind(w.type), { deviceId: w.id })) w.state = 'missed';
      else if (device.lastSeen !== null) this.checkIn(w, now);
    }
    for (const siteId of this.storeButtons.keys()) this.judgeSite(siteId);
    this.scheduleTick();
    this.deps.log.info({ devices: this.watched.size, onWheel: this.wheel.size, tickMs: TICK_MS }, `supervising ${this.watched.size} devices`);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  // ---- what the uplinks and the broker report ----

  heard(deviceId: string, seen: { battery?: number | undefined; rssi?: number | undefined; fw?: string | undefined }, at: number, via: Channel): void {
    this.deps.registry.notePresence(deviceId, seen, at);
    const w = this.watched.get(deviceId) ?? this.watch(deviceId);
    if (!w || w.state === 'revoked') return;
    w.via = via;
    const wasMissed = w.state === 'missed';
    const wasPending = w.state === 'pending';
    this.checkIn(w, at);
    if (seen.battery !== undefined) this.judgeBattery(w, seen.battery);
    if (wasMissed) {
      this.deps.troubles.clear(missedKind(w.type), { deviceId }, `checked in again over ${via}`);
      this.deps.counters.inc('supervision_restores_total', { type: w.type });
    }
    if (wasMissed || wasPending) this.judgeSite(w.siteId);
    if (!w.online) this.notePresence(w);
  }

  statusOffline(deviceId: string, at: number): void {
    const w = this.watched.get(deviceId);
    if (w) this.connectionLost(w, 'its status topic said offline (its last will, or the device itself)', at);
  }

  /** An MQTT session opened: a check-in. */
  connected(deviceId: string, at: number): void {
    this.heard(deviceId, {}, at, 'mqtt');
  }

  /** An MQTT session ended; `reason` null = the device sent DISCONNECT. */
  disconnected(deviceId: string, reason: string | null, at: number): void {
    const w = this.watched.get(deviceId);
    if (!w) return;
    if (reason !== null) this.connectionLost(w, `MQTT connection lost (${reason})`, at);
    this.notePresence(w);
  }

  /** A receiver's port went down or came back (the dongle's own supervision is its health lines). */
  receiverPortChanged(receiverId: string | null): void {
    const w = receiverId === null ? undefined : this.watched.get(receiverId);
    if (w) this.notePresence(w);
  }

  /** The serial bridge's receiver-offline trouble: the port has been down longer than its threshold. */
  receiverDown(receiverId: string | null, port: string, detail: string): void {
    const w = receiverId === null ? undefined : this.watched.get(receiverId) ?? this.watch(receiverId);
    if (!w || w.state === 'revoked') {
      this.deps.troubles.raise('receiver-offline', { port }, detail);
      return;
    }
    this.flag(w, detail);
  }

  /** The port is open again: a port-level trouble clears; a receiver's own clears when it speaks. */
  receiverPortUp(port: string): void {
    this.deps.troubles.clear('receiver-offline', { port }, 'port open again');
  }

  /** Tamper alerts are troubles until a dispatcher resolves them (the check-in itself came through the uplink). */
  alertChanged(change: AlertChange): void {
    const { alert } = change;
    if (alert.type !== 'tamper') return;
    if (change.kind === 'received') this.deps.troubles.raise('tamper', { deviceId: alert.deviceId }, `tamper event (seq ${alert.seq}, alert ${alert.id})`);
    else if (change.kind === 'resolved') this.deps.troubles.clear('tamper', { deviceId: alert.deviceId }, `tamper alert ${alert.id} resolved by ${alert.resolvedBy ?? 'a dispatcher'}`);
  }

  /** A revoked device is no longer watched; its troubles clear, and its store may be left unprotected. */
  revoked(deviceId: string): void {
    const w = this.watched.get(deviceId) ?? this.watch(deviceId);
    if (!w) return;
    w.state = 'revoked';
    this.wheel.remove(w);
    for (const kind of DEVICE_KINDS) this.deps.troubles.clear(kind, { deviceId }, 'device revoked');
    this.judgeSite(w.siteId);
    this.notePresence(w);
  }

  // ---- what the API and the dashboard read ----

  online(deviceId: string): boolean {
    const w = this.watched.get(deviceId);
    return w ? this.isOnline(w) : this.deps.connected(deviceId);
  }

  onPresence(listener: (change: PresenceChange) => void): () => void {
    this.presenceListeners.add(listener);
    return () => this.presenceListeners.delete(listener);
  }

  /** The supervision part of GET /api/devices/:id. */
  describe(deviceId: string) {
    const device = this.deps.registry.device(deviceId);
    if (!device) return null;
    const cls = this.deps.classes[device.type];
    const w = this.watched.get(deviceId);
    const state: SupervisionState = device.revokedAt !== null ? 'revoked' : w?.state ?? 'pending';
    return {
      state, intervalSec: cls.intervalSec, graceSec: cls.graceSec, lowBatteryPercent: cls.lowBatteryPercent,
      checkInDueBy: state === 'ok' && w ? new Date(w.deadline).toISOString() : null,
      troubles: this.deps.troubles.openFor(deviceId),
    };
  }

  /** Devices on the wheel (for the benchmark and /healthz). */
  status(): { devices: number; onWheel: number; missed: number } {
    let missed = 0;
    for (const w of this.watched.values()) if (w.state === 'missed') missed++;
    return { devices: this.watched.size, onWheel: this.wheel.size, missed };
  }

  // ---- internals ----

  private watch(deviceId: string): Watched | undefined {
    const device = this.deps.registry.device(deviceId);
    if (!device) return undefined;
    const w: Watched = {
      id: device.id, type: device.type, siteId: device.siteId, deadline: 0, slot: -1, lost: null,
      state: device.revokedAt !== null ? 'revoked' : 'pending',
      batteryLow: this.deps.troubles.isOpen('low-battery', { deviceId }), via: null, online: false,
    };
    this.watched.set(deviceId, w);
    if (w.type === 'panic-button' && this.deps.registry.site(w.siteId)?.kind === 'store') {
      const list = this.storeButtons.get(w.siteId);
      if (list) list.push(w);
      else this.storeButtons.set(w.siteId, [w]);
    }
    return w;
  }

  private windowMs(w: Watched): number {
    const cls = this.deps.classes[w.type];
    return (cls.intervalSec + cls.graceSec) * 1000;
  }

  private checkIn(w: Watched, at: number): void {
    w.state = 'ok';
    w.lost = null;
    w.deadline = at + this.windowMs(w);
    // A later deadline needs no wheel work: the item is re-slotted when its old slot comes due.
    if (w.slot === -1) this.wheel.schedule(w);
  }

  private connectionLost(w: Watched, reason: string, at: number): void {
    if (w.state !== 'ok') return;
    const deadline = at + this.deps.reconnectGraceMs;
    if (deadline >= w.deadline) return;
    w.lost = reason;
    w.deadline = deadline;
    this.wheel.schedule(w);
  }

  private scheduleTick(): void {
    this.timer = setTimeout(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  private tick(): void {
    const now = this.deps.clock.now();
    // Data that reached the socket before the tick before last has been through at least one
    // poll phase since, even if the loop stalled in between: judging up to then never flags a
    // device whose heartbeat is still unread in a buffer.
    const judgeUpTo = this.ticks[0];
    this.ticks = [this.ticks[1], now];
    try {
      this.wheel.expire(judgeUpTo, (w) => this.expired(w, now));
    } catch (err) {
      this.deps.log.error({ err }, 'supervision tick failed');
    }
    this.scheduleTick();
  }

  private expired(w: Watched, now: number): void {
    if (w.state !== 'ok') return;
    const cls = this.deps.classes[w.type];
    const lastSeen = this.deps.registry.device(w.id)?.lastSeen ?? null;
    const silent = lastSeen === null ? '' : `, last heard ${seconds(now - lastSeen)} s ago`;
    const detail = w.lost
      ? `${w.lost}, not back within ${seconds(this.deps.reconnectGraceMs)} s${silent}`
      : `missed its check-in: no message for ${cls.intervalSec + cls.graceSec} s (interval ${cls.intervalSec} s + grace ${cls.graceSec} s)${silent}`;
    this.deps.counters.inc('supervision_missed_total', { type: w.type, reason: w.lost ? 'connection-lost' : 'check-in' });
    this.flag(w, detail);
  }

  private flag(w: Watched, detail: string): void {
    this.wheel.remove(w);
    w.state = 'missed';
    w.lost = null;
    this.deps.troubles.raise(missedKind(w.type), { deviceId: w.id }, detail);
    this.judgeSite(w.siteId);
    this.notePresence(w);
  }

  private judgeBattery(w: Watched, battery: number): void {
    const threshold = this.deps.classes[w.type].lowBatteryPercent;
    if (threshold === null) return;
    if (!w.batteryLow && battery <= threshold) {
      w.batteryLow = true;
      this.deps.troubles.raise('low-battery', { deviceId: w.id }, `battery ${battery} %, at or below the ${w.type} threshold of ${threshold} %`);
    } else if (w.batteryLow && battery > threshold + BATTERY_HYSTERESIS) {
      w.batteryLow = false;
      this.deps.troubles.clear('low-battery', { deviceId: w.id }, `battery ${battery} %`);
    }
  }

  /** A store is unprotected while none of its panic buttons can be pressed: all offline, or all revoked. */
  private judgeSite(siteId: string): void {
    const buttons = this.storeButtons.get(siteId);
    if (!buttons) return;
    const active = buttons.filter((b) => b.state !== 'revoked');
    if (active.length > 0 && active.some((b) => b.state !== 'missed')) {
      this.deps.troubles.clear('unprotected', { siteId }, 'a panic button is back');
      return;
    }
    const detail = active.length === 0 ? 'every panic button of this store is revoked'
      : active.length === 1 ? `its only panic button ${active[0]!.id} is offline`
      : `all ${active.length} of its panic buttons are offline`;
    this.deps.troubles.raise('unprotected', { siteId }, detail);
  }

  /** A device that missed its check-in is offline even while it holds a session: it is not heard. */
  private isOnline(w: Watched): boolean {
    if (w.state === 'revoked' || w.state === 'missed') return false;
    return this.deps.connected(w.id) || (w.via === 'serial' && w.type !== 'rf-receiver' && w.state === 'ok');
  }

  private notePresence(w: Watched): void {
    const online = this.isOnline(w);
    if (online === w.online) return;
    w.online = online;
    const change: PresenceChange = { deviceId: w.id, online, lastSeen: this.deps.registry.device(w.id)?.lastSeen ?? null };
    for (const listener of this.presenceListeners) {
      try {
        listener(change);
      } catch (err) {
        this.deps.log.error({ err, deviceId: w.id }, 'presence listener failed');
      }
    }
  }
}
