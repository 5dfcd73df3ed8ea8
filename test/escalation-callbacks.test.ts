// Escalation to the fallback endpoint, re-announcement of unacknowledged
// alerts, and the police reporting progress back — over real sockets.
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { deriveAlertId, signBody, topics } from '../protocol/index.ts';
import { collect, connectDevice, POLICE_SECRET, publish, startPoliceSim, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';
import { cleanupsAfterEach, startScriptedEndpoint, type Step } from './support/scripted-endpoint.ts';

const cleanups = cleanupsAfterEach();
const endpoint = (fallback?: Step) => startScriptedEndpoint(cleanups, fallback);

async function gateway(patch: Record<string, unknown>, police?: Awaited<ReturnType<typeof startPoliceSim>>): Promise<TestGateway> {
  const gw = await startTestGateway(patch, police ? { police } : {});
  cleanups.push(() => gw.stop());
  return gw;
}

async function device(gw: TestGateway, id: string): Promise<{ client: MqttClient; acks: Array<{ topic: string; body: any }> }> {
  const client = await connectDevice(gw.mqttUrl, id, gw.deviceSecret(id));
  cleanups.push(() => client.endAsync(true));
  const acks = collect(client);
  await client.subscribeAsync(topics.ack(id), { qos: 1 });
  return { client, acks };
}

const pressBody = (seq: number) => JSON.stringify({ seq, ts: Date.now(), type: 'panic' });
const alertOf = async (gw: TestGateway, id: string) => (await gw.api('GET', `/api/alerts/${id}`)).json;

describe('escalation', () => {
  it('engages the fallback endpoint when the primary gives no 2xx within the window, and keeps trying the primary', async () => {
    const primary = await endpoint({ status: 503 });
    const fallback = await endpoint();
    const gw = await gateway({
      police: { url: primary.url(), fallbackUrl: fallback.url(), secret: POLICE_SECRET, retryBaseMs: 50, retryMaxMs: 400, timeoutMs: 2000 },
      escalation: { windowMs: 400 },
    });
    const { client, acks } = await device(gw, 'pb-store-0001');
    await publish(client, topics.event('pb-store-0001'), pressBody(1));
    const alertId = deriveAlertId('pb-store-0001', 1);

    await waitFor(() => fallback.delivered().includes(alertId), 'delivery to the fallback');
    const alert = await waitFor(async () => {
      const a = await alertOf(gw, alertId);
      return a.state === 'acknowledged' && a;
    }, 'acknowledged through the fallback');
    const states = alert.timeline.filter((e: { kind: string }) => e.kind === 'state').map((e: { state: string }) => e.state);
    expect(states).toEqual(['received', 'dispatched', 'escalated', 'acknowledged']);
    expect(alert.escalatedAt).not.toBeNull();
    await waitFor(() => acks.some((a) => a.body.state === 'escalated'), 'device told of the escalation');
    expect(gw.logs.find((l) => l.code === 'ALERT_ESCALATED')).toBeDefined();

    // The responsible station must still get it: the primary keeps being retried until it answers.
    const primaryRow = alert.deliveries.find((d: { target: string }) => d.target === 'primary');
    expect(primaryRow.doneAt).toBeNull();
    primary.play([], { status: 201, body: '{"caseId":"PRIMARY-1"}' });
    await waitFor(() => primary.delivered().includes(alertId), 'late delivery to the primary');
    expect(fallback.delivered().filter((k) => k === alertId)).toHaveLength(1);
  });

  it('does not escalate an alert the primary answered in time', async () => {
    const primary = await endpoint();
    const fallback = await endpoint();
    const gw = await gateway({
      police: { url: primary.url(), fallbackUrl: fallback.url(), secret: POLICE_SECRET, retryBaseMs: 50, retryMaxMs: 400, timeoutMs: 2000 },
      escalation: { windowMs: 300 },
    });
    const { client } = await device(gw, 'pb-store-0001');
    await publish(client, topics.event('pb-store-0001'), pressBody(1));
    const alertId = deriveAlertId('pb-store-0001', 1);
    await waitFor(() => primary.delivered().includes(alertId), 'primary delivery');
    await new Promise((r) => setTimeout(r, 900));
    expect(fallback.seen).toHaveLength(0);
    const alert = await alertOf(gw, alertId);
    expect(alert.timeline.some((e: { state: string }) => e.state === 'escalated')).toBe(false);
  });

  it('flags an overdue alert loudly when its route has no fallback', async () => {
    const primary = await endpoint({ status: 503 });
    const gw = await gateway({
      police: { url: primary.url(), secret: POLICE_SECRET, retryBaseMs: 50, retryMaxMs: 400, timeoutMs: 2000 },
      escalation: { windowMs: 300 },
    });
    const { client } = await device(gw, 'pb-store-0001');
    await publish(client, topics.event('pb-store-0001'), pressBody(1));
    const alertId = deriveAlertId('pb-store-0001', 1);
    const alert = await waitFor(async () => {
      const a = await alertOf(gw, alertId);
      return a.timeline.some((e: { kind: string }) => e.kind === 'overdue') && a;
    }, 'overdue entry');
    expect(alert.state).toBe('dispatched');
    // The API reads the entry once committed; the watch counts and logs it once the WAL flush has returned, a moment later.
    await waitFor(() => gw.logs.find((l) => l.code === 'ALERT_OVERDUE'), 'ALERT_OVERDUE log line');
    expect(gw.gateway.counters.total('alerts_overdue_total')).toBe(1);
  });
});

describe('reminders', () => {
  it('re-announces an alert until a dispatcher acknowledges it', async () => {
    const gw = await gateway({ escalation: { reminderSec: 1 } });
    const { client } = await device(gw, 'pb-store-0001');
    await publish(client, topics.event('pb-store-0001'), pressBody(1));
    const alertId = deriveAlertId('pb-store-0001', 1);

    const first = await waitFor(async () => {
      const a = await alertOf(gw, alertId);
      return a.remindedAt && a;
    }, 'a reminder', 5000);
    await waitFor(async () => (await alertOf(gw, alertId)).remindedAt !== first.remindedAt, 'a second reminder', 5000);

    await gw.api('POST', `/api/alerts/${alertId}/ack`, {});
    const after = gw.gateway.counters.total('alert_reminders_total');
    await new Promise((r) => setTimeout(r, 1500));
    expect(gw.gateway.counters.total('alert_reminders_total')).toBe(after);
  });
});

describe('police status callbacks', () => {
  async function setup() {
    const police = await startPoliceSim();
    cleanups.push(() => police.stop());
    const gw = await gateway({}, police);
    const { client, acks } = await device(gw, 'pb-store-0001');
    await publish(client, topics.event('pb-store-0001'), pressBody(1));
    const alertId = deriveAlertId('pb-store-0001', 1);
    await waitFor(() => police.received().find((a) => a.idempotencyKey === alertId), 'delivery');
    const callbackUrl = `${gw.httpUrl}/api/police/status`;
    return { police, gw, acks, alertId, callbackUrl };
  }

  async function post(url: string, body: string, signature: string | null): Promise<{ status: number; json: any }> {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(signature ? { 'x-safehaven-signature': signature } : {}) },
      body,
    });
    return { status: res.status, json: await res.json() };
  }

  it('records each status in the timeline, tells the device, and never moves backwards', async () => {
    const { police, gw, acks, alertId, callbackUrl } = await setup();
    for (const status of ['accepted', 'dispatched', 'arrived'] as const) {
      const res = await police.reportStatus(callbackUrl, { alertId, status, caseId: 'CASE-7', ...(status === 'dispatched' ? { unit: 'Gangnam-12' } : {}) });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ alertId, policeStatus: status, changed: true });
    }
    // A late, repeated "accepted" is recorded but does not undo "arrived"; an exact repeat changes nothing.
    expect((await police.reportStatus(callbackUrl, { alertId, status: 'accepted' })).json).toMatchObject({ policeStatus: 'arrived', changed: true });
    expect((await police.reportStatus(callbackUrl, { alertId, status: 'arrived' })).json).toMatchObject({ changed: false });

    const alert = await alertOf(gw, alertId);
    const reported = alert.timeline.filter((e: { kind: string }) => e.kind === 'police-status').map((e: { detail: { status: string } }) => e.detail.status);
    expect(reported).toEqual(['accepted', 'dispatched', 'arrived', 'accepted']);
    expect(alert.policeStatus).toBe('arrived');
    expect(alert.timeline.find((e: { detail: { unit?: string } | null }) => e.detail?.unit === 'Gangnam-12')).toBeDefined();
    await waitFor(() => acks.some((a) => a.body.police === 'dispatched' && a.body.alertId === alertId), 'device ack with the police status');
  });

  it('records a rejection with its reason', async () => {
    const { police, gw, alertId, callbackUrl } = await setup();
    const res = await police.reportStatus(callbackUrl, { alertId, status: 'rejected', reason: 'outside our jurisdiction' });
    expect(res.status).toBe(200);
    const alert = await alertOf(gw, alertId);
    expect(alert.timeline.find((e: { kind: string }) => e.kind === 'police-status').detail).toMatchObject({ status: 'rejected', reason: 'outside our jurisdiction' });
    expect(gw.logs.find((l) => l.code === 'POLICE_REJECTED')).toBeDefined();
  });

  it('refuses a missing or wrong signature (401), another route\'s secret (403), bad bodies (400) and unknown alerts (404)', async () => {
    const { gw, alertId, callbackUrl } = await setup();
    const body = JSON.stringify({ alertId, status: 'accepted', sentAt: new Date().toISOString() });
    expect((await post(callbackUrl, body, null)).status).toBe(401);
    const wrong = await post(callbackUrl, body, signBody('not-the-route-secret-at-all', body));
    expect(wrong.status).toBe(401);
    expect(wrong.json.error).toBe('BAD_SIGNATURE');
    // Signed for one body, sent with another.
    expect((await post(callbackUrl, JSON.stringify({ alertId, status: 'closed', sentAt: new Date().toISOString() }), signBody(POLICE_SECRET, body))).status).toBe(401);

    const badStatus = JSON.stringify({ alertId, status: 'teleported', sentAt: new Date().toISOString() });
    const bad = await post(callbackUrl, badStatus, signBody(POLICE_SECRET, badStatus));
    expect(bad.status).toBe(400);
    expect(bad.json.field).toBe('status');
    const notJson = '{"alertId":';
    expect((await post(callbackUrl, notJson, signBody(POLICE_SECRET, notJson))).json.field).toBe('body');
    const unknown = JSON.stringify({ alertId: 'al-00000000000000000000', status: 'accepted', sentAt: new Date().toISOString() });
    expect((await post(callbackUrl, unknown, signBody(POLICE_SECRET, unknown))).status).toBe(404);
    // Correctly signed, but sent long ago: a captured callback replayed.
    const stale = JSON.stringify({ alertId, status: 'closed', sentAt: new Date(Date.now() - 3_600_000).toISOString() });
    const replayed = await post(callbackUrl, stale, signBody(POLICE_SECRET, stale));
    expect([replayed.status, replayed.json.error]).toEqual([401, 'STALE_CALLBACK']);
    expect(gw.gateway.counters.get('police_callbacks_refused_total', { reason: 'BAD_SIGNATURE' })).toBe(3);
    const alert = await alertOf(gw, alertId);
    expect(alert.timeline.some((e: { kind: string }) => e.kind === 'police-status')).toBe(false);
  });

  it('lets a station report only on alerts routed to it', async () => {
    const police = await startPoliceSim();
    cleanups.push(() => police.stop());
    const otherSecret = 'other-station-secret-0123456789';
    const gw = await gateway({
      police: {
        url: police.url(), secret: POLICE_SECRET, retryBaseMs: 50, retryMaxMs: 400, timeoutMs: 2000,
        routes: [{ match: 'No Such Police Station', url: police.url(), secret: otherSecret }],
      },
    }, police);
    const { client } = await device(gw, 'pb-store-0001');
    await publish(client, topics.event('pb-store-0001'), pressBody(1));
    const alertId = deriveAlertId('pb-store-0001', 1);
    const body = JSON.stringify({ alertId, status: 'accepted', sentAt: new Date().toISOString() });
    const res = await post(`${gw.httpUrl}/api/police/status`, body, signBody(otherSecret, body));
    expect(res.status).toBe(403);
    expect(res.json.error).toBe('WRONG_ROUTE');
  });
});
