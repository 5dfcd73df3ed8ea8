// The simulator's own logic, without sockets: heartbeat spreading, press
// plans, clock skews, reconnect backoff, the flaky link, the demo fleet and
// the counting of presses.
import { describe, expect, it } from 'vitest';
import { generateDemoSites } from '../gateway/registry/demo-registry.ts';
import { demoSecret } from '../gateway/registry/demo-credentials.ts';
import {
  burstPlan, clockSkewMs, demoFleet, dropsThisTick, HeartbeatWheel, initialSeq, linkFate, nextArrivalMs, reconnectDelayMs,
  seededRandom, trippable,
} from '../device-sim/scenarios.ts';
import { SimStats, summarizeLatencies } from '../device-sim/sim-stats.ts';

const KEY = Buffer.alloc(32, 7);

describe('HeartbeatWheel', () => {
  it('sends each member exactly once per interval, spread evenly, across window boundaries and wraps', () => {
    const members = Array.from({ length: 1000 }, (_, i) => i * 3);
    const wheel = new HeartbeatWheel(60, members);
    const seen = new Map<number, number>();
    let perSecond: number[] = [];
    // Two intervals in uneven 137 ms ticks.
    for (let t = 0; t < 120_000; t += 137) {
      const due = wheel.due(t, Math.min(t + 137, 120_000));
      for (const m of due) seen.set(m, (seen.get(m) ?? 0) + 1);
      perSecond.push(due.length);
    }
    expect(seen.size).toBe(1000);
    expect([...seen.values()].every((n) => n === 2)).toBe(true);
    // Even: no tick carries more than its share plus one.
    expect(Math.max(...perSecond)).toBeLessThanOrEqual(Math.ceil((1000 * 137) / 60_000) + 1);
    perSecond = [];
  });

  it('a window as long as the interval covers everyone once; an empty window nobody', () => {
    const wheel = new HeartbeatWheel(10, [1, 2, 3]);
    expect(wheel.due(5000, 15_000).sort()).toEqual([1, 2, 3]);
    expect(wheel.due(5000, 5000)).toEqual([]);
    expect(new HeartbeatWheel(10, []).due(0, 20_000)).toEqual([]);
  });
});

describe('press plans', () => {
  it('a burst uses distinct devices while there are enough, then presses devices again', () => {
    expect(burstPlan([4, 5, 6], 2)).toEqual([4, 5]);
    expect(burstPlan([4, 5, 6], 7)).toEqual([4, 5, 6, 4, 5, 6, 4]);
    expect(burstPlan([], 5)).toEqual([]);
  });

  it('alarm bells never trip; buttons and sensors do', () => {
    const fleet = demoFleet({ stores: 2, homes: 1, demoKey: KEY });
    expect(fleet.map((d) => d.type)).toEqual(['panic-button', 'panic-button', 'motion-sensor', 'door-sensor', 'alarm-bell']);
    expect(trippable(fleet)).toEqual([0, 1, 2, 3]);
  });

  it('steady arrivals average the rate asked for', () => {
    const random = seededRandom(3);
    let sum = 0;
    for (let i = 0; i < 20_000; i++) sum += nextArrivalMs(50, random);
    expect(sum / 20_000).toBeGreaterThan(18);
    expect(sum / 20_000).toBeLessThan(22);
    expect(nextArrivalMs(0, random)).toBe(Infinity);
  });
});

describe('the demo fleet', () => {
  it('has the gateway demo registry\'s device ids, classes and derivable secrets, stores first; limit keeps the first N', () => {
    const sites = generateDemoSites({ stores: 3, homes: 2 });
    const fleet = demoFleet({ stores: 3, homes: 2, demoKey: KEY });
    expect(fleet).toHaveLength(3 + 2 * 3);
    expect(fleet[0]).toEqual({ id: `pb-${sites[0]!.id}`, type: 'panic-button', supervision: 'store', secret: demoSecret(KEY, `pb-${sites[0]!.id}`) });
    expect(fleet.filter((d) => d.supervision === 'home')).toHaveLength(6);
    expect(new Set(fleet.map((d) => d.id)).size).toBe(fleet.length);
    expect(demoFleet({ stores: 3, homes: 2, demoKey: KEY, limit: 4 }).map((d) => d.id)).toEqual(fleet.slice(0, 4).map((d) => d.id));
  });
});

describe('faults', () => {
  it('a skewed clock is beyond the gateway\'s 5-minute limit, both ways, for about the share asked for', () => {
    const random = seededRandom(9);
    const skews = Array.from({ length: 10_000 }, () => clockSkewMs(0.3, random));
    const off = skews.filter((s) => s !== 0);
    expect(off.length).toBeGreaterThan(2700);
    expect(off.length).toBeLessThan(3300);
    expect(off.every((s) => Math.abs(s) > 5 * 60_000 && Math.abs(s) <= 24 * 3_600_000)).toBe(true);
    expect(off.some((s) => s < 0) && off.some((s) => s > 0)).toBe(true);
    expect(clockSkewMs(0, random)).toBe(0);
  });

  it('reconnect delays grow, stay under the cap and are jittered', () => {
    const random = seededRandom(1);
    const delays = Array.from({ length: 200 }, () => reconnectDelayMs(12, 100, 5000, random));
    expect(Math.max(...delays)).toBeLessThan(5000);
    expect(new Set(delays).size).toBeGreaterThan(150);
    expect(reconnectDelayMs(1, 100, 5000, () => 0.999)).toBeLessThan(100);
  });

  it('a flaky link loses about the share of messages asked for; a healthy one none', () => {
    const random = seededRandom(5);
    const fates = Array.from({ length: 10_000 }, () => linkFate({ lossRate: 0.1, dropPerSec: 0 }, random));
    const lost = fates.filter((f) => f === 'lose').length;
    expect(lost).toBeGreaterThan(800);
    expect(lost).toBeLessThan(1200);
    expect(linkFate(null, random)).toBe('deliver');
  });

  it('drops per tick follow the per-device rate, fractions by chance', () => {
    const random = seededRandom(2);
    let total = 0;
    for (let i = 0; i < 1000; i++) total += dropsThisTick({ lossRate: 0, dropPerSec: 0.01 }, 500, 100, random);
    // 500 devices × 0.01/s × 100 s = 500.
    expect(total).toBeGreaterThan(420);
    expect(total).toBeLessThan(580);
    expect(dropsThisTick(null, 500, 100, random)).toBe(0);
  });

  it('seqs start above any earlier run\'s and stay safe integers for a century', () => {
    expect(initialSeq(2_000)).toBeGreaterThan(initialSeq(1_000) + 999);
    expect(initialSeq(Date.now() + 100 * 365 * 86_400_000)).toBeLessThan(Number.MAX_SAFE_INTEGER);
  });
});

describe('SimStats', () => {
  it('counts each press once however often it is acked or delivered, and names what is outstanding', () => {
    const stats = new SimStats();
    stats.pressed('al-a', 0);
    stats.pressed('al-b', 10);
    stats.pressed('al-a', 50);
    stats.acked('al-a', 2);
    stats.acked('al-a', 3);
    stats.delivered('al-a', 5);
    stats.delivered('al-a', 9);
    stats.delivered('al-x', 9);
    expect(stats.sent).toBe(2);
    expect(stats.ackedTotal).toBe(1);
    expect(stats.deliveredTotal).toBe(1);
    expect(stats.unknownDeliveries).toBe(1);
    expect(stats.outstanding('delivered')).toEqual(['al-b']);
    expect(stats.latency().puback).toMatchObject({ count: 1, p50: 2 });
    expect(stats.table('t')).toMatch(/presses delivered\s+1/);
  });

  it('percentiles by nearest rank', () => {
    const values = Array.from({ length: 1000 }, (_, i) => i + 1);
    expect(summarizeLatencies(values)).toEqual({ count: 1000, p50: 500, p99: 990, p999: 999, max: 1000 });
    expect(summarizeLatencies([])).toEqual({ count: 0, p50: null, p99: null, p999: null, max: null });
  });
});
