// The operator API over a real socket: provisioning, roles, validation errors
// that name the field, acknowledge and resolve with their audit trail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveAlertId, topics } from '../protocol/index.ts';
import { ENV_VARS } from '../gateway/config.ts';
import { readFileSync } from 'node:fs';
import { connectDevice, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

let gw: TestGateway;
let viewer: string;
let dispatcher: string;

beforeAll(async () => {
  gw = await startTestGateway();
  viewer = (await gw.api('POST', '/api/tokens', { role: 'viewer', name: 'night viewer' })).json.token;
  dispatcher = (await gw.api('POST', '/api/tokens', { role: 'dispatcher', name: 'dispatcher kim' })).json.token;
});

afterAll(async () => {
  await gw.stop();
});

describe('provisioning', () => {
  it('returns the secret once, and the device can connect and press with it', async () => {
    const { status, json } = await gw.api('POST', '/api/devices', { siteId: 'store-0002', type: 'panic-button' });
    expect(status).toBe(201);
    expect(json).toMatchObject({ siteId: 'store-0002', type: 'panic-button', online: false });
    expect(json.secret).toMatch(/^[\w-]{32}$/);
    const listed = await gw.api('GET', `/api/devices/${json.id}`, undefined, viewer);
    expect(listed.json).not.toHaveProperty('secret');
    expect(JSON.stringify((await gw.api('GET', '/api/devices')).json)).not.toContain(json.secret);

    const device = await connectDevice(gw.mqttUrl, json.id, json.secret);
    await publish(device, topics.event(json.id), JSON.stringify({ seq: 1, ts: Date.now(), type: 'panic' }));
    await waitFor(() => gw.police.received().find((a) => a.idempotencyKey === deriveAlertId(json.id, 1)), 'police receipt');
    expect((await gw.api('GET', `/api/devices/${json.id}`)).json.online).toBe(true);
    await device.endAsync(true);
  });

  it.each([
    [{}, 'siteId'],
    [{ siteId: 'store-0001' }, 'type'],
    [{ siteId: 'store-0001', type: 'toaster' }, 'type'],
    [{ siteId: 'no-such-site', type: 'panic-button' }, 'siteId'],
    [{ siteId: 'store-0001', type: 'panic-button', extra: 1 }, 'extra'],
  ])('refuses %j with a 400 naming %s', async (body, field) => {
    const { status, json } = await gw.api('POST', '/api/devices', body);
    expect(status).toBe(400);
    expect(json.field).toBe(field);
    expect(json.message).toContain(field);
  });

  it('refuses malformed JSON and an oversized body with JSON errors', async () => {
    const bad = await gw.api('POST', '/api/devices', '{"siteId": ');
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBeTruthy();
    const huge = await gw.api('POST', '/api/devices', JSON.stringify({ siteId: 'x'.repeat(400_000) }));
    expect(huge.status).toBe(413);
  });

  it('refuses a duplicate device id with 409', async () => {
    const { status, json } = await gw.api('POST', '/api/devices', { siteId: 'store-0001', type: 'panic-button', id: 'pb-store-0001' });
    expect(status).toBe(409);
    expect(json.field).toBe('id');
  });
});

describe('tokens and roles', () => {
  it.each([
    ['no token', null, 401],
    ['a bad token', 'sht_not-a-real-token', 401],
    ['a viewer token', 'viewer', 403],
    ['a dispatcher token', 'dispatcher', 403],
  ])('POST /api/devices with %s → %s', async (_what, token, status) => {
    const t = token === 'viewer' ? viewer : token === 'dispatcher' ? dispatcher : token;
    const res = await gw.api('POST', '/api/devices', { siteId: 'store-0001', type: 'panic-button' }, t);
    expect(res.status).toBe(status);
    expect(res.json.message).toBeTruthy();
  });

  it('lets a viewer read sites, devices and alerts', async () => {
    const sites = await gw.api('GET', '/api/sites', undefined, viewer);
    expect(sites.status).toBe(200);
    expect(sites.json.items).toHaveLength(6);
    expect(sites.json.items[0]).toHaveProperty('policeStation');
    expect((await gw.api('GET', '/api/sites?kind=store', undefined, viewer)).json.items).toHaveLength(4);
    expect((await gw.api('GET', '/api/devices', undefined, viewer)).status).toBe(200);
    expect((await gw.api('GET', '/api/alerts', undefined, viewer)).status).toBe(200);
  });

  it('keeps /healthz open and says where alerts go', async () => {
    const { status, json } = await gw.api('GET', '/healthz', undefined, null);
    expect(status).toBe(200);
    expect(json).toMatchObject({ status: 'ok', broker: { status: 'ok' }, store: { status: 'ok' }, police: { simulator: false } });
    // What the runtime costs the event loop, since the gateway was ready: GC pauses by collector, late ticks.
    expect(json.runtime).toMatchObject({
      gc: { minor: { count: expect.any(Number), maxMs: expect.any(Number) }, major: { count: expect.any(Number) } },
      eventLoop: { stallsOver20Ms: expect.any(Number), stallsOver100Ms: expect.any(Number), maxLagMs: expect.any(Number) },
    });
  });
});

describe('dispatcher actions', () => {
  it('acknowledges and resolves an alert, recording who and when, and stops at the first resolve', async () => {
    const id = 'pb-store-0003';
    const device = await connectDevice(gw.mqttUrl, id, gw.deviceSecret(id));
    await publish(device, topics.event(id), JSON.stringify({ seq: 9, ts: Date.now(), type: 'panic' }));
    await device.endAsync(true);
    const alertId = deriveAlertId(id, 9);
    await waitFor(async () => (await gw.api('GET', `/api/alerts/${alertId}`)).status === 200, 'alert stored');

    expect((await gw.api('POST', `/api/alerts/${alertId}/ack`, {}, viewer)).status).toBe(403);
    const acked = await gw.api('POST', `/api/alerts/${alertId}/ack`, {}, dispatcher);
    expect(acked.status).toBe(200);
    expect(acked.json).toMatchObject({ ackedBy: 'dispatcher kim', state: 'acknowledged' });

    const missingNote = await gw.api('POST', `/api/alerts/${alertId}/resolve`, { outcome: 'other' }, dispatcher);
    expect(missingNote.status).toBe(400);
    expect(missingNote.json.field).toBe('note');
    const badOutcome = await gw.api('POST', `/api/alerts/${alertId}/resolve`, { outcome: 'shrug' }, dispatcher);
    expect(badOutcome.json.field).toBe('outcome');

    const resolved = await gw.api('POST', `/api/alerts/${alertId}/resolve`, { outcome: 'false-alarm', note: 'clerk pressed by mistake' }, dispatcher);
    expect(resolved.json).toMatchObject({ state: 'resolved', resolvedBy: 'dispatcher kim', outcome: 'false-alarm' });
    const again = await gw.api('POST', `/api/alerts/${alertId}/resolve`, { outcome: 'test' }, dispatcher);
    expect(again.json.outcome).toBe('false-alarm');

    const detail = (await gw.api('GET', `/api/alerts/${alertId}`, undefined, viewer)).json;
    expect(detail.timeline.filter((e: { actor: string | null }) => e.actor === 'dispatcher kim').map((e: { kind: string; state: string | null }) => e.state ?? e.kind))
      .toEqual(['acked', 'resolved']);
    expect((await gw.api('GET', '/api/alerts', undefined, viewer)).json.items.map((a: { id: string }) => a.id)).not.toContain(alertId);
  });

  it('answers 404 for an unknown alert and 400 for a malformed id', async () => {
    expect((await gw.api('POST', `/api/alerts/${deriveAlertId('pb-nobody', 1)}/ack`, {}, dispatcher)).status).toBe(404);
    const bad = await gw.api('GET', '/api/alerts/not-an-id', undefined, viewer);
    expect(bad.status).toBe(400);
    expect(bad.json.field).toBe('id');
  });
});

it('documents every environment variable in the README', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const { name } of ENV_VARS) expect(readme, name).toContain(`\`${name}\``);
});
