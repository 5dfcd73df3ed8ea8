// Supervision over real sockets: mqtt.js devices (and a raw TCP client that
// goes silent) against a whole gateway with short intervals. A device that
// dies, goes quiet or runs flat becomes a trouble entry; its return restores
// it; a revoked device is kicked and refused; troubles survive a restart.
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deriveAlertId, topics, type Trouble } from '../protocol/index.ts';
import type { PresenceChange } from '../gateway/supervision/trouble-source.ts';
import type { Supervisor } from '../gateway/supervision/supervisor.ts';
import { collect, connectDevice, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

/** Buttons: 1 s interval + 1 s grace, bells 2 s + 1 s. Sensors keep a long window so only the tests that want trouble get it. */
const SUPERVISION = {
  reconnectGraceSec: 0,
  classes: {
    'panic-button': { intervalSec: 1, graceSec: 1 },
    'motion-sensor': { intervalSec: 600, graceSec: 60, lowBatteryPercent: 25 },
    'door-sensor': { intervalSec: 600, graceSec: 60 },
    'alarm-bell': { intervalSec: 2, graceSec: 1 },
  },
};

let gw: TestGateway;
const clients: MqttClient[] = [];
const sockets: Socket[] = [];
const presence: PresenceChange[] = [];
/** Set by the restart test: the gateway before it, whose police and data dir the second one borrowed. */
let first: TestGateway | null = null;

async function device(id: string, secret = gw.deviceSecret(id), extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await connectDevice(gw.mqttUrl, id, secret, extra);
  clients.push(client);
  return client;
}

async function troubles(state: 'open' | 'all' = 'open'): Promise<Trouble[]> {
  const { status, json } = await gw.api('GET', `/api/troubles?state=${state}`);
  expect(status).toBe(200);
  return json.items as Trouble[];
}

const openTrouble = (kind: string, subject: string) => async () =>
  (await troubles()).find((t) => t.kind === kind && (t.deviceId === subject || (t.deviceId === null && t.siteId === subject)));

/** A device on a raw TCP socket (no MQTT library): it sends only what the test writes, no PINGREQ. */
async function rawDevice(id: string, keepalive: number): Promise<Socket> {
  const socket = tcpConnect(gw.info.mqttPort, '127.0.0.1');
  sockets.push(socket);
  socket.setNoDelay(true);
  const connack = new Promise<number>((resolve) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet) => packet.cmd === 'connack' && resolve(packet.returnCode ?? -1));
    socket.on('data', (bytes) => parser.parse(bytes));
  });
  socket.write(mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive, clientId: id, username: id, password: Buffer.from(gw.deviceSecret(id)),
  }));
  expect(await connack).toBe(0);
  return socket;
}

const heartbeat = (client: MqttClient, id: string, seq: number, battery = 90) =>
  publish(client, topics.heartbeat(id), JSON.stringify({ seq, ts: Date.now(), battery, rssi: -60, fw: '1.4.2' }), { qos: 0 });

beforeAll(async () => {
  gw = await startTestGateway({ supervision: SUPERVISION });
  (gw.gateway['supervisor'] as Supervisor).onPresence((change) => presence.push(change));
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  for (const s of sockets.splice(0)) s.destroy();
});

afterAll(async () => {
  await gw?.stop();
  if (first) {
    await first.police.stop();
    rmSync(first.config.dataDir, { recursive: true, force: true });
  }
});

describe('the config topic', () => {
  it('carries each type its own class interval, retained', async () => {
    const button = await device('pb-store-0001');
    const seen = collect(button);
    await button.subscribeAsync(topics.config('pb-store-0001'), { qos: 1 });
    const sensor = await device('ms-home-0001');
    const sensorSeen = collect(sensor);
    await sensor.subscribeAsync(topics.config('ms-home-0001'), { qos: 1 });
    await waitFor(() => seen.length > 0 && sensorSeen.length > 0, 'the retained configs');
    expect(seen[0]).toEqual({ topic: topics.config('pb-store-0001'), body: { heartbeatSec: 1 } });
    expect(sensorSeen[0]!.body).toEqual({ heartbeatSec: 600 });
  });

  it('reaches a newly provisioned device', async () => {
    const { json } = await gw.api('POST', '/api/devices', { siteId: 'home-0002', type: 'door-sensor' });
    const fresh = await device(json.id, json.secret);
    const seen = collect(fresh);
    await fresh.subscribeAsync(topics.config(json.id), { qos: 1 });
    await waitFor(() => seen[0], 'the new device config');
    expect(seen[0]!.body).toEqual({ heartbeatSec: 600 });
    expect(json.supervision).toMatchObject({ state: 'pending', intervalSec: 600, graceSec: 60 });
  });
});

describe('a device that dies', () => {
  it('killed without DISCONNECT: offline and an offline trouble, and its store unprotected', async () => {
    const id = 'pb-store-0001';
    const before = presence.length;
    const button = await device(id);
    await waitFor(async () => (await gw.api('GET', `/api/devices/${id}`)).json.online, 'online');
    button.stream.destroy();
    const trouble = await waitFor(openTrouble('offline', id), 'the offline trouble');
    expect(trouble).toMatchObject({ siteId: 'store-0001', severity: 7, clearedAt: null });
    expect(trouble.detail).toContain('closed without DISCONNECT');
    const { json } = await gw.api('GET', `/api/devices/${id}`);
    expect(json).toMatchObject({ online: false, supervision: { state: 'missed', troubles: ['offline'] } });
    const unprotected = await waitFor(openTrouble('unprotected', 'store-0001'), 'the store flagged unprotected');
    expect(unprotected).toMatchObject({ deviceId: null, severity: 9 });
    expect(unprotected.detail).toContain(`only panic button ${id}`);
    expect(presence.slice(before).filter((p) => p.deviceId === id).map((p) => p.online)).toEqual([true, false]);

    // Back: the trouble and the store's flag clear with a restore.
    await device(id);
    await waitFor(async () => !(await openTrouble('offline', id)()), 'the restore');
    expect(await openTrouble('unprotected', 'store-0001')()).toBeUndefined();
    const cleared = (await troubles('all')).find((t) => t.id === trouble.id)!;
    expect(cleared.clearedAt).not.toBeNull();
    expect((await gw.api('GET', `/api/devices/${id}`)).json).toMatchObject({ online: true, supervision: { state: 'ok', troubles: [] } });
  });

  it('silent on a live TCP connection: flagged when the keepalive expires', async () => {
    // A door sensor: its 10-minute window cannot be what flags it.
    const id = 'ds-home-0002';
    await rawDevice(id, 1);
    // It never sends a PINGREQ or a heartbeat again: the broker closes it after 1.5 keepalives.
    const trouble = await waitFor(openTrouble('offline', id), 'the offline trouble');
    expect(trouble.detail).toContain('keepalive timeout');
  });
});

describe('the status topic', () => {
  it('"offline" (a last will, or the device itself) is an offline trouble; "online" restores it', async () => {
    const id = 'ms-home-0002';
    const sensor = await device(id, undefined, { will: { topic: topics.status(id), payload: Buffer.from('"offline"'), qos: 1, retain: true } });
    await publish(sensor, topics.status(id), '"online"', { qos: 1, retain: true });
    await publish(sensor, topics.status(id), '"offline"', { qos: 1, retain: true });
    const trouble = await waitFor(openTrouble('offline', id), 'the offline trouble');
    expect(trouble.detail).toContain('status topic said offline');
    await publish(sensor, topics.status(id), 'online', { qos: 1, retain: true });
    await waitFor(async () => !(await openTrouble('offline', id)()), 'the restore');
  });
});

describe('heartbeats', () => {
  it('stop: a missed check-in after interval + grace, then a restore on the next one', async () => {
    const id = 'pb-store-0003';
    const button = await device(id);
    let seq = 1;
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 400));
      await heartbeat(button, id, seq++);
    }
    const lastBeat = Date.now();
    // 2.4 s of heartbeats, longer than the 2 s window: none was missed while they came.
    expect(await openTrouble('offline', id)()).toBeUndefined();
    const trouble = await waitFor(openTrouble('offline', id), 'the missed check-in', 15_000);
    expect(Date.parse(trouble.raisedAt)).toBeGreaterThanOrEqual(lastBeat + 2000);
    expect(trouble.detail).toContain('interval 1 s + grace 1 s');
    // Still connected, but not heard: offline.
    expect(button.connected).toBe(true);
    expect((await gw.api('GET', `/api/devices/${id}`)).json).toMatchObject({ online: false, supervision: { state: 'missed' } });

    await heartbeat(button, id, seq++);
    await waitFor(async () => !(await openTrouble('offline', id)()), 'the restore');
    expect((await gw.api('GET', `/api/devices/${id}`)).json).toMatchObject({ lastSeen: expect.any(String), battery: 90, firmware: '1.4.2' });
  });

  it('report a low battery as trouble, cleared once the battery is changed', async () => {
    const id = 'ms-home-0001';
    const sensor = await device(id);
    await heartbeat(sensor, id, 1, 24);
    const trouble = await waitFor(openTrouble('low-battery', id), 'the low-battery trouble');
    expect(trouble).toMatchObject({ siteId: 'home-0001', severity: 4 });
    expect(trouble.detail).toContain('25 %');
    // Just above the threshold is not "changed": no flapping at the edge.
    await heartbeat(sensor, id, 2, 27);
    await heartbeat(sensor, id, 3, 100);
    await waitFor(async () => !(await openTrouble('low-battery', id)()), 'the restore');
    const all = (await troubles('all')).filter((t) => t.kind === 'low-battery' && t.deviceId === id);
    expect(all).toHaveLength(1);
  });
});

describe('a busy gateway', () => {
  it('does not flag a device whose heartbeat reached the socket in time but was read late', async () => {
    // Bell window: 2 s + 1 s. The next heartbeat is written 2.5 s after the last, then the event loop
    // is blocked for 1 s, across the deadline: the heartbeat waits unread in the socket buffer.
    const id = 'ab-home-0002';
    const socket = await rawDevice(id, 0);
    let seq = 1;
    const beat = () => socket.write(mqttPacket.generate({
      cmd: 'publish', topic: topics.heartbeat(id), payload: Buffer.from(JSON.stringify({ seq: seq++, ts: Date.now() })), qos: 0, retain: false, dup: false,
    }));
    let exercised = 0;
    for (let round = 0; round < 4 && exercised < 2; round++) {
      beat();
      const sent = Date.now();
      await new Promise((r) => setTimeout(r, 2500));
      // A timer that fired too late would make this heartbeat late for real: not the case under test.
      if (Date.now() - sent > 2900) continue;
      beat();
      const until = Date.now() + 1000;
      while (Date.now() < until) { /* the gateway is busy */ }
      exercised++;
      await new Promise((r) => setTimeout(r, 300));
      // Not even raised and restored a moment later.
      expect((await troubles('all')).filter((t) => t.kind === 'offline' && t.deviceId === id)).toEqual([]);
    }
    expect(exercised).toBeGreaterThan(0);
    // It is still supervised: silence now is a missed check-in.
    await waitFor(openTrouble('offline', id), 'the missed check-in once it stops');
  });
});

describe('tamper', () => {
  it('is a trouble until the tamper alert is resolved', async () => {
    const id = 'ds-home-0001';
    const sensor = await device(id);
    await publish(sensor, topics.event(id), JSON.stringify({ seq: 7, ts: Date.now(), type: 'tamper' }));
    const trouble = await waitFor(openTrouble('tamper', id), 'the tamper trouble');
    expect(trouble.detail).toContain(deriveAlertId(id, 7));
    const resolved = await gw.api('POST', `/api/alerts/${deriveAlertId(id, 7)}/resolve`, { outcome: 'false-alarm' });
    expect(resolved.status).toBe(200);
    await waitFor(async () => !(await openTrouble('tamper', id)()), 'the tamper restore');
  });
});

describe('revocation and rotation', () => {
  it('DELETE kicks the connected device at once and refuses its reconnect', async () => {
    const id = 'pb-store-0004';
    const button = await device(id);
    const closed = new Promise<void>((resolve) => button.once('close', () => resolve()));
    const { status, json } = await gw.api('DELETE', `/api/devices/${id}`);
    expect(status).toBe(200);
    expect(json).toMatchObject({ id, revoked: true, online: false, supervision: { state: 'revoked' } });
    await closed;
    await expect(connectDevice(gw.mqttUrl, id, gw.deviceSecret(id))).rejects.toMatchObject({ code: 5 });
    // Its store has no button left.
    const flagged = await waitFor(openTrouble('unprotected', 'store-0004'), 'the store flagged');
    expect(flagged.detail).toContain('revoked');
    expect(await openTrouble('offline', id)()).toBeUndefined();
    expect((await gw.api('DELETE', `/api/devices/${id}`)).status).toBe(200);
    expect((await gw.api('DELETE', '/api/devices/pb-nobody')).status).toBe(404);
  });

  it('rotate-secret returns a new secret once; the old one is refused from then on', async () => {
    const id = 'ab-home-0001';
    const old = gw.deviceSecret(id);
    const bell = await device(id);
    const closed = new Promise<void>((resolve) => bell.once('close', () => resolve()));
    const first = await gw.api('POST', `/api/devices/${id}/rotate-secret`);
    expect(first.status).toBe(200);
    expect(first.json.secret).toEqual(expect.any(String));
    await closed;
    await expect(connectDevice(gw.mqttUrl, id, old)).rejects.toMatchObject({ code: 5 });
    await device(id, first.json.secret);
    expect((await gw.api('GET', `/api/devices/${id}`)).json.secret).toBeUndefined();
    const second = await gw.api('POST', `/api/devices/${id}/rotate-secret`);
    expect(second.json.secret).not.toBe(first.json.secret);
    expect((await gw.api('POST', '/api/devices/pb-store-0004/rotate-secret')).status).toBe(409);
  });

  it('needs the admin role', async () => {
    const viewer = (await gw.api('POST', '/api/tokens', { role: 'viewer', name: 'supervision viewer' })).json.token;
    expect((await gw.api('DELETE', '/api/devices/ab-home-0002', undefined, viewer)).status).toBe(403);
    expect((await gw.api('POST', '/api/devices/ab-home-0002/rotate-secret', undefined, viewer)).status).toBe(403);
    expect((await gw.api('GET', '/api/troubles', undefined, viewer)).status).toBe(200);
    expect((await gw.api('GET', '/api/troubles?state=some')).json).toMatchObject({ error: 'INVALID_REQUEST', field: 'state' });
  });
});

describe('across a restart', () => {
  it('keeps open troubles open', async () => {
    const open = await troubles();
    expect(open.length).toBeGreaterThan(0);
    first = gw;
    await first.gateway.stop();
    gw = await startTestGateway({ supervision: SUPERVISION }, { dataDir: first.config.dataDir, police: first.police });
    const again = await troubles();
    for (const t of open) expect(again.find((a) => a.id === t.id)).toMatchObject({ kind: t.kind, raisedAt: t.raisedAt, clearedAt: null });
  });
});
