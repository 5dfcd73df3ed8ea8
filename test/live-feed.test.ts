// The live feed's logic: auth, the per-role view, replay on connect, fan-out
// after the alert path has moved on, and a slow client dropped alone. HTTP
// through app.inject; the slow-client cases write to in-memory responses
// whose socket takes nothing (the real-socket case is in feed-fanout.test.ts).
import Fastify, { type FastifyInstance } from 'fastify';
import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Site } from '../protocol/index.ts';
import { AuthLimiter } from '../gateway/broker/auth-limiter.ts';
import { systemClock } from '../gateway/clock.ts';
import type { Principal } from '../gateway/http/auth.ts';
import { installErrorHandler } from '../gateway/http/errors.ts';
import { FeedHub, DEFAULT_FEED_LIMITS, type FeedHubDeps, type FeedLimits } from '../gateway/http/feed-hub.ts';
import { feedRoutes } from '../gateway/http/routes/feed.ts';
import { Counters } from '../gateway/metrics/counters.ts';
import { AlertBus } from '../gateway/pipeline/alert-bus.ts';
import type { Registry } from '../gateway/registry/registry.ts';
import type { AlertRecord, AlertRepo } from '../gateway/store/alert-repo.ts';
import type { AuditRepo } from '../gateway/store/audit-repo.ts';
import type { CommitQueue } from '../gateway/store/commit-queue.ts';
import type { TokenRecord, TokenRepo } from '../gateway/store/token-repo.ts';
import { FakeSupervision } from './support/fake-supervision.ts';
import { waitFor } from './support/harness.ts';

const ADMIN = 'feed-test-admin-token-0123456789';
const TOKENS: Record<string, TokenRecord> = {
  'viewer-token-0123456789abcdef': { id: 't1', role: 'viewer', name: 'wall-screen', revokedAt: null, expiresAt: null } as unknown as TokenRecord,
  'dispatcher-token-0123456789ab': { id: 't2', role: 'dispatcher', name: 'kim', revokedAt: null, expiresAt: null } as unknown as TokenRecord,
};
const VIEWER = 'viewer-token-0123456789abcdef';
const DISPATCHER = 'dispatcher-token-0123456789ab';

const STORE: Site = {
  id: 'store-0001', kind: 'store', name: 'CU Daehangno Branch', address: '184 Saemunan-ro, Jongno-gu, Seoul', phone: '02-9747-4257',
  lat: 37.58213, lon: 127.00185, district: 'Jongno-gu', policeStation: 'Hyehwa Police Station',
};
const HOME: Site = {
  id: 'home-0001', kind: 'home', name: 'Park household', address: '12 Nonhyeon-ro, Gangnam-gu, Seoul', phone: '010-1234-5678',
  lat: 37.51234, lon: 127.04321, district: 'Gangnam-gu', policeStation: 'Gangnam Police Station',
};
const SITES = new Map([STORE, HOME].map((s) => [s.id, s]));

function alert(id: string, site: Site, extra: Partial<AlertRecord> = {}): AlertRecord {
  const t = Date.now();
  return {
    id, deviceId: site.kind === 'home' ? 'ms-home-0001' : 'pb-store-0001', seq: 1, siteId: site.id, type: site.kind === 'home' ? 'intrusion' : 'panic',
    priority: site.kind === 'home' ? 90 : 100, state: 'received', source: 'mqtt', pressedAt: t, deviceTs: t, receivedAt: t, clockSkew: false,
    caseId: null, deliveredAt: null, ackedAt: null, ackedBy: null, resolvedAt: null, resolvedBy: null, outcome: null, note: null,
    escalatedAt: null, remindedAt: null, policeStatus: null, updatedAt: t, ...extra,
  };
}

interface Fixture {
  app: FastifyInstance;
  hub: FeedHub;
  bus: AlertBus;
  sup: FakeSupervision;
  counters: Counters;
  open: AlertRecord[];
  audits: Array<{ actor: string; action: string; target: string | null }>;
}

let fixture: Fixture | null = null;

async function makeFeed(limits: Partial<FeedLimits> = {}): Promise<Fixture> {
  const log = pino({ level: 'silent' });
  const bus = new AlertBus(log);
  const sup = new FakeSupervision();
  const counters = new Counters();
  const open: AlertRecord[] = [];
  const audits: Fixture['audits'] = [];
  const deps: FeedHubDeps = {
    bus, troubles: sup, presence: sup, counters, log,
    alerts: { list: () => open } as unknown as AlertRepo,
    registry: { site: (id: string) => SITES.get(id) } as unknown as Registry,
    health: () => ({ status: 'ok' }),
    homeAudit: {
      audit: { record: (_at: number, actor: string, action: string, target: string | null) => audits.push({ actor, action, target }) } as unknown as AuditRepo,
      commits: { write: async <T>(job: () => T) => job() } as unknown as CommitQueue,
      now: () => Date.now(), log,
    },
  };
  const hub = new FeedHub(deps, { ...DEFAULT_FEED_LIMITS, ...limits });
  hub.start();
  const app = Fastify();
  app.decorateRequest('principal', null);
  installErrorHandler(app);
  const auth = { tokens: { lookup: (t: string) => TOKENS[t] } as unknown as TokenRepo, adminToken: ADMIN, now: () => Date.now(), limiter: new AuthLimiter(30, systemClock) };
  await app.register(feedRoutes, { auth, feed: hub });
  fixture = { app, hub, bus, sup, counters, open, audits };
  return fixture;
}

afterEach(async () => {
  fixture?.hub.stop();
  await fixture?.app.close();
  fixture = null;
});

type Frame = { event: string; data: any };
function frames(payload: string): Frame[] {
  return payload.split('\n\n').filter((b) => b.startsWith('event: ')).map((block) => {
    const [eventLine, dataLine] = block.split('\n');
    return { event: eventLine!.slice(7), data: JSON.parse(dataLine!.slice(6)) };
  });
}

/** Opens a feed by inject; its payload is complete once the hub stops. */
function connect(f: Fixture, token: string) {
  return f.app.inject({ method: 'GET', url: '/api/feed', headers: { authorization: `Bearer ${token}` } });
}

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('live feed over HTTP', () => {
  it('refuses a feed without a valid bearer token, as a JSON error', async () => {
    const f = await makeFeed();
    const none = await f.app.inject({ method: 'GET', url: '/api/feed' });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({ error: 'UNAUTHENTICATED' });
    const bad = await f.app.inject({ method: 'GET', url: '/api/feed', headers: { authorization: 'Bearer nope-not-a-token' } });
    expect(bad.statusCode).toBe(401);
    expect(bad.json()).toMatchObject({ error: 'BAD_TOKEN' });
    // A token in the URL is not a way in: it would end up in logs.
    const query = await f.app.inject({ method: 'GET', url: `/api/feed?token=${DISPATCHER}` });
    expect(query.statusCode).toBe(401);
  });

  it('replays the open alerts and troubles on connect, a home shown in full only to a dispatcher (and audited)', async () => {
    const f = await makeFeed();
    f.open.push(alert('al-home', HOME), alert('al-store', STORE));
    const trouble = f.sup.raise('offline', 'pb-store-0002', 'store-0002', 'no heartbeat for 95 s');
    const viewer = connect(f, VIEWER);
    const dispatcher = connect(f, DISPATCHER);
    await waitFor(() => f.hub.status().clients === 2, 'two feeds');
    f.hub.stop();
    const [v, d] = [frames((await viewer).payload), frames((await dispatcher).payload)];
    expect((await viewer).headers['content-type']).toMatch(/^text\/event-stream/);

    expect(v.map((x) => x.event)).toEqual(['hello', 'snapshot']);
    expect(v[0]!.data).toMatchObject({ name: 'wall-screen', role: 'viewer' });
    const vHome = v[1]!.data.alerts.find((a: any) => a.id === 'al-home');
    expect(vHome.site).toMatchObject({ name: 'Home in Gangnam-gu', address: 'Gangnam-gu', phone: '' });
    expect(v[1]!.data.alerts.find((a: any) => a.id === 'al-store').site).toMatchObject({ name: STORE.name, phone: STORE.phone });
    expect(v[1]!.data.troubles).toEqual([trouble]);

    const dHome = d[1]!.data.alerts.find((a: any) => a.id === 'al-home');
    expect(dHome.site).toMatchObject({ name: HOME.name, address: HOME.address, phone: HOME.phone });
    expect(f.audits).toEqual([{ actor: 'kim', action: 'homes.read.feed', target: 'home-0001' }]);
  });

  it('pushes alert changes in each role view, trouble raises and clears, and presence, in order', async () => {
    const f = await makeFeed();
    const viewer = connect(f, VIEWER);
    const dispatcher = connect(f, DISPATCHER);
    await waitFor(() => f.hub.status().clients === 2, 'two feeds');
    f.bus.emit({ kind: 'received', alert: alert('al-1', HOME), site: HOME });
    f.bus.emit({ kind: 'acked', alert: alert('al-1', HOME, { ackedAt: Date.now(), ackedBy: 'kim' }), site: HOME });
    const t = f.sup.raise('low-battery', 'ms-home-0001', 'home-0001');
    f.sup.clear(t.id);
    f.sup.presence('ms-home-0001', false);
    await nextTurn();
    f.hub.stop();
    const v = frames((await viewer).payload).slice(2);
    const d = frames((await dispatcher).payload).slice(2);
    expect(v.map((x) => x.event)).toEqual(['alert', 'alert', 'trouble', 'trouble', 'presence']);
    expect(v.map((x) => x.data.change ?? x.data.kind ?? x.data.online)).toEqual(['received', 'acked', 'raised', 'cleared', false]);
    expect(v[0]!.data.alert.site.phone).toBe('');
    expect(d[0]!.data.alert.site.phone).toBe(HOME.phone);
    expect(d[1]!.data.alert).toMatchObject({ id: 'al-1', ackedBy: 'kim' });
    expect(v[3]!.data.trouble.clearedAt).not.toBeNull();
    // The dispatcher was shown a new home alert: one audit entry; the viewer saw no details.
    expect(f.audits).toEqual([{ actor: 'kim', action: 'home.read.feed', target: 'home-0001' }]);
  });

  it('answers 503 past the client limit and counts the refusal', async () => {
    const f = await makeFeed({ maxClients: 1 });
    const first = connect(f, VIEWER);
    await waitFor(() => f.hub.status().clients === 1, 'one feed');
    const second = await connect(f, VIEWER);
    expect(second.statusCode).toBe(503);
    expect(second.json()).toMatchObject({ error: 'FEED_FULL' });
    expect(f.counters.get('feed_clients_refused_total')).toBe(1);
    f.hub.stop();
    expect((await first).statusCode).toBe(200);
  });

  it('ends a feed whose token is revoked, at the next keepalive, and counts it', async () => {
    const f = await makeFeed({ keepaliveMs: 20 });
    const token = 'soon-revoked-token-0123456789';
    TOKENS[token] = { id: 't3', role: 'dispatcher', name: 'lee', revokedAt: null, expiresAt: null } as unknown as TokenRecord;
    const feed = connect(f, token);
    await waitFor(() => f.hub.status().clients === 1, 'one feed');
    (TOKENS[token] as unknown as { revokedAt: number }).revokedAt = Date.now();
    const res = await feed;
    expect(res.statusCode).toBe(200);
    expect(f.counters.get('feed_clients_dropped_total', { reason: 'unauthorized' })).toBe(1);
    expect(f.hub.status().clients).toBe(0);
  });

  it('stops listening to the bus and the sources when stopped', async () => {
    const f = await makeFeed();
    expect(f.sup.listenerCount()).toBe(2);
    f.hub.stop();
    expect(f.sup.listenerCount()).toBe(0);
  });
});

/** A response whose socket takes everything, or (stuck) nothing at all. */
class MemoryResponse extends Writable {
  readonly chunks: string[] = [];
  constructor(private readonly stuck: boolean) {
    super({ highWaterMark: 1024 });
  }
  writeHead(): this {
    return this;
  }
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    if (this.stuck) return;
    this.chunks.push(chunk.toString());
    done();
  }
  text(): string {
    return this.chunks.join('');
  }
}

const kim: Principal = { name: 'kim', role: 'dispatcher' };

describe('fan-out', () => {
  it('writes nothing while the alert bus emits: the fan-out runs on a later turn', async () => {
    const f = await makeFeed();
    const res = new MemoryResponse(false);
    f.hub.attach(kim, res as unknown as ServerResponse, () => true);
    const afterSnapshot = res.chunks.length;
    f.bus.emit({ kind: 'received', alert: alert('al-2', STORE), site: STORE });
    expect(res.chunks.length).toBe(afterSnapshot);
    await nextTurn();
    expect(frames(res.text()).map((x) => x.event)).toEqual(['hello', 'snapshot', 'alert']);
  });

  it('drops a client whose socket takes nothing once it is past its allowance, counted, and keeps feeding the others', async () => {
    const f = await makeFeed({ maxBufferedBytes: 8 * 1024 });
    const healthy = new MemoryResponse(false);
    const stuck = new MemoryResponse(true);
    f.hub.attach(kim, healthy as unknown as ServerResponse, () => true);
    f.hub.attach(kim, stuck as unknown as ServerResponse, () => true);
    for (let i = 0; i < 200; i++) f.bus.emit({ kind: 'received', alert: alert(`al-${i}`, STORE), site: STORE });
    await nextTurn();
    expect(stuck.destroyed).toBe(true);
    expect(f.counters.get('feed_clients_dropped_total', { reason: 'slow' })).toBe(1);
    expect(f.hub.status().clients).toBe(1);
    const got = frames(healthy.text()).filter((x) => x.event === 'alert').map((x) => x.data.alert.id);
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => `al-${i}`));
  });

  it('logs and counts a change it cannot send, and sends the next one', async () => {
    const f = await makeFeed();
    const res = new MemoryResponse(false);
    f.hub.attach(kim, res as unknown as ServerResponse, () => true);
    // An impossible time: the alert view cannot be made (toISOString throws).
    f.bus.emit({ kind: 'state', alert: alert('al-bad', STORE, { pressedAt: Number.NaN }), site: STORE });
    f.bus.emit({ kind: 'state', alert: alert('al-good', STORE), site: STORE });
    await nextTurn();
    expect(f.counters.get('feed_fanout_errors_total', { type: 'alert' })).toBe(1);
    expect(frames(res.text()).filter((x) => x.event === 'alert').map((x) => x.data.alert.id)).toEqual(['al-good']);
  });

  it('drops every client when changes pile up past the pending bound, so each replays rather than miss one', async () => {
    const f = await makeFeed({ maxPending: 10 });
    const res = new MemoryResponse(false);
    f.hub.attach(kim, res as unknown as ServerResponse, () => true);
    for (let i = 0; i < 11; i++) f.bus.emit({ kind: 'state', alert: alert('al-3', STORE), site: STORE });
    expect(res.destroyed).toBe(true);
    expect(f.counters.get('feed_overflows_total')).toBe(1);
    expect(f.counters.get('feed_clients_dropped_total', { reason: 'overflow' })).toBe(1);
  });
});
