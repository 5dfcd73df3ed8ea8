// Latency without an InfluxDB: /api/latency answers from memory, a missing
// influxd is said once with the command that installs it, and an InfluxDB
// that does not answer costs metrics, never alerts.
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../protocol/index.ts';
import { banner } from '../gateway/main.ts';
import { connectDevice, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

const BUTTON = 'pb-store-0001';
/** tcpmux: a privileged port no test and no gateway of ours ever listens on. */
const NOTHING_LISTENS = 1;
const clients: MqttClient[] = [];

async function pressOnce(gw: TestGateway, seq: number): Promise<void> {
  const client = await connectDevice(gw.mqttUrl, BUTTON, gw.deviceSecret(BUTTON));
  clients.push(client);
  await new Promise<void>((resolve, reject) => client.subscribe(topics.ack(BUTTON), { qos: 1 }, (err) => (err ? reject(err) : resolve())));
  await publish(client, topics.event(BUTTON), JSON.stringify({ seq, ts: Date.now(), type: 'panic' }));
  await waitFor(() => gw.police.received().length >= seq, 'police receipt');
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

describe('no InfluxDB configured', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('answers /api/latency from the in-memory window', async () => {
    await pressOnce(gw, 1);
    const { status, json } = await waitFor(async () => {
      const res = await gw.api('GET', '/api/latency?window=5m&by=district');
      return res.json.count === 1 && res;
    }, 'the sample in memory');
    expect(status).toBe(200);
    expect(json).toMatchObject({ source: 'memory', window: '5m', windowMs: 300_000, by: 'district' });
    expect(json.stages.total_ms.p50).toBeGreaterThanOrEqual(0);
    expect(json.groups).toHaveLength(1);
    expect(json).not.toHaveProperty('influxError');
  });

  it('reports InfluxDB as disabled in /healthz', async () => {
    const { json } = await gw.api('GET', '/healthz');
    expect(json.influx).toMatchObject({ status: 'disabled', url: null, buffered: 0, dropped: 0 });
  });

  it.each([
    ['window=abc', 'window'],
    ['window=0h', 'window'],
    ['window=31d', 'window'],
    ['by=device', 'by'],
    ['windw=1h', 'windw'],
  ])('refuses %s with a 400 naming %s', async (query, field) => {
    const { status, json } = await gw.api('GET', `/api/latency?${query}`);
    expect(status).toBe(400);
    expect(json).toMatchObject({ error: 'INVALID_REQUEST', field });
  });

  it('needs a token', async () => {
    expect((await gw.api('GET', '/api/latency', undefined, null)).status).toBe(401);
  });
});

describe('influxd not installed', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      gw = await startTestGateway({ influx: { managed: true, httpPort: 0, rpcPort: 0 } });
    } finally {
      process.env.PATH = path;
    }
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('says so once, with the command that installs it, and keeps latency in memory', async () => {
    const said = gw.logs.lines.filter((l) => l.msg.includes('scripts/install-system-deps.sh'));
    expect(said).toHaveLength(1);
    expect(said[0]!.msg).toMatch(/WITHOUT InfluxDB/);
    expect(banner(gw.info, gw.config)).toMatch(/InfluxDB +off: influxd is not installed \(install: sudo bash scripts\/install-system-deps\.sh/);
    const { json } = await gw.api('GET', '/healthz');
    expect(json.influx).toMatchObject({ status: 'not-installed', install: expect.stringContaining('install-system-deps.sh') });
    await pressOnce(gw, 1);
    await waitFor(async () => (await gw.api('GET', '/api/latency')).json.count === 1, 'the sample in memory');
    expect(gw.logs.lines.filter((l) => l.msg.includes('scripts/install-system-deps.sh'))).toHaveLength(1);
  });
});

describe('an InfluxDB that does not answer', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // A port nothing listens on: every write and query is refused. Not a "free" port picked
    // now: the kernel may hand that one to this very gateway's own listeners a moment later.
    gw = await startTestGateway({ influx: { managed: false, url: `http://127.0.0.1:${NOTHING_LISTENS}/safehaven`, flushIntervalMs: 50 } });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('delivers alerts as usual, buffers the points and answers /api/latency from memory', async () => {
    await pressOnce(gw, 1);
    await pressOnce(gw, 2);
    const health = await waitFor(async () => {
      const { json } = await gw.api('GET', '/healthz');
      return json.influx.status === 'failing' && json.influx.buffered === 2 && json;
    }, 'both points buffered');
    expect(health.status).toBe('ok');
    expect(health.influx.lastError).toMatch(/ECONNREFUSED/);
    const { json } = await gw.api('GET', '/api/latency');
    expect(json).toMatchObject({ source: 'memory', count: 2, influxError: expect.stringMatching(/ECONNREFUSED/) });
    expect(gw.logs.lines.filter((l) => l.msg.startsWith('InfluxDB write failed'))).toHaveLength(1);
  });
});
