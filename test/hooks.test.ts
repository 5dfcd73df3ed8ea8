import { describe, it, expect } from 'vitest';
import pino from 'pino';
import type { AuthenticateError, Client, PublishPacket, Subscription } from 'aedes';
import {
  devicePublishRefusal, deviceSubscribeAllowed, makeAuthenticate, makeAuthorizePublish, makeAuthorizeSubscribe,
  type HookDeps,
} from '../gateway/broker/hooks.ts';
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

const fakeClient = (id = ME) => ({ id, conn: {} }) as unknown as Client;

const registryAnswering = (answer: (id: string, secret: string) => Promise<AuthOutcome>) =>
  ({ authenticate: answer }) as unknown as Registry;

const goodRegistry = registryAnswering(async (id, secret) => (id === ME && secret === SECRET ? 'ok' : 'bad-secret'));

const uplinkThat = (handle: () => Promise<void>) => ({ handle }) as unknown as DeviceUplink;

function deps(overrides: Partial<HookDeps> = {}): HookDeps {
  return {
    registry: goodRegistry,
    uplink: uplinkThat(async () => {}),
    counters: new Counters(),
    log: pino({ level: 'silent' }),
    ...overrides,
  };
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
    const [error] = await authorizePublish(d, fakeClient(), packet(topics.event(OTHER)));
    expect(error).toBeInstanceOf(Error);
    expect(error?.message).toContain('foreign-topic');
    expect(d.counters.get('mqtt_publish_refused_total', { reason: 'foreign-topic' })).toBe(1);
  });

  it('acknowledges once the uplink has handled the message', async () => {
    const seen: unknown[][] = [];
    const d = deps({ uplink: uplinkThat(async (...args: unknown[]) => { seen.push(args); }) });
    expect(await authorizePublish(d, fakeClient(), packet(topics.event(ME)))).toEqual([null]);
    expect(seen).toEqual([[ME, 'event', Buffer.from('{}')]]);
  });

  it('does not acknowledge when the uplink fails (the device must resend)', async () => {
    const failure = new Error('STORE_COMMIT_FAILED');
    const d = deps({ uplink: uplinkThat(() => Promise.reject(failure)) });
    expect(await authorizePublish(d, fakeClient(), packet(topics.event(ME)))).toEqual([failure]);
    expect(d.counters.get('mqtt_events_not_acked_total')).toBe(1);
  });

  it('acknowledges an event that can never become an alert (IntakeError)', async () => {
    const d = deps({ uplink: uplinkThat(() => Promise.reject(new IntakeError('UNKNOWN_DEVICE', 'x'))) });
    expect(await authorizePublish(d, fakeClient(), packet(topics.event(ME)))).toEqual([null]);
    expect(d.counters.total('mqtt_events_not_acked_total')).toBe(0);
  });
});

describe('makeAuthorizeSubscribe', () => {
  const sub = (topic: string): Subscription => ({ topic, qos: 1 }) as Subscription;
  const authorizeSubscribe = (d: HookDeps, client: Client | null, s: Subscription) =>
    callHook<[Error | null, (Subscription | null)?]>((done) => makeAuthorizeSubscribe(d)(client, s, done));

  it('grants an allowed subscription unchanged', async () => {
    const s = sub(topics.ack(ME));
    const [error, granted] = await authorizeSubscribe(deps(), fakeClient(), s);
    expect(error).toBeNull();
    expect(granted).toBe(s);
  });

  it.each(['#', topics.ack(OTHER), '$SYS/#'])('refuses %s with a null subscription, not an error', async (topic) => {
    const d = deps();
    expect(await authorizeSubscribe(d, fakeClient(), sub(topic))).toEqual([null, null]);
    expect(d.counters.get('mqtt_subscribe_refused_total')).toBe(1);
  });
});
