// The alert path end to end over real sockets: mqtt.js devices → aedes →
// SQLite → police simulator over HTTP → acks back to the device.
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deriveAlertId, topics } from '../protocol/index.ts';
import { collect, connectDevice, publish, startPoliceSim, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

const BUTTON = 'pb-store-0001';
const OTHER_BUTTON = 'pb-store-0002';

let gw: TestGateway;
const clients: MqttClient[] = [];

async function device(id: string, secret = gw.deviceSecret(id)): Promise<MqttClient> {
  const client = await connectDevice(gw.mqttUrl, id, secret);
  clients.push(client);
  return client;
}

function pressBody(seq: number, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ seq, ts: Date.now(), type: 'panic', battery: 88, rssi: -60, ...extra });
}

/** Granted QoS per topic; 128 is a refusal (mqtt.js reports it as an error carrying the SUBACK). */
function subscribe(client: MqttClient, topic: string): Promise<number[]> {
  return new Promise((resolve, reject) => client.subscribe(topic, { qos: 1 }, (err, granted) => {
    const suback = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted;
    if (suback) return resolve(suback);
    return err ? reject(err) : resolve((granted ?? []).map((g) => g.qos));
  }));
}

beforeAll(async () => {
  gw = await startTestGateway();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  gw.police.setBehaviour({ failRate: 0, latencyMs: 0 });
});

afterAll(async () => {
  await gw.stop();
});

describe('a press reaches the police', () => {
  it('delivers the store details to the police and acks the device received → dispatched → acknowledged', async () => {
    const button = await device(BUTTON);
    const acks = collect(button);
    await subscribe(button, topics.ack(BUTTON));
    await publish(button, topics.event(BUTTON), pressBody(1));

    const alertId = deriveAlertId(BUTTON, 1);
    const received = await waitFor(() => gw.police.received().find((a) => a.idempotencyKey === alertId), 'police receipt');
    const store = gw.gateway['registry']!.site('store-0001')!;
    expect(received.body!.site).toMatchObject({ name: store.name, address: store.address, phone: store.phone, lat: store.lat, lon: store.lon });
    expect(received.body).toMatchObject({ alertId, type: 'panic', deviceId: BUTTON, attempt: 1 });

    await waitFor(() => acks.some((m) => m.body.state === 'acknowledged'), 'acknowledged ack');
    expect(acks.map((m) => m.body.state)).toEqual(['received', 'dispatched', 'acknowledged']);
    expect(acks.every((m) => m.body.alertId === alertId && m.body.seq === 1)).toBe(true);

    const { json } = await gw.api('GET', `/api/alerts/${alertId}`);
    expect(json.state).toBe('acknowledged');
    expect(json.caseId).toBe(received.caseId);
    expect(json.timeline.map((e: { kind: string; state: string | null }) => e.state ?? e.kind)).toEqual(['received', 'dispatched', 'delivered', 'acknowledged']);
  });

  it('turns the same seq, sent twice and again after a reconnect, into one alert and one dispatch', async () => {
    const alertId = deriveAlertId(BUTTON, 2);
    let button = await device(BUTTON);
    await publish(button, topics.event(BUTTON), pressBody(2));
    await publish(button, topics.event(BUTTON), pressBody(2));
    await button.endAsync(true);
    button = await device(BUTTON);
    const acks = collect(button);
    await subscribe(button, topics.ack(BUTTON));
    await publish(button, topics.event(BUTTON), pressBody(2));

    await waitFor(() => gw.police.received().find((a) => a.idempotencyKey === alertId), 'police receipt');
    await waitFor(() => acks.find((m) => m.body.alertId === alertId), 'ack for the repeat');
    await new Promise((r) => setTimeout(r, 300));
    const deliveries = gw.police.received().filter((a) => a.idempotencyKey === alertId);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]!.attempts).toEqual([1]);
    const { json } = await gw.api('GET', '/api/alerts?state=all');
    expect(json.items.filter((a: { id: string }) => a.id === alertId)).toHaveLength(1);
  });

  it('keeps retrying through a 503 outage and delivers once the police recover', async () => {
    gw.police.setBehaviour({ failRate: 1, failStatus: 503 });
    const failuresBefore = gw.police.stats().injectedFailures;
    const button = await device(OTHER_BUTTON);
    await publish(button, topics.event(OTHER_BUTTON), pressBody(10));
    const alertId = deriveAlertId(OTHER_BUTTON, 10);

    await waitFor(() => gw.police.stats().injectedFailures >= failuresBefore + 3, 'three failed attempts');
    expect(gw.police.received().find((a) => a.idempotencyKey === alertId)).toBeUndefined();
    gw.police.setBehaviour({ failRate: 0 });

    const delivered = await waitFor(() => gw.police.received().find((a) => a.idempotencyKey === alertId), 'delivery after recovery');
    expect(delivered.attempts[0]).toBeGreaterThanOrEqual(4);
    // The police record the alert before their answer reaches us: wait for our side to commit it.
    const json = await waitFor(async () => {
      const alert = (await gw.api('GET', `/api/alerts/${alertId}`)).json;
      return alert.state === 'acknowledged' && alert;
    }, 'acknowledged state');
    expect(json.timeline.some((e: { kind: string; detail: { error?: string } }) => e.kind === 'dispatch-failed' && e.detail.error === 'HTTP 503')).toBe(true);
    expect(gw.logs.find((l) => l.code === 'POLICE_UNREACHABLE')).toBeDefined();
  });

  it('queues alerts while the police endpoint refuses connections and delivers them when it comes back', async () => {
    const separate = await startPoliceSim();
    const downGw = await startTestGateway({}, { police: separate });
    try {
      const downPort = Number(new URL(separate.url()).port);
      await separate.stop();
      const id = 'pb-store-0003';
      const button = await connectDevice(downGw.mqttUrl, id, downGw.deviceSecret(id));
      clients.push(button);
      await publish(button, topics.event(id), pressBody(5));
      await waitFor(() => downGw.logs.find((l) => l.code === 'POLICE_UNREACHABLE'), 'outage noticed');

      const revived = await startPoliceSim(downPort);
      try {
        const alertId = deriveAlertId(id, 5);
        await waitFor(() => revived.received().find((a) => a.idempotencyKey === alertId), 'delivery after the endpoint returns');
        expect(revived.received()).toHaveLength(1);
      } finally {
        await revived.stop();
      }
    } finally {
      await downGw.stop();
    }
  });
});

describe('the broker lets in only real devices, each on its own topics', () => {
  it('refuses a wrong secret and an unknown device with "not authorized" (CONNACK 5)', async () => {
    for (const [id, secret] of [[BUTTON, 'wrong-secret'], ['pb-nobody', 'whatever']] as const) {
      const err = await connectDevice(gw.mqttUrl, id, secret).then(() => null, (e: { code?: number }) => e);
      expect(err?.code).toBe(5);
    }
    expect(gw.gateway.counters.get('mqtt_auth_failures_total', { reason: 'bad-secret' })).toBeGreaterThanOrEqual(1);
    expect(gw.gateway.counters.get('mqtt_auth_failures_total', { reason: 'unknown-device' })).toBeGreaterThanOrEqual(1);
  });

  it('refuses a client id that is not the device id', async () => {
    const err = await connectDevice(gw.mqttUrl, BUTTON, gw.deviceSecret(BUTTON), { clientId: 'someone-else' }).then(() => null, (e: { code?: number }) => e);
    expect(err?.code).toBe(5);
  });

  it('closes a device that publishes on another device\'s topic, and no alert is made', async () => {
    const button = await device(BUTTON);
    const closed = new Promise<void>((resolve) => button.once('close', () => resolve()));
    button.publish(topics.event(OTHER_BUTTON), pressBody(77));
    await closed;
    const { status } = await gw.api('GET', `/api/alerts/${deriveAlertId(OTHER_BUTTON, 77)}`);
    expect(status).toBe(404);
    expect(gw.gateway.counters.get('mqtt_publish_refused_total', { reason: 'foreign-topic' })).toBeGreaterThanOrEqual(1);
  });

  it('grants a device its own ack and config topics and refuses #, $SYS and other devices\' topics', async () => {
    const button = await device(BUTTON);
    expect(await subscribe(button, topics.ack(BUTTON))).toEqual([1]);
    expect(await subscribe(button, topics.config(BUTTON))).toEqual([1]);
    for (const topic of ['#', '$SYS/#', 'safehaven/v1/dev/+/ack', topics.ack(OTHER_BUTTON), topics.event(BUTTON)]) {
      expect(await subscribe(button, topic)).toEqual([128]);
    }
    expect(button.connected).toBe(true);
  });

  it('gives each device its heartbeat interval on the retained config topic', async () => {
    const button = await device(BUTTON);
    const seen = collect(button);
    await subscribe(button, topics.config(BUTTON));
    const config = await waitFor(() => seen.find((m) => m.topic === topics.config(BUTTON)), 'retained config');
    expect(config.body).toEqual({ heartbeatSec: gw.config.supervision.heartbeatSec });
  });
});

describe('bad input is refused clearly and loses nothing', () => {
  // One device per case: repeats of one kind of error from one device are logged once per burst.
  it.each([
    ['malformed JSON', 'pb-store-0001', '{"seq": 1, "ts": ', 'bad-json', undefined],
    ['an unknown event type', 'pb-store-0002', pressBody(30, { type: 'earthquake' }), 'invalid', 'type'],
    ['a missing seq', 'pb-store-0003', JSON.stringify({ ts: Date.now(), type: 'panic' }), 'invalid', 'seq'],
    ['a negative seq', 'pb-store-0004', pressBody(-1), 'invalid', 'seq'],
    ['an unknown field', 'ds-home-0001', pressBody(31, { evil: true }), 'invalid', 'evil'],
    ['an oversized payload', 'ds-home-0002', JSON.stringify({ seq: 32, ts: 1, type: 'panic', pad: 'x'.repeat(10_000) }), 'too-large', undefined],
  ])('%s → a log line naming the reason, a counter, no alert, and the device stays connected', async (_what, id, payload, reason, field) => {
    const button = await device(id);
    const before = gw.gateway.counters.get('device_payload_rejected_total', { channel: 'event', reason });
    await publish(button, topics.event(id), payload);
    expect(gw.gateway.counters.get('device_payload_rejected_total', { channel: 'event', reason })).toBe(before + 1);
    const line = gw.logs.find((l) => l.code === 'BAD_PAYLOAD' && l.reason === reason && l.deviceId === id && l.field === field);
    expect(line?.msg).toMatch(/rejected event payload/);
    expect(button.connected).toBe(true);
    const alerts = await gw.api('GET', '/api/alerts?state=all');
    expect(alerts.json.items.filter((a: { deviceId: string; seq: number }) => a.deviceId === id && a.seq >= 30)).toEqual([]);
  });

  it('still delivers a valid press from the same device after garbage', async () => {
    const button = await device(BUTTON);
    await publish(button, topics.event(BUTTON), 'not json at all');
    await publish(button, topics.event(BUTTON), pressBody(40));
    await waitFor(() => gw.police.received().find((a) => a.idempotencyKey === deriveAlertId(BUTTON, 40)), 'delivery after garbage');
  });

  it.each([
    ['years behind (a button whose RTC reset to 1970)', 1000],
    ['a day ahead', Date.now() + 86_400_000],
  ])('never drops a panic from a device clock %s: receive time is used and the alert is flagged', async (_what, ts) => {
    const button = await device(BUTTON);
    const seq = ts === 1000 ? 60 : 61;
    const before = Date.now();
    await publish(button, topics.event(BUTTON), pressBody(seq, { ts }));
    const alertId = deriveAlertId(BUTTON, seq);
    const received = await waitFor(() => gw.police.received().find((a) => a.idempotencyKey === alertId), 'delivery despite the clock');
    expect(received.body!.clockSkew).toBe(true);
    expect(Date.parse(received.body!.pressedAt)).toBeGreaterThanOrEqual(before - 1000);
    const { json } = await gw.api('GET', `/api/alerts/${alertId}`);
    expect(json).toMatchObject({ clockSkew: true, deviceTs: new Date(ts).toISOString() });
    expect(json.pressedAt).toBe(json.receivedAt);
  });

  it('acknowledges but never alerts on a replayed seq (at or below the device\'s highest), while a repeat of a stored seq is the same alert', async () => {
    const id = 'pb-store-0004';
    const button = await device(id);
    await publish(button, topics.event(id), pressBody(100));
    await waitFor(() => gw.police.received().find((a) => a.idempotencyKey === deriveAlertId(id, 100)), 'the first press delivered');
    const before = gw.gateway.counters.get('alerts_replay_refused_total', { source: 'mqtt' });
    await publish(button, topics.event(id), pressBody(99));
    await publish(button, topics.event(id), pressBody(7));
    expect(gw.gateway.counters.get('alerts_replay_refused_total', { source: 'mqtt' })).toBe(before + 2);
    expect(gw.logs.find((l) => l.code === 'SEQ_REPLAYED' && l.deviceId === id)).toBeDefined();
    await publish(button, topics.event(id), pressBody(100));
    const { json } = await gw.api('GET', '/api/alerts?state=all');
    expect(json.items.filter((a: { deviceId: string }) => a.deviceId === id).map((a: { seq: number }) => a.seq)).toEqual([100]);
    expect(button.connected).toBe(true);
  });

  it('records heartbeats as presence without making alerts', async () => {
    const button = await device(BUTTON);
    await publish(button, topics.heartbeat(BUTTON), JSON.stringify({ seq: 50, ts: Date.now(), battery: 41, rssi: -70, fw: '1.4.2' }), { qos: 0 });
    const { json } = await waitFor(async () => {
      const r = await gw.api('GET', `/api/devices/${BUTTON}`);
      return r.json.battery === 41 ? r : null;
    }, 'battery from heartbeat');
    expect(json).toMatchObject({ online: true, battery: 41, rssi: -70, firmware: '1.4.2' });
    expect(json.lastSeen).not.toBeNull();
  });
});
