// Latency metrics against a real influxd (Debian package `influxdb`), on free
// ports in temporary directories: presses over real MQTT land as points,
// /api/latency reads InfluxQL percentiles back, and an influxd killed
// mid-run costs metrics (bounded, counted), never alerts.
import type { MqttClient } from 'mqtt';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveAlertId, topics, type EventType } from '../protocol/index.ts';
import { createInfluxClient } from '../gateway/metrics/influx-client.ts';
import type { ManagedInfluxd } from '../gateway/metrics/managed-influxd.ts';
import { STAGES } from '../gateway/metrics/latency-recorder.ts';
import { nearestRank } from '../gateway/metrics/latency-window.ts';
import { connectDevice, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';
import { influxRows, isAlive, requireInfluxd, startInfluxd, type Row } from './support/influxd.ts';

// Fails the whole file, before any test is collected, when influxd is missing: never a silent skip.
requireInfluxd();

const STORE_BUTTON = 'pb-store-0001';
const HOME_SENSOR = 'ds-home-0001';
const PIPELINE_STAGES = ['ingest_ms', 'persist_ms', 'resolve_ms', 'dispatch_ms', 'police_ack_ms'] as const;

/** A device that listens to its acks, as real firmware does, so "device ack sent" is a real stage. */
async function device(gw: TestGateway, id: string): Promise<MqttClient> {
  const client = await connectDevice(gw.mqttUrl, id, gw.deviceSecret(id));
  await new Promise<void>((resolve, reject) => client.subscribe(topics.ack(id), { qos: 1 }, (err) => (err ? reject(err) : resolve())));
  return client;
}

async function press(client: MqttClient, id: string, seq: number, type: EventType): Promise<void> {
  await publish(client, topics.event(id), JSON.stringify({ seq, ts: Date.now(), type }));
}

async function influxHealth(gw: TestGateway) {
  return (await gw.api('GET', '/healthz')).json as { influx: { status: string; url: string; buffered: number; dropped: number; written: number }; counters: Record<string, number> };
}

describe('a gateway with its managed influxd', () => {
  let gw: TestGateway;
  let stopped = false;
  let influxUrl: string;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    gw = await startTestGateway({ influx: { managed: true, httpPort: 0, rpcPort: 0, flushIntervalMs: 100, healthIntervalSec: 1 } });
    influxUrl = (await waitFor(async () => {
      const { influx } = await influxHealth(gw);
      return influx.status === 'ok' && influx.url;
    }, 'the managed influxd to answer', 20_000)).replace(/\/safehaven$/, '');
    clients.push(await device(gw, STORE_BUTTON), await device(gw, HOME_SENSOR));
    await publish(clients[0]!, topics.heartbeat(STORE_BUTTON), JSON.stringify({ seq: 100, ts: Date.now(), battery: 15, rssi: -71, fw: '1.4.2' }), { qos: 0 });
    for (let seq = 1; seq <= 4; seq++) await press(clients[0]!, STORE_BUTTON, seq, 'panic');
    for (let seq = 1; seq <= 2; seq++) await press(clients[1]!, HOME_SENSOR, seq, 'door');
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    if (!stopped) await gw?.stop();
  });

  const landed = () => waitFor(async () => {
    const rows = await influxRows(influxUrl, 'SELECT * FROM alert_latency');
    return rows.length === 6 && rows;
  }, 'six alert_latency points');

  it('writes one alert_latency point per press, with tags free of ids and stages that add up', async () => {
    const rows = await landed();
    const tagKeys = (await influxRows(influxUrl, 'SHOW TAG KEYS FROM alert_latency')).map((r) => r.tagKey);
    expect(tagKeys.sort()).toEqual(['district', 'endpoint', 'police_station', 'site_kind', 'type']);

    const ids = new Set([1, 2, 3, 4].map((s) => deriveAlertId(STORE_BUTTON, s)).concat([1, 2].map((s) => deriveAlertId(HOME_SENSOR, s))));
    const store = gw.gateway['registry']!.site('store-0001')!;
    for (const row of rows) {
      expect(ids.delete(row.alert_id as string)).toBe(true);
      const isStore = row.site_kind === 'store';
      expect(row).toMatchObject({ type: isStore ? 'panic' : 'door', endpoint: 'default:primary', attempts: 1 });
      if (isStore) expect(row).toMatchObject({ district: store.district, police_station: store.policeStation });
      for (const stage of STAGES) expect(row[stage], stage).toBeGreaterThanOrEqual(0);
      expect(PIPELINE_STAGES.reduce((sum, s) => sum + (row[s] as number), 0)).toBe(row.total_ms);
    }
    expect(ids.size).toBe(0);
  });

  it('answers /api/latency with the InfluxQL percentiles of what was written, overall and by site kind', async () => {
    const rows = await landed();
    const expected = (members: Row[]) => Object.fromEntries(STAGES.map((stage) => {
      const values = members.map((r) => r[stage] as number).sort((a, b) => a - b);
      return [stage, { p50: nearestRank(values, 50), p95: nearestRank(values, 95), p99: nearestRank(values, 99) }];
    }));

    const overall = await gw.api('GET', '/api/latency?window=1h');
    expect(overall.status).toBe(200);
    expect(overall.json).toMatchObject({ source: 'influx', window: '1h', count: 6, stages: expected(rows) });

    const { json } = await gw.api('GET', '/api/latency?window=15m&by=site_kind');
    expect(json.groups).toEqual([
      { key: 'home', count: 2, stages: expected(rows.filter((r) => r.site_kind === 'home')) },
      { key: 'store', count: 4, stages: expected(rows.filter((r) => r.site_kind === 'store')) },
    ]);
  });

  it('writes the gateway and device_health series at its interval', async () => {
    // Samples taken before both devices connected say fewer: wait for one taken after. Not the newest:
    // InfluxDB 1.x stores each field apart, so a query racing a write can see a point with some fields missing.
    const gateway = await waitFor(async () => (await influxRows(influxUrl, 'SELECT * FROM gateway WHERE connected_devices = 2')).at(-2), 'a gateway point with both devices, not the newest');
    // A sample can fall while a press is still being delivered: the depth is a number, not necessarily 0.
    expect(gateway).toMatchObject({ open_alerts: expect.any(Number), outbox_depth: expect.any(Number), metrics_dropped: 0 });
    expect(gateway.event_loop_lag_p99_ms).toBeGreaterThanOrEqual(0);
    const tagKeys = (await influxRows(influxUrl, 'SHOW TAG KEYS FROM device_health')).map((r) => r.tagKey);
    expect(tagKeys.sort()).toEqual(['district', 'type']);
    const buttons = await waitFor(async () => {
      const rows = await influxRows(influxUrl, `SELECT last(devices) AS devices, last(online) AS online FROM device_health WHERE "type" = 'panic-button' GROUP BY "district"`);
      return rows.reduce((n, r) => n + (r.online as number), 0) === 1 && rows;
    }, 'a device_health sample with the button online');
    expect(buttons.reduce((n, r) => n + (r.devices as number), 0)).toBe(4);
    const store = gw.gateway['registry']!.site('store-0001')!;
    const [heard] = await waitFor(() => influxRows(influxUrl, `SELECT last(battery_min) AS battery, last(rssi_min) AS rssi, last(low_battery) AS low FROM device_health WHERE "type" = 'panic-button' AND "district" = '${store.district}'`).then((r) => r[0]?.battery !== null && r.length > 0 && r), 'the heartbeat in device_health');
    expect(heard).toMatchObject({ battery: 15, rssi: -71, low: 1 });
  });

  it('has a Grafana dashboard whose every query runs on these series and finds data', async () => {
    await landed();
    const dashboard = JSON.parse(readFileSync(new URL('../grafana/dashboards/safehaven.json', import.meta.url), 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ query: string }> }> };
    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, q: t.query })));
    expect(queries.length).toBeGreaterThan(10);
    for (const { panel, q } of queries) {
      // What Grafana puts in for its macros and for the "All" choice of a variable.
      const influxql = q.replaceAll('$timeFilter', 'time > now() - 1h').replaceAll('$__interval', '1m').replace(/\$(district|site_kind)\b/g, '.*');
      const rows = await influxRows(influxUrl, influxql);
      if (!/"attempts" > 1/.test(q)) expect(rows.length, `${panel}: ${influxql}`).toBeGreaterThan(0);
    }
  });

  it('stops its influxd when the gateway stops', async () => {
    const pid = gw.gateway['metrics']!['managed']!.pid()!;
    expect(isAlive(pid)).toBe(true);
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    stopped = true;
    await gw.stop();
    expect(isAlive(pid)).toBe(false);
  });
});

describe('InfluxDB killed mid-run', () => {
  const BUFFER = 10;
  let dir: string;
  let influxd: ManagedInfluxd;
  let gw: TestGateway;
  let button: MqttClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'safehaven-influxd-'));
    influxd = await startInfluxd(dir);
    gw = await startTestGateway({ influx: { managed: false, url: `${influxd.url()}/safehaven`, bufferSize: BUFFER, batchSize: 5, flushIntervalMs: 100, healthIntervalSec: 3600 } });
    button = await device(gw, STORE_BUTTON);
  });

  afterAll(async () => {
    await button?.endAsync(true);
    await gw?.stop();
    await influxd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('still delivers every alert, holds then drops the oldest points with a counter, and flushes after a restart', async () => {
    for (let seq = 1; seq <= 2; seq++) await press(button, STORE_BUTTON, seq, 'panic');
    await waitFor(async () => (await influxHealth(gw)).influx.written === 2, 'the first points written');

    process.kill(influxd.pid()!, 'SIGKILL');
    await waitFor(() => influxd.pid() === null, 'influxd to die');
    const outage = 15;
    for (let seq = 3; seq < 3 + outage; seq++) await press(button, STORE_BUTTON, seq, 'panic');

    await waitFor(() => gw.police.received().length === 2 + outage, 'every alert delivered to the police');
    const during = await waitFor(async () => {
      const h = await influxHealth(gw);
      return h.influx.buffered + h.influx.dropped === outage && h;
    }, 'every point of the outage held or dropped');
    expect(during.influx).toMatchObject({ status: 'failing', buffered: BUFFER, dropped: outage - BUFFER });
    expect(during.counters.influx_points_dropped_total).toBe(outage - BUFFER);

    await influxd.start();
    await influxd.ready();
    const after = await waitFor(async () => {
      const h = await influxHealth(gw);
      return h.influx.status === 'ok' && h.influx.buffered === 0 && h;
    }, 'the buffer flushed', 20_000);
    expect(after.influx.written).toBe(2 + BUFFER);
    const [count] = await influxRows(influxd.url(), 'SELECT COUNT(total_ms) FROM alert_latency');
    expect(count!.count).toBe(2 + BUFFER);
  });
});

describe('the database and its retention policy', () => {
  it('are created when missing and follow a changed retention', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'safehaven-influxd-'));
    const influxd = await startInfluxd(dir);
    try {
      const policy = async () => (await influxRows(influxd.url(), 'SHOW RETENTION POLICIES ON "safehaven"')).find((r) => r.name === 'safehaven_rp');
      await createInfluxClient({ url: `${influxd.url()}/safehaven`, retention: '30d', timeoutMs: 2000 }).prepare();
      expect(await policy()).toMatchObject({ duration: '720h0m0s', default: true });
      await createInfluxClient({ url: `${influxd.url()}/safehaven`, retention: '12w', timeoutMs: 2000 }).prepare();
      expect(await policy()).toMatchObject({ duration: '2016h0m0s', default: true });
    } finally {
      await influxd.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('an influxd left behind by a killed gateway', () => {
  it('is stopped by the next start in the same directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'safehaven-influxd-'));
    const first = await startInfluxd(dir);
    const orphan = first.pid()!;
    const next = await startInfluxd(dir);
    try {
      expect(isAlive(orphan)).toBe(false);
      expect(next.pid()).not.toBe(orphan);
    } finally {
      await next.stop();
      await first.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
