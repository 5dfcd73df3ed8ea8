// Heartbeats and events through the broker's lean lanes (gateway/broker/publish-lane.ts),
// over real MQTT connections: they still update presence, bad ones are still
// refused and counted, they keep a connection's keepalive alive, what the lane
// declines still goes through aedes, an event is acknowledged once stored, and
// with an integrator account allowed to subscribe to heartbeats or events
// there is no lane and the account gets them.
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeanClient } from '../device-sim/lean-client.ts';
import { deriveAlertId, topics } from '../protocol/index.ts';
import { collect, connectDevice, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

const CCTV = { username: 'cctv-centre', password: 'cctv-centre-password-1' };
const heartbeat = (seq: number, extra: Record<string, unknown> = {}) => JSON.stringify({ seq, ts: Date.now(), battery: 42, rssi: -70, fw: '2.0.0', ...extra });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A gateway for this describe block whose integrator account may subscribe to `subscribe`; clients pushed are ended after it. */
function gatewayWithAccount(subscribe: string[]): { gw: TestGateway; clients: MqttClient[] } {
  const ctx = { gw: undefined as unknown as TestGateway, clients: [] as MqttClient[] };
  beforeAll(async () => {
    ctx.gw = await startTestGateway({ mqtt: { host: '127.0.0.1', port: 0, serviceAccounts: [{ ...CCTV, subscribe }] } });
  });
  afterAll(async () => {
    for (const c of ctx.clients) c.end(true);
    await ctx.gw?.stop();
  });
  return ctx;
}

/** The integrator account connected and subscribed to `filter`; what it receives. */
async function accountFollowing(ctx: { gw: TestGateway; clients: MqttClient[] }, filter: string, qos: 0 | 1): Promise<Array<{ topic: string; body: any }>> {
  const cctv = mqtt.connect(ctx.gw.mqttUrl, { ...CCTV, clientId: `cctv-${ctx.clients.length}`, reconnectPeriod: 0 });
  ctx.clients.push(cctv);
  await new Promise((resolve, reject) => { cctv.once('connect', resolve); cctv.once('error', reject); });
  const seen = collect(cctv);
  await cctv.subscribeAsync(filter, { qos });
  return seen;
}

describe('the heartbeat lane (no account may subscribe to heartbeats)', () => {
  const ctx = gatewayWithAccount(['safehaven/v1/alerts/#']);
  const device = async (id: string, extra: mqtt.IClientOptions = {}) => {
    const client = await connectDevice(ctx.gw.mqttUrl, id, ctx.gw.deviceSecret(id), extra);
    ctx.clients.push(client);
    return client;
  };
  const rejected = () => ctx.gw.gateway.counters.get('device_payload_rejected_total', { channel: 'heartbeat', reason: 'invalid' })
    + ctx.gw.gateway.counters.get('device_payload_rejected_total', { channel: 'heartbeat', reason: 'bad-json' });

  it('updates presence from a well-formed heartbeat', async () => {
    const id = 'pb-store-0001';
    const d = await device(id);
    await publish(d, topics.heartbeat(id), heartbeat(1), { qos: 0 });
    await waitFor(async () => (await ctx.gw.api('GET', `/api/devices/${id}`)).json.battery === 42, 'the battery from the heartbeat');
    expect((await ctx.gw.api('GET', `/api/devices/${id}`)).json).toMatchObject({ battery: 42, rssi: -70, firmware: '2.0.0', lastSeen: expect.any(String) });
  });

  it('refuses, counts and logs malformed heartbeats, keeps the device connected and its presence as it was', async () => {
    const id = 'pb-store-0002';
    const d = await device(id);
    await publish(d, topics.heartbeat(id), heartbeat(1), { qos: 0 });
    await waitFor(async () => (await ctx.gw.api('GET', `/api/devices/${id}`)).json.battery === 42, 'the first heartbeat');
    const before = rejected();
    for (const bad of ['{"seq": 2,', heartbeat(3, { battery: 101 }), heartbeat(4, { extra: true }), '[]']) {
      await publish(d, topics.heartbeat(id), bad, { qos: 0 });
    }
    await waitFor(() => rejected() === before + 4, 'four rejected heartbeats');
    expect(ctx.gw.logs.find((l) => l.code === 'BAD_PAYLOAD' && l.deviceId === id && l.channel === 'heartbeat' && l.field === 'battery')).toBeDefined();
    expect((await ctx.gw.api('GET', `/api/devices/${id}`)).json.battery).toBe(42);
    expect(d.connected).toBe(true);
  });

  it('counts a heartbeat as activity for the keepalive', async () => {
    const id = 'pb-store-0003';
    // Keepalive 1 s: aedes closes a connection silent for 1.5 s. The lean client sends a PINGREQ only when told to, never here.
    const d = new LeanClient({
      host: '127.0.0.1', port: ctx.gw.info.mqttPort, clientId: id, username: id, password: ctx.gw.deviceSecret(id), keepaliveSec: 1, connectTimeoutMs: 5000, ackTimeoutMs: 5000,
    });
    await d.connect();
    let closed = false;
    d.onClose(() => { closed = true; });
    try {
      for (let seq = 1; seq <= 10; seq++) {
        await d.publish(topics.heartbeat(id), heartbeat(seq), 0);
        await sleep(300);
      }
      expect(closed).toBe(false);
      expect(d.connected).toBe(true);
    } finally {
      d.end();
    }
  });

  it('keeps no CONNECT packet (nor the device secret) and no buffer stream on a ready connection, and goes on parsing its packets', async () => {
    const id = 'pb-store-0004';
    const d = await device(id, { protocolVersion: 3, protocolId: 'MQIsdp' });
    const broker = (ctx.gw.gateway as unknown as { broker: { client(id: string): unknown } }).broker;
    await waitFor(() => broker.client(id), 'the session');
    const parser = (broker.client(id) as { _parser: { settings: Record<string, unknown>; _list: object } })._parser;
    expect(parser.settings).toEqual({ protocolVersion: 3, bridgeMode: undefined });
    // Its byte buffer is a plain list, not a stream of its own.
    expect(parser._list).not.toHaveProperty('pipe');
    await publish(d, topics.heartbeat(id), heartbeat(1, { battery: 61 }), { qos: 0 });
    await waitFor(async () => (await ctx.gw.api('GET', `/api/devices/${id}`)).json.battery === 61, 'the heartbeat after the CONNECT was dropped');
  });

  it('takes heartbeats alone in a chunk, two in one chunk and one split over two chunks alike', async () => {
    const id = 'pb-store-0003';
    const socket = netConnect(ctx.gw.info.mqttPort, '127.0.0.1');
    try {
      await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
      const connack = new Promise<Buffer>((resolve) => socket.once('data', resolve));
      socket.write(mqttPacket.generate({
        cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: id, clean: true, keepalive: 30, username: id, password: Buffer.from(ctx.gw.deviceSecret(id)),
      }));
      expect([...(await connack)]).toEqual([0x20, 2, 0, 0]);
      const beat = (battery: number) => mqttPacket.generate({
        cmd: 'publish', topic: topics.heartbeat(id), payload: Buffer.from(heartbeat(battery, { battery })), qos: 0, dup: false, retain: false,
      });
      const counted = () => ctx.gw.gateway.counters.get('device_messages_total', { channel: 'heartbeat' });
      const battery = async () => (await ctx.gw.api('GET', `/api/devices/${id}`)).json.battery as number;
      const before = counted();
      socket.write(beat(11));
      await waitFor(async () => (await battery()) === 11, 'the lone heartbeat');
      socket.write(Buffer.concat([beat(12), beat(13)]));
      await waitFor(async () => (await battery()) === 13, 'both heartbeats of one chunk');
      const split = beat(14);
      socket.write(split.subarray(0, 9));
      await sleep(50);
      socket.write(split.subarray(9));
      await waitFor(async () => (await battery()) === 14, 'the split heartbeat');
      expect(counted()).toBe(before + 4);
      expect(socket.destroyed).toBe(false);
    } finally {
      socket.destroy();
    }
  });

  it('leaves a QoS 1 heartbeat to aedes: acknowledged, and presence updated', async () => {
    const id = 'pb-store-0001';
    const d = await device(id);
    await publish(d, topics.heartbeat(id), heartbeat(1, { battery: 55 }), { qos: 1 });
    await waitFor(async () => (await ctx.gw.api('GET', `/api/devices/${id}`)).json.battery === 55, 'the battery from the QoS 1 heartbeat');
  });
});

describe('without the lane (an account may subscribe to heartbeats)', () => {
  const ctx = gatewayWithAccount(['safehaven/v1/dev/+/heartbeat']);

  it('delivers a device heartbeat to the subscribed account and still updates presence', async () => {
    const seen = await accountFollowing(ctx, 'safehaven/v1/dev/+/heartbeat', 0);
    const id = 'pb-store-0001';
    const d = await connectDevice(ctx.gw.mqttUrl, id, ctx.gw.deviceSecret(id));
    ctx.clients.push(d);
    await publish(d, topics.heartbeat(id), heartbeat(1), { qos: 0 });
    await waitFor(() => seen.some((m) => m.topic === topics.heartbeat(id) && m.body.battery === 42), 'the heartbeat at the account');
    await waitFor(async () => (await ctx.gw.api('GET', `/api/devices/${id}`)).json.battery === 42, 'the battery from the heartbeat');
  });
});

/** Publishes aedes routed on this device topic: the lanes take theirs before aedes sees them. */
function routedByAedes(gw: TestGateway, topic: string): () => number {
  let routed = 0;
  const aedes = (gw.gateway as unknown as { broker: { aedes: { on(e: 'publish', l: (p: { topic: string }) => void): void } } }).broker.aedes;
  aedes.on('publish', (packet) => {
    if (packet.topic === topic) routed++;
  });
  return () => routed;
}

const press = (seq: number) => JSON.stringify({ seq, ts: Date.now(), type: 'panic' });
const stateOf = async (gw: TestGateway, alertId: string) => (await gw.api('GET', `/api/alerts/${alertId}`)).json.state as string | undefined;

/** Device `id` connects and presses `seq`; the PUBACK comes after the commit, so the alert is there as soon as the publish resolves. */
async function pressStored(ctx: { gw: TestGateway; clients: MqttClient[] }, id: string, seq: number): Promise<{ device: MqttClient; routed: () => number }> {
  const routed = routedByAedes(ctx.gw, topics.event(id));
  const device = await connectDevice(ctx.gw.mqttUrl, id, ctx.gw.deviceSecret(id));
  ctx.clients.push(device);
  await publish(device, topics.event(id), press(seq));
  expect(await stateOf(ctx.gw, deriveAlertId(id, seq))).toBeDefined();
  return { device, routed };
}

describe('the event lane (no account may subscribe to device events)', () => {
  const ctx = gatewayWithAccount(['safehaven/v1/alerts/#']);

  it('acknowledges an event once it is an alert, without aedes routing it, and a replay is acknowledged and refused', async () => {
    const id = 'pb-store-0003';
    const { device: d, routed } = await pressStored(ctx, id, 5);
    await waitFor(async () => (await stateOf(ctx.gw, deriveAlertId(id, 5))) === 'acknowledged', 'the police 2xx');
    await publish(d, topics.event(id), press(3));
    expect(ctx.gw.gateway.counters.total('alerts_replay_refused_total')).toBe(1);
    expect(routed()).toBe(0);
    expect(d.connected).toBe(true);
  });
});

describe('without the event lane (an account may subscribe to device events)', () => {
  const ctx = gatewayWithAccount(['safehaven/v1/dev/+/event']);

  it('routes the event to the subscribed account through aedes and still stores and acknowledges it', async () => {
    const seen = await accountFollowing(ctx, 'safehaven/v1/dev/+/event', 1);
    const id = 'pb-store-0004';
    const { routed } = await pressStored(ctx, id, 1);
    await waitFor(() => seen.some((m) => m.topic === topics.event(id) && m.body.seq === 1), 'the event at the account');
    expect(routed()).toBe(1);
  });
});
