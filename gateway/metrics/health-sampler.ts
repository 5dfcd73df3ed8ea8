// The `gateway` and `device_health` series, sampled at a fixed interval.
//
// device_health is aggregated per (type, district), not written per device:
// 10,000 devices would be 10,000 series and 10,000 points an interval, while
// the aggregate is at most 5 types × 25 districts = 125 of each; which device
// is weak or silent is for the registry (/api/devices), not for InfluxDB.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Site } from '../../protocol/index.ts';
import type { Clock } from '../clock.ts';
import type { DeviceRecord } from '../store/registry-repo.ts';
import type { Counters } from './counters.ts';
import type { InfluxPoint } from './influx-client.ts';
import { nanos } from './points.ts';

export interface HealthSources {
  connectedDevices(): number;
  isOnline(deviceId: string): boolean;
  devices(): Iterable<DeviceRecord>;
  site(siteId: string): Site | undefined;
  openAlerts(): number;
  outboxDepth(): number;
  /** Points waiting for InfluxDB, and points dropped so far. */
  metricsBacklog(): { buffered: number; dropped: number };
}

export interface HealthSamplerDeps {
  sources: HealthSources;
  counters: Counters;
  clock: Clock;
  log: Logger;
  emit: (points: InfluxPoint[]) => void;
}

export interface HealthSamplerOptions {
  intervalMs: number;
  /** The interval devices are told to send heartbeats at: a device silent for 3 of them is stale. */
  heartbeatSec: number;
}

/** Devices summarised between two yields to the event loop: a big registry never holds it for long. */
const DEVICES_PER_TURN = 500;
const STALE_HEARTBEATS = 3;
const LOW_BATTERY_PERCENT = 20;
const LOOP_RESOLUTION_MS = 10;

/** The histogram holds the time between its own timer ticks, in ns: the lag is what exceeds the tick. */
const lagMs = (ns: number) => Math.max(0, Math.round((ns / 1e6 - LOOP_RESOLUTION_MS) * 100) / 100);

interface DeviceGroup {
  devices: number;
  online: number;
  neverSeen: number;
  stale: number;
  lowBattery: number;
  battery: number[];
  rssi: number[];
  gapSec: number[];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** min/mean/max of what the devices reported; no field at all when none reported it. */
function spread(name: string, xs: number[]): Record<string, number> {
  if (xs.length === 0) return {};
  return { [`${name}_min`]: Math.min(...xs), [`${name}_mean`]: Math.round(mean(xs) * 10) / 10, [`${name}_max`]: Math.max(...xs) };
}

export class HealthSampler {
  private timer: NodeJS.Timeout | null = null;
  private loopDelay: IntervalHistogram | null = null;
  private sampling = false;
  private lastMessages = 0;
  private lastAt = 0;

  constructor(private readonly deps: HealthSamplerDeps, private readonly opts: HealthSamplerOptions) {}

  start(): void {
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.loopDelay.enable();
    this.lastMessages = this.deps.counters.total('device_messages_total');
    this.lastAt = this.deps.clock.now();
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.loopDelay?.disable();
    this.loopDelay = null;
  }

  /** One sample of both series; public so tests need not wait for the interval. */
  async sample(): Promise<InfluxPoint[]> {
    const now = this.deps.clock.now();
    return [this.gatewayPoint(now), ...(await this.devicePoints(now))];
  }

  private async tick(): Promise<void> {
    // A slow sample (a huge registry on a busy machine) is skipped, never stacked.
    if (this.sampling) return;
    this.sampling = true;
    try {
      this.deps.emit(await this.sample());
    } catch (err) {
      this.deps.log.error({ err }, 'health sample failed');
    } finally {
      this.sampling = false;
    }
  }

  private gatewayPoint(now: number): InfluxPoint {
    const { sources, counters } = this.deps;
    const messages = counters.total('device_messages_total');
    const seconds = Math.max(0.001, (now - this.lastAt) / 1000);
    const perSecond = Math.round(((messages - this.lastMessages) / seconds) * 100) / 100;
    this.lastMessages = messages;
    this.lastAt = now;
    const backlog = sources.metricsBacklog();
    const fields: Record<string, number> = {
      connected_devices: sources.connectedDevices(),
      messages_per_s: perSecond,
      open_alerts: sources.openAlerts(),
      outbox_depth: sources.outboxDepth(),
      metrics_buffered: backlog.buffered,
      metrics_dropped: backlog.dropped,
    };
    const delay = this.loopDelay;
    if (delay && delay.count > 0) {
      // What a timer or an incoming packet waited beyond its turn.
      fields.event_loop_lag_mean_ms = lagMs(delay.mean);
      fields.event_loop_lag_p99_ms = lagMs(delay.percentile(99));
      fields.event_loop_lag_max_ms = lagMs(delay.max);
      delay.reset();
    }
    return { measurement: 'gateway', tags: {}, fields, timestamp: nanos(now) };
  }

  private async devicePoints(now: number): Promise<InfluxPoint[]> {
    const { sources } = this.deps;
    const staleMs = STALE_HEARTBEATS * this.opts.heartbeatSec * 1000;
    const groups = new Map<string, DeviceGroup & { type: string; district: string }>();
    let seen = 0;
    for (const device of sources.devices()) {
      if (device.revokedAt !== null) continue;
      if (++seen % DEVICES_PER_TURN === 0) await yieldToEventLoop();
      const district = sources.site(device.siteId)?.district ?? 'unknown';
      const key = `${device.type}\n${district}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { type: device.type, district, devices: 0, online: 0, neverSeen: 0, stale: 0, lowBattery: 0, battery: [], rssi: [], gapSec: [] }));
      g.devices++;
      if (sources.isOnline(device.id)) g.online++;
      if (device.battery !== null) {
        g.battery.push(device.battery);
        if (device.battery < LOW_BATTERY_PERCENT) g.lowBattery++;
      }
      if (device.rssi !== null) g.rssi.push(device.rssi);
      if (device.lastSeen === null) g.neverSeen++;
      else {
        g.gapSec.push((now - device.lastSeen) / 1000);
        if (now - device.lastSeen > staleMs) g.stale++;
      }
    }
    return [...groups.values()].map((g) => ({
      measurement: 'device_health',
      tags: { type: g.type, district: g.district },
      fields: {
        devices: g.devices, online: g.online, never_seen: g.neverSeen, stale: g.stale, low_battery: g.lowBattery,
        ...spread('battery', g.battery), ...spread('rssi', g.rssi), ...spread('heartbeat_gap_s', g.gapSec.map(Math.round)),
      },
      timestamp: nanos(now),
    }));
  }
}
