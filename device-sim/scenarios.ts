// The simulator's decisions, kept pure so unit tests can check them: which
// devices exist, when each heartbeats, who presses when, which connections a
// flaky network cuts, how far a wrong clock is off, how long a device waits
// before reconnecting. All randomness comes from a seeded generator, so a run
// can be repeated exactly.
import { type DeviceType, type EventType, type Site } from '../protocol/index.ts';
import { demoSecret } from '../gateway/registry/demo-credentials.ts';
import { generateDemoSites, mulberry32 } from '../gateway/registry/demo-registry.ts';
import { demoDeviceIds } from '../gateway/registry/seed.ts';

export const SCENARIOS = ['steady', 'burst', 'reconnect-storm', 'flaky', 'clock-skew'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Supervision class: how often a device must be heard from. Stores' buttons and homes' sensors are supervised apart. */
export type SupervisionClass = Site['kind'];

export interface SimDeviceSpec {
  id: string;
  type: DeviceType;
  supervision: SupervisionClass;
  secret: string;
}

/** What a device sends when it trips; an alarm bell is an output and never trips. */
export const TRIP_TYPE: Record<DeviceType, EventType | null> = {
  'panic-button': 'panic',
  'motion-sensor': 'intrusion',
  'door-sensor': 'door',
  'alarm-bell': null,
  'rf-receiver': null,
};

/** The demo registry's seeded generator (mulberry32), for repeatable runs (nothing secret). */
export const seededRandom: (seed: number) => () => number = mulberry32;

/**
 * The demo registry's devices (the gateway seeds the same ones from the same
 * counts and seed), stores first, each with its secret derived from the
 * install's demo key. `limit` keeps the first N.
 */
export function demoFleet(opts: { stores: number; homes: number; seed?: number; demoKey: Buffer; limit?: number }): SimDeviceSpec[] {
  const sites = generateDemoSites({ stores: opts.stores, homes: opts.homes, seed: opts.seed ?? 1 });
  const specs: SimDeviceSpec[] = [];
  for (const site of sites) {
    for (const d of demoDeviceIds(site)) {
      if (opts.limit !== undefined && specs.length >= opts.limit) return specs;
      specs.push({ id: d.id, type: d.type, supervision: site.kind, secret: demoSecret(opts.demoKey, d.id) });
    }
  }
  return specs;
}

/**
 * When each device of one supervision class heartbeats: the class's interval,
 * with the members spread evenly over it (as devices powered on at random
 * times would be), so the gateway sees a steady rate, not one spike per
 * interval. `due(from, to)` lists the members whose slot falls in [from, to).
 */
export class HeartbeatWheel {
  private readonly offsets: number[];
  private readonly intervalMs: number;

  constructor(intervalSec: number, readonly members: readonly number[]) {
    this.intervalMs = intervalSec * 1000;
    this.offsets = members.map((_, k) => Math.floor((k * this.intervalMs) / members.length));
  }

  get interval(): number {
    return this.intervalMs;
  }

  due(fromMs: number, toMs: number): number[] {
    const out: number[] = [];
    if (toMs <= fromMs || this.members.length === 0) return out;
    if (toMs - fromMs >= this.intervalMs) return [...this.members];
    const a = fromMs % this.intervalMs;
    const b = a + (toMs - fromMs);
    // The window [a, b) may wrap past the interval's end.
    for (let k = 0; k < this.offsets.length; k++) {
      const o = this.offsets[k]!;
      if ((o >= a && o < b) || (b > this.intervalMs && o < b - this.intervalMs)) out.push(this.members[k]!);
    }
    return out;
  }
}

/** Devices that can trip (have a trip type), in fleet order. */
export function trippable(devices: readonly SimDeviceSpec[]): number[] {
  return devices.flatMap((d, i) => (TRIP_TYPE[d.type] ? [i] : []));
}

/**
 * A burst: `count` presses at once, from distinct devices as long as there
 * are enough; beyond that devices press again (each press a new seq).
 */
export function burstPlan(candidates: readonly number[], count: number): number[] {
  if (candidates.length === 0) return [];
  return Array.from({ length: count }, (_, k) => candidates[k % candidates.length]!);
}

/** Gap to the next press of a steady night: Poisson arrivals at `perSec`. */
export function nextArrivalMs(perSec: number, random: () => number): number {
  if (perSec <= 0) return Infinity;
  return (-Math.log(1 - random()) / perSec) * 1000;
}

/**
 * A wrong device clock: for `fraction` of devices, off by 6 minutes to a day,
 * early or late (beyond the gateway's 5-minute skew limit, so those presses
 * must arrive with `clockSkew: true` and the receive time); 0 for the rest.
 */
export function clockSkewMs(fraction: number, random: () => number): number {
  if (random() >= fraction) return 0;
  const magnitude = 6 * 60_000 + Math.floor(random() * (24 * 3_600_000 - 6 * 60_000));
  return random() < 0.5 ? -magnitude : magnitude;
}

/** Reconnect delay after a drop: exponential from `baseMs`, capped, with full jitter so a storm spreads out. */
export function reconnectDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 20));
  return Math.floor(random() * ceiling);
}

/**
 * A flaky link, per message: it may be lost (a QoS 0 heartbeat simply never
 * arrives; a QoS 1 event is cut with its connection before the PUBACK, so
 * the device resends it on reconnect), or the connection may drop outright.
 */
export interface FlakyPolicy {
  /** Chance that a message is lost. */
  lossRate: number;
  /** Chance per device per second that its connection drops. */
  dropPerSec: number;
}

export type LinkFate = 'deliver' | 'lose';

export function linkFate(policy: FlakyPolicy | null, random: () => number): LinkFate {
  return policy && random() < policy.lossRate ? 'lose' : 'deliver';
}

/** How many of `connected` devices drop in a tick of `tickMs`, in expectation, rounded by chance. */
export function dropsThisTick(policy: FlakyPolicy | null, connected: number, tickMs: number, random: () => number): number {
  if (!policy || policy.dropPerSec <= 0) return 0;
  const expected = connected * policy.dropPerSec * (tickMs / 1000);
  const whole = Math.floor(expected);
  return whole + (random() < expected - whole ? 1 : 0);
}

/**
 * Seqs must keep increasing per device across runs (the gateway refuses an
 * event at or below the device's highest): start from the wall clock in
 * microseconds-ish, far below 2^53 for centuries.
 */
export function initialSeq(nowMs: number): number {
  return nowMs * 1000;
}
