import { describe, it, expect } from 'vitest';
import { topics, parseDeviceTopic, DEVICE_UPLINK, DEVICE_DOWNLINK, isHeartbeatTopicOf, isUplink } from '../protocol/topics.ts';
import { deriveAlertId, ALERT_ID_PATTERN } from '../protocol/alert-id.ts';
import {
  buildPoliceBody, signBody, verifySignature, policeHeaders, PoliceAlertBody,
  IDEMPOTENCY_HEADER, SIGNATURE_HEADER, type PoliceBodyInput,
} from '../protocol/police.ts';
import { parseHeartbeat, parseJsonPayload } from '../protocol/json-payload.ts';
import { EventPayload, HeartbeatPayload, isWellFormedHeartbeat, MAX_JSON_PAYLOAD_BYTES, type Site } from '../protocol/schemas.ts';
import { seededRandom } from '../device-sim/scenarios.ts';

describe('topics', () => {
  const channels = [...DEVICE_UPLINK, ...DEVICE_DOWNLINK];

  it.each(channels)('builds and parses the %s topic', (channel) => {
    const topic = topics[channel]('pb-1');
    expect(topic).toBe(`safehaven/v1/dev/pb-1/${channel}`);
    expect(parseDeviceTopic(topic)).toEqual({ deviceId: 'pb-1', channel });
  });

  it('tells a device\'s own heartbeat topic from every near miss', () => {
    expect(isHeartbeatTopicOf(topics.heartbeat('pb-1'), 'pb-1')).toBe(true);
    for (const topic of [topics.heartbeat('pb-12'), topics.heartbeat('pb-'), topics.event('pb-1'), `${topics.heartbeat('pb-1')}/x`,
      'safehaven/v2/dev/pb-1/heartbeat', 'safehaven/v1/dev/pb-1/heartbeaT', 'x/safehaven/v1/dev/pb-1/heartbeat', '']) {
      expect(isHeartbeatTopicOf(topic, 'pb-1'), topic).toBe(false);
    }
  });

  it('builds the integrator alert topic, which is not a device topic', () => {
    const topic = topics.alert('al-0123456789abcdef0123');
    expect(topic).toBe('safehaven/v1/alerts/al-0123456789abcdef0123');
    expect(parseDeviceTopic(topic)).toBeNull();
  });

  it('accepts an id of exactly 23 characters', () => {
    const id = 'a'.repeat(23);
    expect(parseDeviceTopic(`safehaven/v1/dev/${id}/event`)).toEqual({ deviceId: id, channel: 'event' });
  });

  it.each([
    ['extra level', 'safehaven/v1/dev/pb-1/event/extra'],
    ['trailing slash', 'safehaven/v1/dev/pb-1/event/'],
    ['missing channel', 'safehaven/v1/dev/pb-1'],
    ['+ as id', 'safehaven/v1/dev/+/event'],
    ['+ as channel', 'safehaven/v1/dev/pb-1/+'],
    ['# after dev', 'safehaven/v1/dev/#'],
    ['# as channel', 'safehaven/v1/dev/pb-1/#'],
    ['unknown channel', 'safehaven/v1/dev/pb-1/alarm'],
    ['channel in upper case', 'safehaven/v1/dev/pb-1/Event'],
    ['id in upper case', 'safehaven/v1/dev/PB-1/event'],
    ['id starting with -', 'safehaven/v1/dev/-pb/event'],
    ['id with a space', 'safehaven/v1/dev/pb 1/event'],
    ['empty id', 'safehaven/v1/dev//event'],
    ['id of 24 characters', `safehaven/v1/dev/${'a'.repeat(24)}/event`],
    ['$SYS topic', '$SYS/broker/uptime'],
    ['empty topic', ''],
    ['leading slash', '/safehaven/v1/dev/pb-1/event'],
    ['other protocol version', 'safehaven/v2/dev/pb-1/event'],
  ])('rejects %s', (_label, topic) => {
    expect(parseDeviceTopic(topic)).toBeNull();
  });

  it('tells uplink from downlink channels', () => {
    expect(DEVICE_UPLINK.every((c) => isUplink(c))).toBe(true);
    expect(DEVICE_DOWNLINK.some((c) => isUplink(c))).toBe(false);
  });
});

describe('deriveAlertId', () => {
  it('is deterministic', () => {
    expect(deriveAlertId('pb-1', 7)).toBe(deriveAlertId('pb-1', 7));
  });

  it('differs by device and by seq', () => {
    const ids = new Set([deriveAlertId('pb-1', 7), deriveAlertId('pb-2', 7), deriveAlertId('pb-1', 8)]);
    expect(ids.size).toBe(3);
  });

  it('does not confuse (device, seq) pairs that concatenate alike', () => {
    expect(deriveAlertId('pb-1', 23)).not.toBe(deriveAlertId('pb-12', 3));
  });

  it.each([0, 1, 42, Number.MAX_SAFE_INTEGER])('matches ALERT_ID_PATTERN and fits 23 characters (seq %d)', (seq) => {
    const id = deriveAlertId('a'.repeat(23), seq);
    expect(id).toMatch(ALERT_ID_PATTERN);
    expect(id.length).toBeLessThanOrEqual(23);
  });
});

describe('police webhook', () => {
  const site: Site = {
    id: 'st-gangnam-001', kind: 'store', name: 'GS25 Yeoksam', address: '123 Teheran-ro, Gangnam-gu, Seoul',
    phone: '02-555-0134', lat: 37.5, lon: 127.03, district: 'Gangnam-gu', policeStation: 'Gangnam Police Station',
  };
  const input: PoliceBodyInput = {
    alertId: deriveAlertId('pb-1', 1), type: 'panic', site, deviceId: 'pb-1',
    pressedAt: Date.UTC(2025, 0, 2, 3, 4, 5), receivedAt: Date.UTC(2025, 0, 2, 3, 4, 6), attempt: 1,
    priority: 100, clockSkew: false, sentAt: Date.UTC(2025, 0, 2, 3, 4, 7),
  };
  const SECRET = 'police-secret-0123456789';

  it('builds a body that passes PoliceAlertBody with every fixed field', () => {
    const body = JSON.parse(buildPoliceBody(input)) as Record<string, unknown>;
    expect(PoliceAlertBody.safeParse(body).success).toBe(true);
    expect(body).toMatchObject({
      alertId: input.alertId, type: 'panic', site, deviceId: 'pb-1', attempt: 1,
      pressedAt: '2025-01-02T03:04:05.000Z', receivedAt: '2025-01-02T03:04:06.000Z', sentAt: '2025-01-02T03:04:07.000Z',
      test: false,
    });
    expect(Object.keys(body.site as object).sort()).toEqual(
      ['address', 'district', 'id', 'kind', 'lat', 'lon', 'name', 'phone', 'policeStation'],
    );
  });

  it('copies only the fixed site fields, whatever else the record carries', () => {
    const record = { ...site, createdAt: 1, internalNote: 'do not send' } as Site;
    const body = JSON.parse(buildPoliceBody({ ...input, site: record })) as { site: object };
    expect(body.site).toEqual(site);
  });

  it('flags an installer test press', () => {
    const body = JSON.parse(buildPoliceBody({ ...input, type: 'test' })) as { test: boolean };
    expect(body.test).toBe(true);
  });

  it('verifies its own signature', () => {
    const body = buildPoliceBody(input);
    expect(verifySignature(SECRET, body, signBody(SECRET, body))).toBe(true);
  });

  const body = buildPoliceBody(input);
  const good = signBody(SECRET, body);
  it.each([
    ['a wrong secret', SECRET, body, signBody('another-secret-0123456', body)],
    ['a tampered body', SECRET, body.replace('"attempt":1', '"attempt":2'), good],
    ['a missing header', SECRET, body, undefined],
    ['an empty header', SECRET, body, ''],
    ['a wrong prefix', SECRET, body, good.replace('sha256=', 'sha1=')],
    ['no prefix', SECRET, body, good.slice('sha256='.length)],
    ['a truncated signature', SECRET, body, good.slice(0, -2)],
  ])('rejects %s', (_label, secret, signedBody, header) => {
    expect(verifySignature(secret, signedBody, header)).toBe(false);
  });

  it('sets the idempotency key to the alert id and signs the body', () => {
    const headers = policeHeaders(input.alertId, SECRET, body);
    expect(headers[IDEMPOTENCY_HEADER]).toBe(input.alertId);
    expect(headers['content-type']).toBe('application/json');
    expect(verifySignature(SECRET, body, headers[SIGNATURE_HEADER])).toBe(true);
  });
});

describe('heartbeats: the hand check and the schema', () => {
  const valid = { seq: 43, ts: 1_700_000_000_000, battery: 87, rssi: -60, fw: '1.4.2' };

  it('accepts what the schema accepts and refuses what it refuses, on thousands of mutations', () => {
    const random = seededRandom(7);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const values = [0, -0, 1, -1, 100, 101, -150, -151, 1.5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 1e300,
      '1', '', 'x'.repeat(32), 'x'.repeat(33), '한'.repeat(32), null, true, [], {}, [1]];
    const keys = ['seq', 'ts', 'battery', 'rssi', 'fw', 'extra', '__proto__', 'constructor', 'toString'];
    let accepted = 0;
    for (let i = 0; i < 20_000; i++) {
      const o: Record<string, unknown> = random() < 0.5 ? { ...valid } : { seq: 1, ts: 2 };
      for (let m = Math.floor(random() * 3); m > 0; m--) {
        const key = pick(keys);
        if (random() < 0.3) delete o[key];
        else o[key] = pick(values);
      }
      // Through JSON, as the wire delivers it (a "__proto__" key becomes an own property there).
      const json = JSON.parse(JSON.stringify(o).replace('"constructor"', '"__proto__"'));
      const schema = HeartbeatPayload.safeParse(json).success;
      expect(isWellFormedHeartbeat(json), JSON.stringify(json)).toBe(schema);
      if (schema) accepted++;
    }
    expect(accepted).toBeGreaterThan(1000);
    for (const other of [null, 1, 'x', [], [valid]]) expect(isWellFormedHeartbeat(other)).toBe(false);
  });

  it('returns the heartbeat, or the schema\'s rejection naming the field', () => {
    expect(parseHeartbeat(JSON.stringify(valid))).toEqual({ ok: true, value: valid });
    expect(parseHeartbeat(JSON.stringify({ ...valid, rssi: 3 }))).toMatchObject({ ok: false, reason: 'invalid', field: 'rssi' });
    expect(parseHeartbeat(JSON.stringify({ ...valid, extra: 1 }))).toMatchObject({ ok: false, reason: 'invalid', field: 'extra' });
    expect(parseHeartbeat('{"seq": 1,')).toMatchObject({ ok: false, reason: 'bad-json' });
    expect(parseHeartbeat(JSON.stringify({ ...valid, fw: 'x'.repeat(MAX_JSON_PAYLOAD_BYTES) }))).toMatchObject({ ok: false, reason: 'too-large' });
  });
});

describe('parseJsonPayload(EventPayload)', () => {
  const valid = { seq: 1, ts: 1_700_000_000_000, type: 'panic' };
  const json = (value: unknown) => JSON.stringify(value);

  it.each([
    ['a string', json(valid)],
    ['a buffer', Buffer.from(json(valid))],
  ])('accepts a valid event as %s', (_label, payload) => {
    expect(parseJsonPayload(EventPayload, payload)).toEqual({ ok: true, value: valid });
  });

  it('accepts the optional fields', () => {
    const value = { ...valid, battery: 80, rssi: -70 };
    expect(parseJsonPayload(EventPayload, json(value))).toEqual({ ok: true, value });
  });

  it('refuses a payload over the limit before parsing it', () => {
    const payload = json({ ...valid, pad: 'x'.repeat(MAX_JSON_PAYLOAD_BYTES) });
    expect(parseJsonPayload(EventPayload, payload)).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it('counts the limit in bytes, not characters', () => {
    const payload = json({ ...valid, note: '한'.repeat(2000) }); // ~2,000 characters, ~6,000 bytes
    expect(payload.length).toBeLessThan(MAX_JSON_PAYLOAD_BYTES);
    expect(parseJsonPayload(EventPayload, payload)).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it('honours a custom limit', () => {
    expect(parseJsonPayload(EventPayload, json(valid), 10)).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it.each(['{"seq":', 'panic', ''])('refuses non-JSON %j', (payload) => {
    expect(parseJsonPayload(EventPayload, payload)).toMatchObject({ ok: false, reason: 'bad-json' });
  });

  it.each([
    ['seq', { ...valid, seq: -1 }],
    ['seq', { ...valid, seq: 1.5 }],
    ['seq', { ...valid, seq: '1' }],
    ['type', { ...valid, type: 'fire' }],
    ['ts', { seq: 1, type: 'panic' }],
    ['battery', { ...valid, battery: 101 }],
    ['extra', { ...valid, extra: true }],
  ])('names the field %s of an invalid event', (field, value) => {
    const result = parseJsonPayload(EventPayload, json(value));
    expect(result).toMatchObject({ ok: false, reason: 'invalid', field });
    if (!result.ok) expect(result.message.startsWith(`${field}: `)).toBe(true);
  });

  it('refuses a JSON value that is not an object', () => {
    expect(parseJsonPayload(EventPayload, '[1,2]')).toMatchObject({ ok: false, reason: 'invalid' });
  });
});
