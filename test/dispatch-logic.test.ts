import { describe, it, expect } from 'vitest';
import type { Logger } from 'pino';
import pino from 'pino';
import { CircuitBreaker } from '../gateway/dispatch/circuit-breaker.ts';
import { retryDelay } from '../gateway/dispatch/dispatcher.ts';
import { ReadyQueue, type ReadyEntry } from '../gateway/dispatch/ready-queue.ts';
import { RouteTable, DEFAULT_ROUTE } from '../gateway/dispatch/route-table.ts';
import { LogThrottle } from '../gateway/log-throttle.ts';
import { Counters } from '../gateway/metrics/counters.ts';

describe('retryDelay', () => {
  const BASE = 500;
  const MAX = 30_000;
  const ceiling = (attempt: number) => Math.min(MAX, BASE * 2 ** (attempt - 1));
  const fixed = (value: number) => () => value;

  it('doubles with each attempt until it reaches the cap', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((attempt) => retryDelay(attempt, BASE, MAX, fixed(1)));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  });

  it('stays at the cap for huge attempt numbers', () => {
    expect(retryDelay(10_000, BASE, MAX, fixed(1))).toBe(MAX);
  });

  it.each([0, 0.001, 0.25, 0.5, 0.999, 1])('stays within [ceiling/2, ceiling] for random()=%d', (r) => {
    for (let attempt = 1; attempt <= 40; attempt++) {
      const delay = retryDelay(attempt, BASE, MAX, fixed(r));
      expect(delay).toBeGreaterThanOrEqual(Math.floor(ceiling(attempt) / 2));
      expect(delay).toBeLessThanOrEqual(ceiling(attempt));
    }
  });

  it('is deterministic for an injected random', () => {
    expect(retryDelay(3, BASE, MAX, fixed(0.3))).toBe(retryDelay(3, BASE, MAX, fixed(0.3)));
    expect(retryDelay(3, BASE, MAX, fixed(0))).toBe(1000);
    expect(retryDelay(3, BASE, MAX, fixed(0.5))).toBe(1500);
  });
});

describe('ReadyQueue', () => {
  const entry = (id: string, priority: number) => ({ key: `${id}:primary`, row: { alertId: id, priority }, alert: { id } }) as unknown as ReadyEntry;
  const drain = (q: ReadyQueue) => {
    const out: string[] = [];
    for (let e = q.shift(); e; e = q.shift()) out.push(e.row.alertId);
    return out;
  };

  it('gives the most severe first, and the oldest first within a priority', () => {
    const q = new ReadyQueue(10);
    for (const [id, p] of [['t1', 10], ['p1', 100], ['d1', 80], ['p2', 100], ['t2', 10]] as const) expect(q.push(entry(id, p))).toBe(true);
    expect(q.size).toBe(5);
    expect(drain(q)).toEqual(['p1', 'p2', 'd1', 't1', 't2']);
    expect(q.size).toBe(0);
  });

  it('refuses past its bound and a key it already holds, and forgets a key once shifted', () => {
    const q = new ReadyQueue(2);
    expect(q.push(entry('a', 1))).toBe(true);
    expect(q.push(entry('a', 1))).toBe(false);
    expect(q.push(entry('b', 1))).toBe(true);
    expect(q.push(entry('c', 1))).toBe(false);
    expect(q.has('a:primary')).toBe(true);
    q.shift();
    expect(q.has('a:primary')).toBe(false);
    expect(q.push(entry('c', 1))).toBe(true);
    expect(drain(q)).toEqual(['b', 'c']);
  });

  it('skips an entry dropped while it waited, also when its key is queued again', () => {
    const q = new ReadyQueue(10);
    q.push(entry('a', 1));
    q.push(entry('b', 1));
    q.drop('a:primary');
    expect(q.size).toBe(1);
    expect(q.has('a:primary')).toBe(false);
    q.push(entry('a', 1));
    expect(drain(q)).toEqual(['b', 'a']);
  });

  it('keeps its order through a long burst (the consumed front is dropped as it goes)', () => {
    const q = new ReadyQueue(10_000);
    const out: string[] = [];
    for (let i = 0; i < 5000; i++) {
      q.push(entry(`a${i}`, 1));
      if (i % 2 === 1) out.push(q.shift()!.row.alertId);
    }
    out.push(...drain(q));
    expect(out).toEqual(Array.from({ length: 5000 }, (_, i) => `a${i}`));
  });
});

describe('RouteTable', () => {
  const DEFAULT_SECRET = 'default-secret-0123456789';
  const DISTRICT_SECRET = 'district-secret-0123456789';
  const table = new RouteTable({ url: 'http://default.example/', secret: DEFAULT_SECRET, format: 'json' }, [
    // District first in the config: the station route must still win for its station.
    { match: 'Gangnam-gu', url: 'http://district.example/', secret: DISTRICT_SECRET, format: 'json' },
    { match: 'Gangnam Police Station', url: 'http://station.example/', fallbackUrl: 'http://station-backup.example/', format: 'cap' },
  ]);

  it.each([
    ['station match', { policeStation: 'Gangnam Police Station', district: 'Gangnam-gu' }, 'Gangnam Police Station'],
    ['district match', { policeStation: 'Suseo Police Station', district: 'Gangnam-gu' }, 'Gangnam-gu'],
    ['no match', { policeStation: 'Mapo Police Station', district: 'Mapo-gu' }, DEFAULT_ROUTE],
  ] as const)('routes by %s', (_label, site, name) => {
    expect(table.routeFor(site).name).toBe(name);
  });

  it('gives a route without its own secret the default secret', () => {
    expect(table.byName('Gangnam Police Station').secret).toBe(DEFAULT_SECRET);
    expect(table.byName('Gangnam-gu').secret).toBe(DISTRICT_SECRET);
  });

  it('falls back to the default route for a route name no longer configured', () => {
    expect(table.byName('Removed Police Station')).toEqual({ name: DEFAULT_ROUTE, url: 'http://default.example/', secret: DEFAULT_SECRET, format: 'json' });
  });

  it('describes every route without any secret', () => {
    const described = table.describe();
    expect(described).toEqual([
      { name: DEFAULT_ROUTE, url: 'http://default.example/', format: 'json' },
      { name: 'Gangnam-gu', url: 'http://district.example/', format: 'json' },
      { name: 'Gangnam Police Station', url: 'http://station.example/', fallbackUrl: 'http://station-backup.example/', format: 'cap' },
    ]);
    const text = JSON.stringify(described);
    expect(text).not.toContain(DEFAULT_SECRET);
    expect(text).not.toContain(DISTRICT_SECRET);
    expect(text).not.toContain('secret');
  });
});

describe('LogThrottle', () => {
  const WINDOW = 1000;

  function setup() {
    const calls: Array<[Record<string, unknown>, string]> = [];
    const log = { warn: (obj: Record<string, unknown>, msg: string) => { calls.push([obj, msg]); } } as unknown as Logger;
    const clock = { t: 0 };
    return { calls, clock, throttle: new LogThrottle(log, WINDOW, () => clock.t) };
  }

  it('logs the first occurrence in full', () => {
    const { calls, throttle } = setup();
    throttle.warn('bad-json:pb-1', { deviceId: 'pb-1' }, 'bad payload');
    expect(calls).toEqual([[{ deviceId: 'pb-1' }, 'bad payload']]);
  });

  it('suppresses repeats within the window and reports their number after it', () => {
    const { calls, clock, throttle } = setup();
    throttle.warn('k', { n: 1 }, 'm');
    clock.t = 1;
    throttle.warn('k', { n: 2 }, 'm');
    clock.t = WINDOW - 1;
    throttle.warn('k', { n: 3 }, 'm');
    expect(calls).toHaveLength(1);

    clock.t = WINDOW;
    const obj = { n: 4 };
    throttle.warn('k', obj, 'm');
    expect(calls).toEqual([[{ n: 1 }, 'm'], [{ n: 4, suppressedSinceLast: 2 }, 'm']]);
    expect(obj).toEqual({ n: 4 }); // the caller's object is not modified
  });

  it('does not add suppressedSinceLast when nothing was suppressed', () => {
    const { calls, clock, throttle } = setup();
    throttle.warn('k', {}, 'm');
    clock.t = 5 * WINDOW;
    throttle.warn('k', {}, 'm');
    expect(calls).toEqual([[{}, 'm'], [{}, 'm']]);
  });

  it('throttles each key on its own', () => {
    const { calls, throttle } = setup();
    throttle.warn('a', {}, 'a');
    throttle.warn('b', {}, 'b');
    throttle.warn('a', {}, 'a');
    expect(calls.map(([, msg]) => msg)).toEqual(['a', 'b']);
  });
});

describe('Counters', () => {
  it('increments by one or by a given amount, and reads 0 for an unknown counter', () => {
    const c = new Counters();
    c.inc('x_total');
    c.inc('x_total', undefined, 4);
    expect(c.get('x_total')).toBe(5);
    expect(c.get('never_total')).toBe(0);
  });

  it('keeps label sets apart, whatever the order of the labels', () => {
    const c = new Counters();
    c.inc('refused_total', { reason: 'a', channel: 'event' });
    c.inc('refused_total', { channel: 'event', reason: 'a' });
    c.inc('refused_total', { reason: 'b', channel: 'event' });
    expect(c.get('refused_total', { channel: 'event', reason: 'a' })).toBe(2);
    expect(c.get('refused_total', { reason: 'b', channel: 'event' })).toBe(1);
    expect(c.get('refused_total')).toBe(0);
  });

  it('counts through a prepared counter into the same label set as inc', () => {
    const c = new Counters();
    const heartbeats = c.counter('messages_total', { channel: 'heartbeat' });
    heartbeats();
    heartbeats(2);
    c.inc('messages_total', { channel: 'heartbeat' });
    expect(c.get('messages_total', { channel: 'heartbeat' })).toBe(4);
    expect(c.total('messages_total')).toBe(4);
  });

  it('totals every label set of one counter and nothing of a counter with a longer name', () => {
    const c = new Counters();
    c.inc('auth_total');
    c.inc('auth_total', { reason: 'a' }, 2);
    c.inc('auth_total', { reason: 'b' }, 3);
    c.inc('auth_total_extra', undefined, 100);
    expect(c.total('auth_total')).toBe(6);
  });

  it('snapshots in Prometheus-like keys, sorted, with unsafe label characters replaced', () => {
    const c = new Counters();
    c.inc('b_total', { z: '1', a: 'say "hi"\n' });
    c.inc('a_total');
    expect(c.snapshot()).toEqual({ a_total: 1, 'b_total{a="say _hi__",z="1"}': 1 });
    expect(Object.keys(c.snapshot())).toEqual(['a_total', 'b_total{a="say _hi__",z="1"}']);
  });
});

describe('CircuitBreaker', () => {
  const URL_A = 'http://a.example/';
  function setup() {
    let now = 1_000_000;
    const clock = { now: () => now };
    const breaker = new CircuitBreaker({ failureThreshold: 3, openBaseMs: 500, openMaxMs: 2000 }, clock, pino({ level: 'silent' }));
    return { breaker, advance: (ms: number) => (now += ms), at: () => now };
  }

  it('stays closed through fewer failures than the threshold', () => {
    const { breaker } = setup();
    breaker.failure(URL_A, 'HTTP 503');
    breaker.failure(URL_A, 'HTTP 503');
    expect(breaker.allow(URL_A)).toBe(true);
    expect(breaker.failing()).toEqual([URL_A]);
  });

  it('opens at the threshold, lets exactly one probe through when the open period ends, and doubles the period on a failed probe', () => {
    const { breaker, advance, at } = setup();
    for (let i = 0; i < 3; i++) breaker.failure(URL_A, 'HTTP 503');
    expect(breaker.allow(URL_A)).toBe(false);
    expect(breaker.nextProbeAt()).toBe(at() + 500);
    advance(500);
    expect(breaker.probesDue()).toEqual([URL_A]);
    expect(breaker.allow(URL_A)).toBe(true);
    expect(breaker.allow(URL_A)).toBe(false);
    breaker.failure(URL_A, 'timeout');
    expect(breaker.nextProbeAt()).toBe(at() + 1000);
    advance(1000);
    expect(breaker.allow(URL_A)).toBe(true);
    breaker.failure(URL_A, 'timeout');
    expect(breaker.nextProbeAt()).toBe(at() + 2000);
    advance(2000);
    expect(breaker.allow(URL_A)).toBe(true);
    breaker.failure(URL_A, 'timeout');
    expect(breaker.nextProbeAt()).toBe(at() + 2000);
  });

  it('closes on a successful probe and says the outage is over, once', () => {
    const { breaker, advance } = setup();
    for (let i = 0; i < 3; i++) breaker.failure(URL_A, 'HTTP 503');
    advance(500);
    expect(breaker.allow(URL_A)).toBe(true);
    expect(breaker.success(URL_A)).toBe(true);
    expect(breaker.allow(URL_A)).toBe(true);
    expect(breaker.success(URL_A)).toBe(false);
    expect(breaker.failing()).toEqual([]);
    expect(breaker.report()[0]).toMatchObject({ phase: 'closed', consecutiveFailures: 0 });
  });
});
