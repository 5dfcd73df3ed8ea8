// The hostile suite (issue 9): attacks against the real gateway over real
// sockets — MQTT over TCP, HTTP — one after another on one gateway. Each
// attack must be refused with the documented behaviour, and after the whole
// battery the gateway is alive and a real press still reaches the police.
import mqtt, { type MqttClient } from 'mqtt';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deriveAlertId, signBody, SIGNATURE_HEADER, topics } from '../protocol/index.ts';
import { collect, connectDevice, POLICE_SECRET, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

const CCTV = { username: 'cctv-centre', password: 'cctv-centre-password-1' };
const DEVICE_LIMIT_PER_MINUTE = 40;
const CONNECT_TIMEOUT_MS = 800;
const API_LIMIT_PER_MINUTE = 400;

let gw: TestGateway;
/** The gateway's clock runs this far ahead of the wall clock (expired tokens). */
let clockAheadMs = 0;
const clients: MqttClient[] = [];
const sockets: Socket[] = [];

const button = (n: number) => `pb-store-${String(n).padStart(4, '0')}`;
const press = (seq: number, extra: Record<string, unknown> = {}) => JSON.stringify({ seq, ts: Date.now(), type: 'panic', ...extra });

async function device(id: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await connectDevice(gw.mqttUrl, id, gw.deviceSecret(id), extra);
  clients.push(client);
  return client;
}

/** CONNACK return code of a refused connect (5 = not authorized, 2 = identifier rejected). */
async function refusedCode(opts: mqtt.IClientOptions): Promise<number | undefined> {
  const client = mqtt.connect(gw.mqttUrl, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  try {
    const err = await new Promise<Error & { code?: number }>((resolve, reject) => {
      client.once('error', resolve);
      client.once('connect', () => reject(new Error(`connect as ${opts.username ?? 'anonymous'} was accepted`)));
    });
    return err.code;
  } finally {
    client.end(true);
  }
}

/** SUBACK codes; 128 = refused. */
function subscribe(client: MqttClient, topic: string): Promise<number> {
  return new Promise((resolve, reject) => client.subscribe(topic, { qos: 1 }, (err, granted) => {
    const suback = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted;
    if (suback) return resolve(suback[0]!);
    return err ? reject(err) : resolve(granted![0]!.qos);
  }));
}

/** MQTT 3.1.1 CONNECT with a zero-length client id, clean session 0, username and password. */
function emptyIdPersistentConnect(username: string, password: string): Buffer {
  const str = (text: string) => {
    const bytes = Buffer.from(text);
    return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
  };
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc0, 0, 30]), str(''), str(username), str(password)]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => (client.connected ? client.once('close', () => resolve()) : resolve()));
}

function rawSocket(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(gw.info.mqttPort, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
    sockets.push(socket);
  });
}

const socketClosed = (socket: Socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));
const alertIds = async () => ((await gw.api('GET', '/api/alerts?limit=500')).json.items as Array<{ id: string }>).map((a) => a.id);
const policeGot = (alertId: string) => gw.police.received().some((a) => a.idempotencyKey === alertId);

beforeAll(async () => {
  gw = await startTestGateway({
    demo: { stores: 12, homes: 0 },
    mqtt: {
      host: '127.0.0.1', port: 0, connectTimeoutMs: CONNECT_TIMEOUT_MS, deviceMessagesPerMinute: DEVICE_LIMIT_PER_MINUTE,
      serviceAccounts: [{ ...CCTV, subscribe: ['safehaven/v1/alerts/#'], deny: ['safehaven/v1/dev/#'] }],
    },
    http: { host: '127.0.0.1', port: 0, rateLimitPerMinute: API_LIMIT_PER_MINUTE },
  }, { deps: { clock: { now: () => Date.now() + clockAheadMs } } });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  for (const s of sockets.splice(0)) s.destroy();
});

afterAll(async () => {
  await gw?.stop();
});

describe('MQTT identity', () => {
  it('refuses anonymous, unknown and wrong-password connects with "not authorized" (5)', async () => {
    expect(await refusedCode({ clientId: 'anon' })).toBe(5);
    expect(await refusedCode({ clientId: 'pb-nobody', username: 'pb-nobody', password: 'x' })).toBe(5);
    expect(await refusedCode({ clientId: button(1), username: button(1), password: 'not-the-secret' })).toBe(5);
    expect(await refusedCode({ clientId: 'x', username: CCTV.username, password: 'wrong-password-000' })).toBe(5);
    expect(gw.gateway.counters.total('mqtt_auth_failures_total')).toBeGreaterThanOrEqual(4);
  });

  it('refuses a client id that is not the username, and a service account taking a device id', async () => {
    // Device 2 with its own secret trying to hold device 1's session.
    expect(await refusedCode({ clientId: button(1), username: button(2), password: gw.deviceSecret(button(2)) })).toBe(5);
    expect(await refusedCode({ clientId: button(1), username: CCTV.username, password: CCTV.password })).toBe(5);
    expect(gw.gateway.counters.get('mqtt_auth_failures_total', { reason: 'client-id-mismatch' })).toBe(1);
    expect(gw.gateway.counters.get('mqtt_auth_failures_total', { reason: 'client-id-is-a-device' })).toBe(1);
  });

  it('refuses an empty client id with a persistent session (2) and a will on a foreign topic', async () => {
    // Neither mqtt.js nor mqtt-packet will write this CONNECT, so it is spelled out; CONNACK is 0x20 0x02 flags code.
    const socket = await rawSocket();
    const connack = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.write(emptyIdPersistentConnect(button(1), gw.deviceSecret(button(1))));
    expect([...(await connack)]).toEqual([0x20, 0x02, 0x00, 0x02]);
    const will = { topic: topics.status(button(2)), payload: Buffer.from('"offline"'), qos: 1 as const, retain: true };
    expect(await refusedCode({ clientId: button(1), username: button(1), password: gw.deviceSecret(button(1)), will })).toBe(5);
  });
});

describe('MQTT authorisation', () => {
  it('gives a device only its own ack and config: wildcards, $SYS and other devices are SUBACK 128', async () => {
    const d = await device(button(1));
    for (const topic of ['#', '+/+/+/+/+', 'safehaven/v1/dev/+/ack', '$SYS/#', topics.ack(button(2)), topics.event(button(1)), 'safehaven/v1/alerts/#']) {
      expect(await subscribe(d, topic), topic).toBe(128);
    }
    expect(await subscribe(d, topics.ack(button(1)))).toBe(1);
  });

  it('closes a device that publishes on another device\'s topic, and raises no alert for it', async () => {
    const d = await device(button(3));
    const gone = closed(d);
    d.publish(topics.event(button(4)), press(1), { qos: 1 });
    await gone;
    expect(await alertIds()).not.toContain(deriveAlertId(button(4), 1));
    expect(gw.gateway.counters.get('mqtt_publish_refused_total', { reason: 'foreign-topic' })).toBe(1);
  });

  it('lets a service account follow alerts but never device topics, nor publish on them', async () => {
    const cctv = mqtt.connect(gw.mqttUrl, { clientId: 'cctv-1', ...CCTV, reconnectPeriod: 0 });
    clients.push(cctv);
    await new Promise((resolve, reject) => { cctv.once('connect', resolve); cctv.once('error', reject); });
    const seen = collect(cctv);
    expect(await subscribe(cctv, 'safehaven/v1/alerts/#')).toBe(1);
    expect(await subscribe(cctv, 'safehaven/v1/dev/+/event')).toBe(128);
    expect(await subscribe(cctv, '#')).toBe(128);

    const d = await device(button(5));
    await publish(d, topics.event(button(5)), press(1));
    const alertId = deriveAlertId(button(5), 1);
    await waitFor(() => seen.some((m) => m.topic === topics.alert(alertId)), 'the alert on the integrator topic');
    expect(seen.every((m) => m.topic.startsWith('safehaven/v1/alerts/'))).toBe(true);

    const gone = closed(cctv);
    cctv.publish(topics.event(button(5)), press(2), { qos: 1 });
    await gone;
    expect(await alertIds()).not.toContain(deriveAlertId(button(5), 2));
  });
});

describe('MQTT garbage and floods', () => {
  it('closes a connection that sends garbage bytes instead of CONNECT', async () => {
    const socket = await rawSocket();
    socket.write(randomBytes(512));
    await socketClosed(socket);
  });

  it('closes half-open CONNECTs after the connect timeout', async () => {
    const flood = await Promise.all(Array.from({ length: 100 }, () => rawSocket()));
    // A CONNECT fixed header promising 60 bytes, then silence.
    for (const s of flood) s.write(Buffer.from([0x10, 60, 0x00, 0x04]));
    await Promise.all(flood.map(socketClosed));
  });

  it('cuts an 8 MB publish at its header, before the body is read', async () => {
    const d = await device(button(6));
    const gone = closed(d);
    const before = gw.gateway.counters.total('mqtt_oversized_packets_total');
    d.publish(topics.event(button(6)), Buffer.alloc(8 * 1024 * 1024, 0x20), { qos: 1 });
    await gone;
    expect(gw.gateway.counters.total('mqtt_oversized_packets_total')).toBe(before + 1);
  });

  it('cuts a connection whose PUBLISH header alone declares more than the limit, with no body sent', async () => {
    const d = await device(button(9));
    const gone = closed(d);
    const before = gw.gateway.counters.total('mqtt_oversized_packets_total');
    // PUBLISH QoS 1, remaining length 8 MiB (0x80 0x80 0x80 0x04), then nothing: only the header can say it is too big.
    d.stream.write(Buffer.from([0x32, 0x80, 0x80, 0x80, 0x04]));
    await gone;
    expect(gw.gateway.counters.total('mqtt_oversized_packets_total')).toBe(before + 1);
  });

  it('refuses malformed JSON, wrong types, a negative and a replayed seq without an alert, and keeps the device connected', async () => {
    const id = button(7);
    const d = await device(id);
    await publish(d, topics.event(id), press(10));
    await waitFor(() => policeGot(deriveAlertId(id, 10)), 'the first, valid press');
    const before = await alertIds();
    for (const payload of ['{"seq": 11, "ts": ', '[]', '"panic"', JSON.stringify({ seq: '11', ts: Date.now(), type: 'panic' }),
      JSON.stringify({ seq: 11, ts: Date.now(), type: 'fire-in-the-hole' }), press(-1), press(11, { extra: true }), Buffer.from([0xff, 0xfe, 0x00])]) {
      await publish(d, topics.event(id), payload);
    }
    await publish(d, topics.event(id), press(3)); // below the highest seq seen: a replay
    expect(await alertIds()).toEqual(before);
    expect(gw.gateway.counters.total('device_payload_rejected_total')).toBeGreaterThanOrEqual(7);
    expect(gw.gateway.counters.total('alerts_replay_refused_total')).toBeGreaterThanOrEqual(1);
    expect(d.connected).toBe(true);
  });

  it('drops a flooding device\'s heartbeats, flags it for admins, and still takes its next panic', async () => {
    const id = button(8);
    const d = await device(id);
    for (let i = 0; i < DEVICE_LIMIT_PER_MINUTE * 2; i++) d.publish(topics.heartbeat(id), JSON.stringify({ seq: i, ts: Date.now() }), { qos: 0 });
    await waitFor(() => gw.gateway.counters.total('device_messages_dropped_total') > 0, 'dropped heartbeats');
    const security = await gw.api('GET', '/api/security');
    expect(security.json.floodingDevices).toContain(id);
    const troubles = (await gw.api('GET', '/api/troubles')).json.items as Array<{ kind: string; deviceId: string | null }>;
    expect(troubles).toContainEqual(expect.objectContaining({ kind: 'flooding', deviceId: id }));
    await publish(d, topics.event(id), press(1000));
    await waitFor(() => policeGot(deriveAlertId(id, 1000)), 'the flooding device\'s panic at the police');
  });
});

describe('police side', () => {
  const statusBody = (alertId: string, sentAt = new Date(Date.now() + clockAheadMs).toISOString()) =>
    JSON.stringify({ alertId, status: 'dispatched', sentAt });
  const callback = (body: string, signature: string | undefined) => fetch(`${gw.httpUrl}/api/police/status`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...(signature ? { [SIGNATURE_HEADER]: signature } : {}) }, body,
  });

  it('refuses forged, unsigned and replayed status callbacks, and takes a genuine one', async () => {
    const alertId = deriveAlertId(button(5), 1);
    const body = statusBody(alertId);
    expect((await callback(body, undefined)).status).toBe(401);
    expect((await callback(body, signBody('a-secret-the-attacker-made-up', body))).status).toBe(401);
    const stale = statusBody(alertId, new Date(Date.now() - 10 * 60_000).toISOString());
    const replay = await callback(stale, signBody(POLICE_SECRET, stale));
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: string }).error).toBe('STALE_CALLBACK');
    expect((await gw.api('GET', `/api/alerts/${alertId}`)).json.policeStatus).not.toBe('dispatched');
    expect((await callback(body, signBody(POLICE_SECRET, body))).status).toBe(200);
    expect((await gw.api('GET', `/api/alerts/${alertId}`)).json.policeStatus).toBe('dispatched');
  });
});

describe('HTTP API', () => {
  it('answers 401 to no, bad and revoked tokens, 403 to a viewer acting, 401 to an expired token', async () => {
    expect((await gw.api('GET', '/api/alerts', undefined, null)).status).toBe(401);
    expect((await gw.api('GET', '/api/alerts', undefined, 'sht_not-a-real-token')).status).toBe(401);

    const viewer = (await gw.api('POST', '/api/tokens', { role: 'viewer', name: 'wall-screen' })).json;
    expect((await gw.api('GET', '/api/alerts', undefined, viewer.token)).status).toBe(200);
    const alertId = deriveAlertId(button(5), 1);
    const ack = await gw.api('POST', `/api/alerts/${alertId}/ack`, {}, viewer.token);
    expect(ack.status).toBe(403);
    expect(ack.json.error).toBe('FORBIDDEN');
    expect((await gw.api('POST', '/api/devices', { siteId: 'store-0001', type: 'panic-button' }, viewer.token)).status).toBe(403);

    expect((await gw.api('DELETE', `/api/tokens/${viewer.id}`)).status).toBe(200);
    expect((await gw.api('GET', '/api/alerts', undefined, viewer.token)).json.error).toBe('BAD_TOKEN');
    expect((await gw.api('GET', '/api/tokens')).json.items.find((t: { id: string }) => t.id === viewer.id).revokedAt).not.toBeNull();

    const shortLived = (await gw.api('POST', '/api/tokens', { role: 'dispatcher', name: 'night-shift', expiresInSec: 60 })).json;
    expect((await gw.api('GET', '/api/alerts', undefined, shortLived.token)).status).toBe(200);
    clockAheadMs = 61_000;
    try {
      const expired = await gw.api('GET', '/api/alerts', undefined, shortLived.token);
      expect(expired.status).toBe(401);
      expect(expired.json.error).toBe('TOKEN_EXPIRED');
    } finally {
      clockAheadMs = 0;
    }
  });

  it('refuses a 20 MB body with 413 before reading it, and a malformed one with 400 naming the field', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${gw.httpUrl}/api/devices`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer x' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      // The server may answer and close while we are still writing.
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      req.end(Buffer.alloc(20 * 1024 * 1024, 0x20));
    });
    expect(status).toBe(413);
    const bad = await gw.api('POST', '/api/devices', { siteId: 'store-0001', type: 'toaster' });
    expect(bad.status).toBe(400);
    expect(bad.json.field).toBe('type');
  });

  it('sends security headers: CSP without inline scripts, no framing, no caching of the API', async () => {
    const res = await fetch(`${gw.httpUrl}/`);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect((await fetch(`${gw.httpUrl}/api/alerts`)).headers.get('cache-control')).toBe('no-store');
  });

  it('hides home addresses and phones from viewers and audits a dispatcher\'s read', async () => {
    await gw.gateway['registry']!.addSite({
      id: 'home-9001', kind: 'home', name: 'Home patrol household #9001', address: '12 Hidden-ro, Unit 301, Mapo-gu, Seoul',
      phone: '010-5555-0101', lat: 37.5563, lon: 126.9236, district: 'Mapo-gu', policeStation: 'Mapo Police Station',
    });
    const viewer = (await gw.api('POST', '/api/tokens', { role: 'viewer', name: 'statistician' })).json.token;
    const dispatcher = (await gw.api('POST', '/api/tokens', { role: 'dispatcher', name: 'dispatcher-kim' })).json.token;
    const seenByViewer = (await gw.api('GET', '/api/sites', undefined, viewer)).json.items.find((s: { id: string }) => s.id === 'home-9001');
    expect(seenByViewer.address).not.toContain('Hidden-ro');
    expect(seenByViewer.phone).toBe('');
    const seenByDispatcher = (await gw.api('GET', '/api/sites', undefined, dispatcher)).json.items.find((s: { id: string }) => s.id === 'home-9001');
    expect(seenByDispatcher.phone).toBe('010-5555-0101');
    // The same home through one of its devices.
    const sensor = (await gw.api('POST', '/api/devices', { siteId: 'home-9001', type: 'door-sensor' })).json.id as string;
    const viaDevice = (await gw.api('GET', `/api/devices/${sensor}`, undefined, viewer)).json.site;
    expect(viaDevice).toMatchObject({ id: 'home-9001', phone: '', address: 'Mapo-gu' });
    expect(viaDevice.lat).toBe(37.56);
    const audited = async () => ((await gw.api('GET', '/api/audit?limit=1000')).json.items as Array<{ actor: string; action: string }>)
      .filter((e) => e.actor === 'dispatcher-kim' && e.action === 'homes.read.sites').length;
    await waitFor(async () => (await audited()) >= 1, 'the audit entry of the dispatcher\'s read');
  });
});

describe('after the battery', () => {
  it('is alive and healthy, and a real press still reaches the police', async () => {
    const health = await fetch(`${gw.httpUrl}/healthz`);
    expect(health.status).toBe(200);
    const id = button(12);
    const d = await device(id);
    const acks = collect(d);
    await subscribe(d, topics.ack(id));
    await publish(d, topics.event(id), press(1));
    await waitFor(() => policeGot(deriveAlertId(id, 1)), 'the press at the police');
    await waitFor(() => acks.some((m) => m.body.state === 'acknowledged'), 'the device told help is coming');
  });

  it('answers 429 to bad tokens from an address past its limit, while valid tokens from it still get in', async () => {
    const dispatcher = (await gw.api('POST', '/api/tokens', { role: 'dispatcher', name: 'behind-the-same-nat' })).json.token;
    let refused: { status: number; json: any } | undefined;
    for (let i = 0; i < 40 && !refused; i++) {
      const res = await gw.api('GET', '/api/alerts', undefined, `sht_guess-${i}`);
      if (res.status === 429) refused = res;
    }
    expect(refused?.json.error).toBe('TOO_MANY_AUTH_FAILURES');
    expect((await gw.api('GET', '/api/alerts', undefined, dispatcher)).status).toBe(200);
  });

  it('rate-limits one address flooding the API with 429 and a JSON error (last: it locks this address out)', async () => {
    let limited: { status: number; json: any } | undefined;
    for (let i = 0; i < API_LIMIT_PER_MINUTE + 10 && !limited; i++) {
      const res = await gw.api('GET', '/healthz', undefined, null);
      if (res.status === 429) limited = res;
    }
    expect(limited?.json).toMatchObject({ statusCode: 429, error: 'RATE_LIMITED' });
    expect(gw.gateway.counters.total('http_rate_limited_total')).toBeGreaterThanOrEqual(1);
  });
});
