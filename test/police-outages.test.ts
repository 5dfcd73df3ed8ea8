// Police endpoints misbehaving the ways real ones do — hung, resetting,
// answering 4xx, 5xx or garbage, flapping, down for a while — over real
// sockets. In every case each alert reaches the police under its one
// Idempotency-Key, and the backlog drains most severe first.
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { deriveAlertId, EVENT_PRIORITY, topics, type EventType } from '../protocol/index.ts';
import { connectDevice, POLICE_SECRET, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';
import { cleanupsAfterEach, startScriptedEndpoint, type Step } from './support/scripted-endpoint.ts';

const cleanups = cleanupsAfterEach();
const endpoint = (fallback?: Step) => startScriptedEndpoint(cleanups, fallback);

async function gatewayFor(url: string, police: Record<string, unknown> = {}, rest: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startTestGateway({
    police: { url, secret: POLICE_SECRET, retryBaseMs: 50, retryMaxMs: 400, timeoutMs: 2000, ...police },
    ...rest,
  });
  cleanups.push(() => gw.stop());
  return gw;
}

/** One connection per call: give each concurrent press its own device (a second connection with the same id takes the session over). */
async function press(gw: TestGateway, deviceId: string, seqs: number | number[], type: EventType = 'panic'): Promise<string> {
  const client: MqttClient = await connectDevice(gw.mqttUrl, deviceId, gw.deviceSecret(deviceId));
  cleanups.push(() => client.endAsync(true));
  const list = Array.isArray(seqs) ? seqs : [seqs];
  for (const seq of list) await publish(client, topics.event(deviceId), JSON.stringify({ seq, ts: Date.now(), type }));
  return deriveAlertId(deviceId, list[0]!);
}

const timeline = async (gw: TestGateway, alertId: string) =>
  (await gw.api('GET', `/api/alerts/${alertId}`)).json as { state: string; caseId: string | null; timeline: Array<{ kind: string; state: string | null; detail: any }> };

describe('a police endpoint that misbehaves', () => {
  it('gives up on a hung request after the per-attempt timeout and delivers on a later attempt', async () => {
    const police = await endpoint();
    police.play([{ hangMs: 5000 }, { hangMs: 5000 }]);
    const gw = await gatewayFor(police.url(), { timeoutMs: 300 });
    const alertId = await press(gw, 'pb-store-0001', 1);

    await waitFor(() => police.delivered().includes(alertId), 'delivery after two hung attempts');
    const { timeline: entries } = await timeline(gw, alertId);
    const failures = entries.filter((e) => e.kind === 'dispatch-failed');
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures[0]!.detail.error).toMatch(/timeout|aborted/i);
  });

  it('retries through reset connections, 4xx and 5xx answers, and records the case id of the 2xx', async () => {
    const police = await endpoint();
    police.play([{ reset: true }, { status: 400, body: '{"error":"bad"}' }, { status: 500 }, { status: 502, body: '<html>bad gateway' }]);
    const gw = await gatewayFor(police.url());
    const alertId = await press(gw, 'pb-store-0001', 1);

    await waitFor(() => police.delivered().includes(alertId), 'delivery after four failures');
    expect(police.seen.map((s) => s.answered)).toEqual(['reset', 400, 500, 502, 201]);
    expect(new Set(police.seen.map((s) => s.key))).toEqual(new Set([alertId]));
    const alert = await waitFor(async () => {
      const a = await timeline(gw, alertId);
      return a.state === 'acknowledged' && a;
    }, 'acknowledged state');
    expect(alert.caseId).toBe('SCRIPTED-1');
    const errors = alert.timeline.filter((e) => e.kind === 'dispatch-failed').map((e) => e.detail.error);
    expect(errors[0]).toMatch(/CONNECTION|UND_ERR_SOCKET|ECONNRESET|other side closed/i);
    expect(errors).toContain('HTTP 400');
  });

  it('takes a 2xx with a garbage body as delivered, without a case id', async () => {
    const police = await endpoint({ status: 200, body: '<<<not json' });
    const gw = await gatewayFor(police.url());
    const alertId = await press(gw, 'pb-store-0001', 1);
    const alert = await waitFor(async () => {
      const a = await timeline(gw, alertId);
      return a.state === 'acknowledged' && a;
    }, 'acknowledged state');
    expect(alert.caseId).toBeNull();
    expect(police.seen).toHaveLength(1);
  });

  it('delivers every alert of a flapping endpoint exactly once per key', async () => {
    const police = await endpoint();
    const answers = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? { status: 503 } : { status: 201, body: '{}' }));
    police.play(answers);
    const gw = await gatewayFor(police.url());
    const devices = ['pb-store-0001', 'pb-store-0002', 'pb-store-0003', 'pb-store-0004'];
    await Promise.all(devices.map((d) => press(gw, d, [1, 2])));
    const ids = devices.flatMap((d) => [deriveAlertId(d, 1), deriveAlertId(d, 2)]);

    await waitFor(() => ids.every((id) => police.delivered().includes(id)), 'every alert delivered');
    await new Promise((r) => setTimeout(r, 300));
    const delivered = police.delivered();
    expect(delivered).toHaveLength(ids.length);
    expect(new Set(delivered).size).toBe(ids.length);
  });
});

describe('every POST slot busy', () => {
  it('holds new alerts in memory, sends them most severe first when a slot frees, and never sends one resolved while it waited', async () => {
    const police = await endpoint();
    // The only slot is taken by a POST the police answer only after 1.5 s.
    police.play([{ hangMs: 1500 }]);
    const gw = await gatewayFor(police.url(), { concurrency: 1 });
    const blocker = await press(gw, 'pb-store-0001', 1);
    await waitFor(() => police.seen.length === 1, 'the blocking POST');

    const waiting: Array<[string, EventType]> = [['pb-store-0002', 'test'], ['ds-home-0001', 'door'], ['pb-store-0003', 'panic'], ['ms-home-0001', 'intrusion']];
    const ids: string[] = [];
    for (const [device, type] of waiting) ids.push(await press(gw, device, 1, type));
    const closed = await press(gw, 'pb-store-0004', 1, 'panic');
    expect((await gw.api('POST', `/api/alerts/${closed}/resolve`, { outcome: 'false-alarm' })).status).toBe(200);
    expect(police.seen).toHaveLength(1);

    await waitFor(() => ids.every((id) => police.delivered().includes(id)), 'every waiting alert delivered');
    await new Promise((r) => setTimeout(r, 200));
    expect(police.seen.map((s) => s.key)).toEqual([blocker, ids[2], ids[3], ids[1], ids[0]]);
    expect(gw.gateway.counters.total('dispatch_ready_overflow_total')).toBe(0);
  });
});

describe('an endpoint that is down for a while', () => {
  it('opens the breaker, parks the backlog in the store, and drains it most severe first when the endpoint returns', async () => {
    const police = await endpoint({ status: 503 });
    // One POST at a time, so the order the police see is the order we send.
    const gw = await gatewayFor(police.url(), { concurrency: 1 });
    const presses: Array<[string, EventType]> = [
      ['pb-store-0001', 'test'], ['ms-home-0001', 'intrusion'], ['ds-home-0001', 'door'], ['pb-store-0002', 'panic'], ['pb-store-0003', 'panic'],
    ];
    const ids: string[] = [];
    for (const [device, type] of presses) ids.push(await press(gw, device, 1, type));

    await waitFor(async () => {
      const health = (await gw.api('GET', '/healthz')).json;
      return health.police.endpoints.some((e: { phase: string }) => e.phase === 'open') && health;
    }, 'breaker open');
    await waitFor(() => gw.gateway.counters.total('police_parked_total') > 0, 'alerts parked behind the breaker');

    police.play([], { status: 201, body: '{}' });
    await waitFor(() => ids.every((id) => police.delivered().includes(id)), 'backlog delivered', 20_000);

    const priorityOf = new Map(ids.map((id, i) => [id, EVENT_PRIORITY[presses[i]![1]]]));
    // The first 2xx is the breaker's probe (any alert); everything after it is the backlog, in order.
    const backlog = police.delivered().slice(1).map((id) => priorityOf.get(id)!);
    expect(backlog).toEqual([...backlog].sort((a, b) => b - a));
    expect(new Set(police.delivered()).size).toBe(ids.length);
    expect(gw.logs.find((l) => l.code === 'POLICE_BREAKER_OPEN')).toBeDefined();
    expect(gw.logs.find((l) => l.msg.includes('delivering its backlog'))).toBeDefined();
  });
});

describe('route formats', () => {
  it('sends OASIS CAP 1.2 XML to a route configured for it, signed and keyed like JSON', async () => {
    const police = await endpoint();
    const gw = await gatewayFor(police.url(), { format: 'cap' });
    const alertId = await press(gw, 'pb-store-0001', 7);
    await waitFor(() => police.delivered().includes(alertId), 'CAP delivery');
    const [request] = police.seen;
    expect(request!.contentType).toBe('application/cap+xml');
    expect(request!.body).toContain('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">');
    expect(request!.body).toContain(`<identifier>${alertId}</identifier>`);
    expect(request!.body).toMatch(/<circle>-?\d+\.\d+,-?\d+\.\d+ 0\.1<\/circle>/);
  });
});
