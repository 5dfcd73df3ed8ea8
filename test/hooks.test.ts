import { describe, it, expect } from 'vitest';
import pino from 'pino';
import type { AuthenticateError, Client, PublishPacket, Subscription } from 'aedes';
import { AuthLimiter } from '../gateway/broker/auth-limiter.ts';
import {
  devicePublishRefusal, deviceSubscribeAllowed, makeAuthenticate, makeAuthorizeForward, makeAuthorizePublish, makeAuthorizeSubscribe, makeHeartbeatLane,
  type HookDeps,
} from '../gateway/broker/hooks.ts';
import { ServiceAccounts } from '../gateway/broker/service-accounts.ts';
import { hashSecret } from '../gateway/registry/secrets.ts';
import { Counters } from '../gateway/metrics/counters.ts';
import { IntakeError } from '../gateway/pipeline/alert-intake.ts';
import type { Registry, AuthOutcome } from '../gateway/registry/registry.ts';
import type { DeviceUplink } from '../gateway/broker/device-uplink.ts';
import { topics } from '../protocol/topics.ts';

const ME = 'pb-1';
const OTHER = 'pb-2';
const SECRET = 'right-secret';

describe('devicePublishRefusal', () => {
  it.each([
    ['own event', topics.event(ME), false, null],
    ['own heartbeat', topics.heartbeat(ME), false, null],
    ['own status', topics.status(ME), false, null],
    ['own status, retained', topics.status(ME), true, null],
    ["another device's event", topics.event(OTHER), false, 'foreign-topic'],
    ["another device's ack", topics.ack(OTHER), false, 'foreign-topic'],
    ['own ack', topics.ack(ME), false, 'downlink-topic'],
    ['own config', topics.config(ME), false, 'downlink-topic'],
    ['own event, retained', topics.event(ME), true, 'retain-not-allowed'],
    ['own heartbeat, retained', topics.heartbeat(ME), true, 'retain-not-allowed'],
    ['$SYS', '$SYS/x', false, 'unknown-topic'],
    ['the integrator alert topic', 'safehaven/v1/alerts/x', false, 'unknown-topic'],
    ['a wildcard', 'safehaven/v1/dev/+/event', false, 'unknown-topic'],
  ])('%s → %s', (_label, topic, retain, expected) => {
    expect(devicePublishRefusal(ME, topic, retain)).toBe(expected);
  });
});

describe('deviceSubscribeAllowed', () => {
  it.each([
    ['own ack', topics.ack(ME), true],
    ['own config', topics.config(ME), true],
    ['#', '#', false],
    ['+ as id', 'safehaven/v1/dev/+/ack', false],
    ['+ as channel', `safehaven/v1/dev/${ME}/+`, false],
    ['# under own id', `safehaven/v1/dev/${ME}/#`, false],
    ["another device's ack", topics.ack(OTHER), false],
    ['$SYS/#', '$SYS/#', false],
    ['own event', topics.event(ME), false],
    ['own status', topics.status(ME), false],
    ['integrator alerts', 'safehaven/v1/alerts/+', false],
  ])('%s → %s', (_label, topic, allowed) => {
    expect(deviceSubscribeAllowed(ME, topic)).toBe(allowed);
  });
});

// ---- hook factories with fakes ----------------------------------------------

const fakeClient = (id = ME, extra: Record<string, unknown> = {}) => ({ id, clean: true, conn: { remoteAddress: '10.0.0.9' }, ...extra }) as unknown as Client;

const registryAnswering = (answer: (id: string, secret: string) => Promise<AuthOutcome>) =>
  ({ authenticate: answer, device: (id: string) => (id === ME || id === OTHER ? { id } : undefined), knownSecret: () => false }) as unknown as Registry;

const CCTV = { username: 'cctv-centre', password: 'cctv-password-0123', publish: ['city/cctv/#'], subscribe: ['safehaven/v1/alerts/#'], deny: ['safehaven/v1/alerts/secret'] };

const goodRegistry = registryAnswering(async (id, secret) => (id === ME && secret === SECRET ? 'ok' : 'bad-secret'));

const uplinkThat = (handle: () => Promise<void>) => ({ handle }) as unknown as DeviceUplink;

function deps(overrides: Partial<HookDeps> = {}): HookDeps {
  return {
    registry: goodRegistry,
    uplink: uplinkThat(async () => {}),
    accounts: new ServiceAccounts([CCTV]),
    limiter: new AuthLimiter(3, { now: () => 1_000_000 }),
    principals: new WeakMap(),
    connectedClient: () => undefined,
    counters: new Counters(),
    log: pino({ level: 'silent' }),
    ...overrides,
  };
}

/** A connection that has passed authentication as this device. */
function deviceClient(d: HookDeps, id = ME): Client {
  const client = fakeClient(id);
  d.principals.set(client, { kind: 'device', id });
  return client;
}

function accountClient(d: HookDeps, id = 'cctv-1'): Client {
  const client = fakeClient(id);
  d.principals.set(client, { kind: 'account', account: CCTV });
  return client;
}

/** Calls a callback-style hook and resolves with the arguments of its callback. */
function callHook<A extends unknown[]>(invoke: (done: (...args: A) => void) => void): Promise<A> {
  return new Promise((resolve) => invoke((...args) => resolve(args)));
}

describe('makeAuthenticate', () => {
  const authenticate = (d: HookDeps, client: Client, username?: string, password?: string) =>
    callHook<[AuthenticateError | null, boolean | null]>((done) =>
      makeAuthenticate(d)(client, username, password === undefined ? undefined : Buffer.from(password), done));

  it('accepts a device whose client id is its username and whose secret is right', async () => {
    const d = deps();
    expect(await authenticate(d, fakeClient(), ME, SECRET)).toEqual([null, true]);
    expect(d.counters.total('mqtt_auth_failures_total')).toBe(0);
  });

  it.each([
    ['no username', ME, undefined, SECRET, 'missing-credentials'],
    ['no password', ME, ME, undefined, 'missing-credentials'],
    ['client id ≠ username', OTHER, ME, SECRET, 'client-id-mismatch'],
    ['a wrong secret', ME, ME, 'wrong-secret', 'bad-secret'],
  ])('refuses %s with CONNACK 5', async (_label, clientId, username, password, reason) => {
    const d = deps();
    const [error, success] = await authenticate(d, fakeClient(clientId), username, password);
    expect(success).toBe(false);
    expect(error).toBeInstanceOf(Error);
    expect(error?.returnCode).toBe(5);
    expect(d.counters.get('mqtt_auth_failures_total', { reason })).toBe(1);
  });

  it('refuses (and counts "error") when the registry itself fails', async () => {
    const d = deps({ registry: registryAnswering(async () => { throw new Error('db gone'); }) });
    const [error, success] = await authenticate(d, fakeClient(), ME, SECRET);
    expect([error?.returnCode, success]).toEqual([5, false]);
    expect(d.counters.get('mqtt_auth_failures_total', { reason: 'error' })).toBe(1);
  });
});

describe('makeAuthorizePublish', () => {
  const packet = (topic: string, retain = false) =>
    ({ cmd: 'publish', topic, payload: Buffer.from('{}'), qos: 1, dup: false, retain }) as PublishPacket;
  const authorizePublish = (d: HookDeps, client: Client | null, p: PublishPacket) =>
    callHook<[(Error | null)?]>((done) => makeAuthorizePublish(d)(client, p, done));

  it("lets the gateway's own publishes (null client) through", async () => {
    expect(await authorizePublish(deps(), null, packet(topics.ack(ME)))).toEqual([null]);
  });

  it('refuses a refused topic with an error and counts it', async () => {
    const d = deps();
    const [error] = await authorizePublish(d, deviceClient(d), packet(topics.event(OTHER)));
    expect(error).toBeInstanceOf(Error);
    expect(error?.message).toContain('foreign-topic');
    expect(d.counters.get('mqtt_publish_refused_total', { reason: 'foreign-topic' })).toBe(1);
  });

  it('acknowledges once the uplink has handled the message', async () => {
    const seen: unknown[][] = [];
    const d = deps({ uplink: uplinkThat(async (...args: unknown[]) => { seen.push(args); }) });
    expect(await authorizePublish(d, deviceClient(d), packet(topics.event(ME)))).toEqual([null]);
    expect(seen).toEqual([[ME, 'event', Buffer.from('{}')]]);
  });

  it('does not acknowledge when the uplink fails (the device must resend)', async () => {
    const failure = new Error('STORE_COMMIT_FAILED');
    const d = deps({ uplink: uplinkThat(() => Promise.reject(failure)) });
    expect(await authorizePublish(d, deviceClient(d), packet(topics.event(ME)))).toEqual([failure]);
    expect(d.counters.get('mqtt_events_not_acked_total')).toBe(1);
  });

  it('acknowledges an event that can never become an alert (IntakeError)', async () => {
    const d = deps({ uplink: uplinkThat(() => Promise.reject(new IntakeError('UNKNOWN_DEVICE', 'x'))) });
    expect(await authorizePublish(d, deviceClient(d), packet(topics.event(ME)))).toEqual([null]);
    expect(d.counters.total('mqtt_events_not_acked_total')).toBe(0);
  });
});

describe('makeHeartbeatLane', () => {
  const heartbeat = (topic: string, extra: Partial<PublishPacket> = {}) =>
    ({ cmd: 'publish', topic, payload: Buffer.from('{"seq":1,"ts":2}'), qos: 0, dup: false, retain: false, ...extra }) as PublishPacket;
  const recording = () => {
    const seen: unknown[][] = [];
    return { seen, uplink: { heartbeat: (...args: unknown[]) => { seen.push(args); } } as unknown as DeviceUplink };
  };

  it("takes a device's own QoS 0 heartbeat and hands it to the uplink", () => {
    const { seen, uplink } = recording();
    const d = deps({ uplink });
    expect(makeHeartbeatLane(d)!(deviceClient(d), heartbeat(topics.heartbeat(ME)))).toBe(true);
    expect(seen).toEqual([[ME, Buffer.from('{"seq":1,"ts":2}')]]);
  });

  it('leaves everything else to aedes and its hooks', () => {
    const { seen, uplink } = recording();
    const d = deps({ uplink });
    const lane = makeHeartbeatLane(d)!;
    const unauthenticated = fakeClient();
    for (const [client, p] of [
      [deviceClient(d), heartbeat(topics.heartbeat(OTHER))],
      [deviceClient(d), heartbeat(topics.heartbeat(ME), { qos: 1, messageId: 1 } as Partial<PublishPacket>)],
      [deviceClient(d), heartbeat(topics.heartbeat(ME), { retain: true })],
      [deviceClient(d), heartbeat(topics.event(ME))],
      [deviceClient(d), heartbeat(`${topics.heartbeat(ME)}/x`)],
      [accountClient(d), heartbeat(topics.heartbeat(ME))],
      [unauthenticated, heartbeat(topics.heartbeat(ME))],
    ] as const) {
      expect(lane(client, p), `${client.id} ${p.topic} qos ${p.qos} retain ${p.retain}`).toBe(false);
    }
    expect(seen).toEqual([]);
  });

  it('keeps a bug in the uplink from reaching aedes: logged, and the packet counts as handled', () => {
    const d = deps({ uplink: { heartbeat: () => { throw new Error('boom'); } } as unknown as DeviceUplink });
    expect(makeHeartbeatLane(d)!(deviceClient(d), heartbeat(topics.heartbeat(ME)))).toBe(true);
  });

  it('is off when a service account could subscribe to heartbeats, so they reach it through aedes', () => {
    const account = (subscribe: string[], deny: string[] = []) => new ServiceAccounts([{ ...CCTV, subscribe, deny }]);
    expect(makeHeartbeatLane(deps())).not.toBeNull();
    expect(makeHeartbeatLane(deps({ accounts: new ServiceAccounts([]) }))).not.toBeNull();
    expect(makeHeartbeatLane(deps({ accounts: account(['safehaven/v1/dev/#']) }))).toBeNull();
    expect(makeHeartbeatLane(deps({ accounts: account(['safehaven/v1/dev/+/heartbeat']) }))).toBeNull();
    expect(makeHeartbeatLane(deps({ accounts: account(['#']) }))).toBeNull();
    expect(makeHeartbeatLane(deps({ accounts: account(['#'], ['safehaven/v1/dev/#']) }))).not.toBeNull();
    expect(makeHeartbeatLane(deps({ accounts: account(['safehaven/v1/dev/+/event', 'safehaven/v1/alerts/#']) }))).not.toBeNull();
  });
});

describe('makeAuthorizeSubscribe', () => {
  const sub = (topic: string): Subscription => ({ topic, qos: 1 }) as Subscription;
  const authorizeSubscribe = (d: HookDeps, client: Client | null, s: Subscription) =>
    callHook<[Error | null, (Subscription | null)?]>((done) => makeAuthorizeSubscribe(d)(client, s, done));

  it('grants an allowed subscription unchanged', async () => {
    const s = sub(topics.ack(ME));
    const d = deps();
    const [error, granted] = await authorizeSubscribe(d, deviceClient(d), s);
    expect(error).toBeNull();
    expect(granted).toBe(s);
  });

  it.each(['#', topics.ack(OTHER), '$SYS/#'])('refuses %s with a null subscription, not an error', async (topic) => {
    const d = deps();
    expect(await authorizeSubscribe(d, deviceClient(d), sub(topic))).toEqual([null, null]);
    expect(d.counters.get('mqtt_subscribe_refused_total')).toBe(1);
  });
});

describe('closing the gaps where aedes is laxer than MQTT 3.1.1', () => {
  const authenticate = (d: HookDeps, client: Client, username?: string, password?: string) =>
    callHook<[AuthenticateError | null, boolean | null]>((done) =>
      makeAuthenticate(d)(client, username, password === undefined ? undefined : Buffer.from(password), done));

  it('refuses an empty client id with a persistent session (CONNACK 2)', async () => {
    const d = deps();
    const [error, ok] = await authenticate(d, fakeClient('aedes_0d7c', { clean: false }), CCTV.username, CCTV.password);
    expect([error?.returnCode, ok]).toEqual([2, false]);
  });

  it('refuses a will on any topic but the device\'s own status', async () => {
    const d = deps();
    const client = fakeClient(ME, { _will: { topic: topics.event(ME), payload: Buffer.from('{}') } });
    expect((await authenticate(d, client, ME, SECRET))[1]).toBe(false);
    expect(d.counters.get('mqtt_auth_failures_total', { reason: 'will-topic-not-own-status' })).toBe(1);
    const good = fakeClient(ME, { _will: { topic: topics.status(ME), payload: Buffer.from('offline') } });
    expect((await authenticate(d, good, ME, SECRET))[1]).toBe(true);
  });

  it.each(['safehaven/v1/dev/pb-1/event\u0000x', 'bad\uFFFDtopic'])('closes a publish on a topic with U+0000 or invalid UTF-8 (%j)', async (topic) => {
    const d = deps();
    const [error] = await callHook<[(Error | null)?]>((done) => makeAuthorizePublish(d)(deviceClient(d), { cmd: 'publish', topic, payload: Buffer.from('{}'), qos: 1, dup: false, retain: false } as PublishPacket, done));
    expect(error).toBeInstanceOf(Error);
    expect(d.counters.get('mqtt_publish_refused_total', { reason: 'invalid-topic' })).toBe(1);
  });

  it('closes a subscription whose filter holds U+0000', async () => {
    const d = deps();
    const [error] = await callHook<[Error | null, (Subscription | null)?]>((done) => makeAuthorizeSubscribe(d)(accountClient(d), { topic: 'safehaven/v1/alerts/\u0000', qos: 1 } as Subscription, done));
    expect(error).toBeInstanceOf(Error);
  });

  it('refuses everything to a connection that never authenticated', async () => {
    const d = deps();
    const [error] = await callHook<[(Error | null)?]>((done) => makeAuthorizePublish(d)(fakeClient(), { cmd: 'publish', topic: topics.event(ME), payload: Buffer.from('{}'), qos: 1, dup: false, retain: false } as PublishPacket, done));
    expect(error?.message).toContain('unauthenticated');
  });
});

describe('service accounts', () => {
  const authenticate = (d: HookDeps, client: Client, username?: string, password?: string) =>
    callHook<[AuthenticateError | null, boolean | null]>((done) =>
      makeAuthenticate(d)(client, username, password === undefined ? undefined : Buffer.from(password), done));
  const publish = (d: HookDeps, client: Client, topic: string, retain = false) =>
    callHook<[(Error | null)?]>((done) => makeAuthorizePublish(d)(client, { cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, dup: false, retain } as PublishPacket, done));
  const subscribe = (d: HookDeps, client: Client, topic: string) =>
    callHook<[Error | null, (Subscription | null)?]>((done) => makeAuthorizeSubscribe(d)(client, { topic, qos: 1 } as Subscription, done));

  it('logs in with a free client id and the right password, plain or scrypt-hashed', async () => {
    const d = deps();
    expect(await authenticate(d, fakeClient('cctv-dashboard-1'), CCTV.username, CCTV.password)).toEqual([null, true]);
    expect((await authenticate(d, fakeClient('cctv-dashboard-2'), CCTV.username, 'wrong-password-xx'))[1]).toBe(false);
    const hashed = deps({ accounts: new ServiceAccounts([{ ...CCTV, password: await hashSecret(CCTV.password) }]) });
    expect(await authenticate(hashed, fakeClient('x'), CCTV.username, CCTV.password)).toEqual([null, true]);
  });

  it('may not take a device\'s client id, nor a session held by someone else', async () => {
    const d = deps();
    expect((await authenticate(d, fakeClient(ME), CCTV.username, CCTV.password))[1]).toBe(false);
    expect(d.counters.get('mqtt_auth_failures_total', { reason: 'client-id-is-a-device' })).toBe(1);

    const holder = deviceClient(d, 'shared-id');
    const taken = deps({ principals: d.principals, connectedClient: (id) => (id === 'shared-id' ? holder : undefined) });
    expect((await authenticate(taken, fakeClient('shared-id'), CCTV.username, CCTV.password))[1]).toBe(false);
    expect(taken.counters.get('mqtt_auth_failures_total', { reason: 'client-id-taken' })).toBe(1);
  });

  it('subscribes to alerts but not to device topics, $SYS or a denied alert', async () => {
    const d = deps();
    const client = accountClient(d);
    expect((await subscribe(d, client, 'safehaven/v1/alerts/+'))[1]).not.toBeNull();
    expect((await subscribe(d, client, 'safehaven/v1/alerts/al-1'))[1]).not.toBeNull();
    for (const refused of ['#', 'safehaven/v1/#', 'safehaven/v1/dev/+/event', '$SYS/#', 'safehaven/v1/alerts/secret']) {
      expect((await subscribe(d, client, refused))[1], refused).toBeNull();
    }
  });

  it('drops a denied topic per message even under an allowed wildcard subscription', () => {
    const d = deps();
    const forward = makeAuthorizeForward(d);
    const client = accountClient(d);
    expect(forward(client, { topic: 'safehaven/v1/alerts/al-1' })).not.toBeNull();
    expect(forward(client, { topic: 'safehaven/v1/alerts/secret' })).toBeNull();
    expect(forward(deviceClient(d), { topic: topics.ack(ME) })).not.toBeNull();
  });

  it('publishes only on its allowed topics, never under safehaven/v1/ and never retained', async () => {
    const d = deps();
    const client = accountClient(d);
    expect(await publish(d, client, 'city/cctv/cam-1')).toEqual([null]);
    for (const [topic, retain, reason] of [
      ['city/other', false, 'not-allowed'], [topics.ack(ME), false, 'gateway-topic'], ['safehaven/v1/alerts/al-1', false, 'gateway-topic'],
      ['city/cctv/cam-1', true, 'retain-not-allowed'],
    ] as const) {
      const [error] = await publish(d, client, topic, retain);
      expect(error?.message, topic).toContain(reason);
    }
  });
});

describe('login rate limits', () => {
  const authenticate = (d: HookDeps, client: Client, username?: string, password?: string) =>
    callHook<[AuthenticateError | null, boolean | null]>((done) =>
      makeAuthenticate(d)(client, username, password === undefined ? undefined : Buffer.from(password), done));

  it('refuses an address over its limit without checking, but still lets in a secret already verified', async () => {
    let checks = 0;
    const registry = {
      authenticate: async (id: string, secret: string) => { checks++; return id === ME && secret === SECRET ? 'ok' : 'bad-secret'; },
      device: () => ({}), knownSecret: (id: string, secret: string) => id === ME && secret === SECRET,
    } as unknown as Registry;
    const d = deps({ registry });
    for (let i = 0; i < 3; i++) await authenticate(d, fakeClient(OTHER), OTHER, 'guess');
    const before = checks;
    expect((await authenticate(d, fakeClient(OTHER), OTHER, 'guess'))[1]).toBe(false);
    expect(checks).toBe(before);
    expect(d.counters.get('mqtt_auth_failures_total', { reason: 'rate-limited-by-address' })).toBe(1);
    expect((await authenticate(d, fakeClient(ME), ME, SECRET))[1]).toBe(true);
  });
});
