// Stage timing from bus events and the two dispatcher marks, on a pinned
// clock; the in-memory window's percentiles; the InfluxQL and the points.
import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Site } from '../protocol/index.ts';
import { Counters } from '../gateway/metrics/counters.ts';
import { latencyInfluxQl, parseLatencyResult } from '../gateway/metrics/latency-query.ts';
import { EVICTED_COUNTER, LatencyRecorder, type LatencySample } from '../gateway/metrics/latency-recorder.ts';
import { LatencyWindow, nearestRank } from '../gateway/metrics/latency-window.ts';
import { latencyPoint, nanos } from '../gateway/metrics/points.ts';
import { AlertBus, type AlertChangeKind } from '../gateway/pipeline/alert-bus.ts';
import type { AlertRecord } from '../gateway/store/alert-repo.ts';

const SITE: Site = {
  id: 'store-0001', kind: 'store', name: 'CU Daehangno Branch', address: '184 Saemunan-ro, Jongno-gu, Seoul', phone: '02-9747-4257',
  lat: 37.58213, lon: 127.00185, district: 'Jongno-gu', policeStation: 'Hyehwa Police Station',
};

function alert(over: Partial<AlertRecord> = {}): AlertRecord {
  return {
    id: 'al-5c6f8ecce6f5022cba4e', deviceId: 'pb-store-0001', seq: 1, siteId: SITE.id, type: 'panic', priority: 100, state: 'received',
    source: 'mqtt', pressedAt: 1000, deviceTs: 1000, receivedAt: 1003, clockSkew: false, caseId: null, deliveredAt: null, ackedAt: null,
    ackedBy: null, resolvedAt: null, resolvedBy: null, outcome: null, note: null, escalatedAt: null, remindedAt: null, policeStatus: null,
    updatedAt: 1003, ...over,
  };
}

let now: number;
let bus: AlertBus;
let counters: Counters;
let samples: LatencySample[];
let recorder: LatencyRecorder;

const emit = (kind: AlertChangeKind, a: AlertRecord) => bus.emit({ kind, alert: a, site: SITE });
const attempt = (n: number) => ({ n, route: 'default', target: 'primary' as const });

beforeEach(() => {
  now = 0;
  bus = new AlertBus(pino({ level: 'silent' }));
  counters = new Counters();
  samples = [];
  recorder = new LatencyRecorder({ clock: { now: () => now }, counters, log: pino({ level: 'silent' }), onSample: (s) => samples.push(s) }, 3);
  recorder.attach(bus);
});

/** One alert through every stage: receipt 1003, commit 1010, resolved 1012, sent 1013, police 2xx 1040, device ack 1042. */
function fullPath(over: Partial<AlertRecord> = {}, attempts = 1): AlertRecord {
  const a = alert(over);
  now = 1010;
  emit('received', a);
  now = 1012;
  recorder.dispatchStage(a.id, 'site-resolved', attempt(1));
  now = 1013;
  recorder.dispatchStage(a.id, 'sent', attempt(1));
  for (let n = 2; n <= attempts; n++) recorder.dispatchStage(a.id, 'sent', attempt(n));
  const delivered = { ...a, state: 'acknowledged' as const, deliveredAt: 1040 };
  now = 1040;
  emit('state', delivered);
  now = 1042;
  recorder.deviceAckSent({ kind: 'state', alert: delivered, site: SITE });
  return delivered;
}

describe('LatencyRecorder', () => {
  it('times every stage, ordered and adding up to the total, once the device has its ack', () => {
    fullPath({}, 3);
    expect(samples).toHaveLength(1);
    const [s] = samples;
    expect(s!.stages).toEqual({ ingest_ms: 3, persist_ms: 7, resolve_ms: 2, dispatch_ms: 1, police_ack_ms: 27, total_ms: 40, device_ack_ms: 2 });
    expect(s!.attempts).toBe(3);
    expect(s!.at).toBe(1000);
    expect(s!.tags).toEqual({ site_kind: 'store', district: 'Jongno-gu', police_station: 'Hyehwa Police Station', type: 'panic', endpoint: 'default:primary' });
  });

  it('keeps dispatch marks made before the commit returned (the early first POST); the stages overlapping it count 0 and still add up', () => {
    const a = alert();
    now = 1004;
    recorder.dispatchStage(a.id, 'site-resolved', attempt(1));
    now = 1005;
    recorder.dispatchStage(a.id, 'sent', attempt(1));
    now = 1010;
    emit('received', a);
    const delivered = { ...a, state: 'acknowledged' as const, deliveredAt: 1012 };
    now = 1012;
    emit('state', delivered);
    recorder.deviceAckSent({ kind: 'state', alert: delivered, site: SITE });
    expect(samples).toHaveLength(1);
    expect(samples[0]!.stages).toEqual({ ingest_ms: 3, persist_ms: 7, resolve_ms: 0, dispatch_ms: 0, police_ack_ms: 2, total_ms: 12, device_ack_ms: 0 });
    expect(samples[0]!.tags.endpoint).toBe('default:primary');
    expect(samples[0]!.attempts).toBe(1);
  });

  it('writes one sample per alert: a repeat press or a second endpoint\'s 2xx adds none', () => {
    const delivered = fullPath();
    emit('repeat', delivered);
    emit('delivered', delivered);
    expect(samples).toHaveLength(1);
  });

  it('does not wait for a device ack that a serial alert never gets', () => {
    fullPath({ source: 'serial' });
    expect(samples[0]!.stages.device_ack_ms).toBeUndefined();
    expect(samples[0]!.stages.total_ms).toBe(40);
  });

  it('finishes at the police 2xx when a dispatcher had already acknowledged the alert', () => {
    const a = alert();
    now = 1010;
    emit('received', a);
    emit('acked', { ...a, state: 'acknowledged' });
    emit('delivered', { ...a, state: 'acknowledged', deliveredAt: 1050 });
    expect(samples).toHaveLength(1);
    expect(samples[0]!.stages.total_ms).toBe(50);
  });

  it('leaves out ingest for an untrusted device clock, and counts a clock slightly ahead as 0', () => {
    fullPath({ pressedAt: 1003, deviceTs: 999_999, clockSkew: true });
    fullPath({ id: 'al-00000000000000000001', pressedAt: 1005 });
    expect(samples[0]!.stages.ingest_ms).toBeUndefined();
    expect(samples[1]!.stages).toMatchObject({ ingest_ms: 0, total_ms: 37 });
  });

  it('tells what the stored record can of an alert it did not see committed (one from before a restart)', () => {
    const a = alert({ state: 'acknowledged', deliveredAt: 1040 });
    now = 1040;
    emit('state', a);
    now = 1041;
    recorder.deviceAckSent({ kind: 'state', alert: a, site: SITE });
    expect(samples[0]).toMatchObject({ attempts: null, stages: { ingest_ms: 3, total_ms: 40, device_ack_ms: 1 } });
    expect(samples[0]!.stages.persist_ms).toBeUndefined();
  });

  it('forgets an alert resolved before delivery, and evicts the oldest beyond its capacity with a counter', () => {
    const ids = ['al-00000000000000000001', 'al-00000000000000000002', 'al-00000000000000000003', 'al-00000000000000000004', 'al-00000000000000000005'];
    emit('received', alert({ id: ids[0] }));
    emit('resolved', alert({ id: ids[0], state: 'resolved' }));
    for (const id of ids.slice(1)) emit('received', alert({ id }));
    expect(counters.get(EVICTED_COUNTER)).toBe(1);
  });
});

describe('in-memory window', () => {
  it('uses the nearest rank, as InfluxQL PERCENTILE does', () => {
    expect(nearestRank([5, 7, 9], 50)).toBe(7);
    expect(nearestRank([5, 7, 9], 95)).toBe(9);
    expect(nearestRank([1, 2], 50)).toBe(1);
    expect(nearestRank([4], 99)).toBe(4);
    expect(nearestRank([], 50)).toBeNull();
  });

  it('summarises the samples in the window, overall and by district', () => {
    const window = new LatencyWindow(100);
    const sample = (at: number, district: string, total: number): LatencySample => ({
      alertId: 'al-x', at, attempts: 1, stages: { total_ms: total, persist_ms: 1 },
      tags: { site_kind: 'store', district, police_station: 'p', type: 'panic', endpoint: 'default:primary' },
    });
    [sample(10, 'Mapo-gu', 500), sample(100, 'Mapo-gu', 30), sample(101, 'Jongno-gu', 10), sample(102, 'Mapo-gu', 20)].forEach((s) => window.add(s));
    const summary = window.summary(100, 'district');
    expect(summary.count).toBe(3);
    expect(summary.stages.total_ms).toEqual({ p50: 20, p95: 30, p99: 30 });
    expect(summary.stages.ingest_ms).toBeNull();
    expect(summary.groups!.map((g) => [g.key, g.count, g.stages.total_ms?.p50])).toEqual([['Jongno-gu', 1, 10], ['Mapo-gu', 2, 20]]);
  });
});

describe('InfluxDB side', () => {
  it('asks for every stage percentile over a window given in ms, grouped when asked', () => {
    const q = latencyInfluxQl({ retentionPolicy: 'safehaven_rp' }, { windowMs: 3_600_000, by: 'site_kind' });
    expect(q).toContain('PERCENTILE("police_ack_ms", 95) AS "police_ack_ms_p95"');
    expect(q).toContain('FROM "safehaven_rp"."alert_latency" WHERE time > now() - 3600000ms');
    expect(q.split(';')[1]).toContain('GROUP BY "site_kind"');
  });

  it('reads the answer back into the same shape as the memory window', () => {
    const parsed = parseLatencyResult({
      results: [
        { statement_id: 0, series: [{ name: 'alert_latency', columns: ['time', 'count', 'total_ms_p50', 'total_ms_p95', 'total_ms_p99'], values: [[0, 3, 7, 9, 9]] }] },
        { statement_id: 1, series: [{ name: 'alert_latency', tags: { site_kind: 'home' }, columns: ['time', 'count', 'total_ms_p50'], values: [[0, 1, 9]] }] },
      ],
    }, 'site_kind');
    expect(parsed.count).toBe(3);
    expect(parsed.stages.total_ms).toEqual({ p50: 7, p95: 9, p99: 9 });
    expect(parsed.stages.persist_ms).toBeNull();
    expect(parsed.groups).toMatchObject([{ key: 'home', count: 1 }]);
  });

  it('makes points with tags free of ids and a timestamp that keeps two alerts of one millisecond apart', () => {
    fullPath();
    fullPath({ id: 'al-ffff0000000000000000' });
    const [a, b] = samples.map(latencyPoint);
    expect(a!.tags).not.toHaveProperty('alert_id');
    expect(a!.fields).toMatchObject({ alert_id: 'al-5c6f8ecce6f5022cba4e', attempts: 1, total_ms: 40 });
    expect(a!.timestamp).not.toBe(b!.timestamp);
    expect(a!.timestamp.slice(0, -6)).toBe('1000');
    expect(nanos(1_732_000_000_123)).toBe('1732000000123000000');
  });
});
