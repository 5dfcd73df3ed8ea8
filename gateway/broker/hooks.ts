// aedes hooks. Each is a small function built from its dependencies, so tests
// can call them directly with a fake client. A device is identified by its
// client id, which must equal its username (its device id); an integrator's
// service account has a free client id but may never take a device's or
// another account's session. These hooks also close the gaps where aedes is
// laxer than MQTT 3.1.1 (INTERFACES §2).
import type { AuthenticateError, Client, PublishPacket, Subscription } from 'aedes';
import type { Logger } from 'pino';
import { isHeartbeatTopicOf, isUplink, parseDeviceTopic, topics } from '../../protocol/index.ts';
import type { Counters } from '../metrics/counters.ts';
import { IntakeError } from '../pipeline/alert-intake.ts';
import type { Registry } from '../registry/registry.ts';
import type { AuthLimiter } from './auth-limiter.ts';
import type { DeviceUplink } from './device-uplink.ts';
import { writePuback, type PublishLane } from './publish-lane.ts';
import { ServiceAccounts, type ServiceAccount } from './service-accounts.ts';

/** CONNACK return code 5, "not authorized" (INTERFACES §2 fixes this code for bad credentials). */
const NOT_AUTHORIZED = 5;
/** CONNACK return code 2, "identifier rejected" (MQTT-3.1.3-8: empty client id with a persistent session). */
const IDENTIFIER_REJECTED = 2;

/** Who a connection is, once authenticated. */
export type Principal = { kind: 'device'; id: string } | { kind: 'account'; account: ServiceAccount };

export interface HookDeps {
  registry: Registry;
  uplink: DeviceUplink;
  accounts: ServiceAccounts;
  limiter: AuthLimiter;
  /** Authenticated connections; a client without an entry is refused everything. */
  principals: WeakMap<Client, Principal>;
  /** The live connection holding a client id, if any. */
  connectedClient: (clientId: string) => Client | undefined;
  counters: Counters;
  log: Logger;
}

function refusal(message: string, returnCode = NOT_AUTHORIZED): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** The peer's address, whatever the transport (TCP, TLS, WebSocket). */
export function remoteAddress(client: Client): string | undefined {
  const c = client as unknown as { conn?: { remoteAddress?: string }; req?: { socket?: { remoteAddress?: string } } };
  return c.conn?.remoteAddress ?? c.req?.socket?.remoteAddress;
}

/** aedes fills an empty client id with `aedes_<uuid>`; MQTT says an empty id is only for clean sessions. */
const generatedId = (client: Client) => client.id.startsWith('aedes_');

/** A topic name or filter that MQTT forbids: U+0000, or bytes that were not UTF-8 (decoded as U+FFFD). */
export const invalidTopic = (topic: string) => /[\u0000\uFFFD]/.test(topic);

export function makeAuthenticate(deps: HookDeps) {
  const { registry, accounts, limiter, principals, connectedClient, counters, log } = deps;
  return function authenticate(
    client: Client,
    username: Readonly<string> | undefined,
    password: Readonly<Buffer> | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const address = remoteAddress(client);
    const deny = (reason: string, returnCode = NOT_AUTHORIZED, countsAsFailure = true) => {
      counters.inc('mqtt_auth_failures_total', { reason });
      if (countsAsFailure) limiter.failure(address, username);
      log.warn({ clientId: client.id, username, reason, remote: address }, 'MQTT connect refused');
      done(refusal(reason, returnCode), false);
    };
    const accept = (principal: Principal) => {
      const holder = connectedClient(client.id);
      const held = holder && holder !== client ? principals.get(holder) : undefined;
      // Taking over a session is only for the same device or account reconnecting.
      if (held && !samePrincipal(held, principal)) return deny('client-id-taken');
      principals.set(client, principal);
      done(null, true);
    };
    if (generatedId(client) && !client.clean) return deny('empty-client-id-persistent', IDENTIFIER_REJECTED, false);
    if (!username || !password) return deny('missing-credentials');
    const will = (client as unknown as { _will?: { topic: string; retain?: boolean } })._will;
    const secret = password.toString('utf8');
    const limited = limiter.limited(address, username);
    if (limited) {
      // Over the limit: only a secret this process has already verified (a cheap HMAC) gets in,
      // or, for a username under attack, one full check every few seconds.
      const cheap = client.id === username && registry.knownSecret(username, secret);
      if (!cheap && (limited === 'address' || !limiter.takeSlowCheck(username))) return deny(`rate-limited-by-${limited}`, NOT_AUTHORIZED, false);
    }
    if (accounts.has(username)) {
      if (registry.device(client.id)) return deny('client-id-is-a-device');
      if (will) return deny('will-not-allowed');
      accounts.authenticate(username, secret).then(
        (account) => (account ? accept({ kind: 'account', account }) : deny('bad-secret')),
        (err: unknown) => {
          log.error({ err, username }, 'service account check failed with an error');
          deny('error');
        },
      );
      return;
    }
    if (client.id !== username) return deny('client-id-mismatch');
    // A device's will may only say, on its own status topic, that it went offline.
    if (will && will.topic !== topics.status(username)) return deny('will-topic-not-own-status');
    registry.authenticate(username, secret).then(
      (outcome) => (outcome === 'ok' ? accept({ kind: 'device', id: username }) : deny(outcome)),
      (err: unknown) => {
        log.error({ err, clientId: client.id }, 'authentication failed with an error');
        deny('error');
      },
    );
  };
}

function samePrincipal(a: Principal, b: Principal): boolean {
  if (a.kind === 'device' && b.kind === 'device') return a.id === b.id;
  if (a.kind === 'account' && b.kind === 'account') return a.account.username === b.account.username;
  return false;
}

/** Why a device may not publish on a topic, or null if it may. */
export function devicePublishRefusal(clientId: string, topic: string, retain: boolean): string | null {
  const parsed = parseDeviceTopic(topic);
  if (!parsed) return 'unknown-topic';
  if (parsed.deviceId !== clientId) return 'foreign-topic';
  if (!isUplink(parsed.channel)) return 'downlink-topic';
  if (retain && parsed.channel !== 'status') return 'retain-not-allowed';
  return null;
}

export function makeAuthorizePublish({ uplink, principals, counters, log }: HookDeps) {
  return function authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    // null client = the gateway's own publishes (acks, config, integrator topic).
    if (!client) return done(null);
    const principal = principals.get(client);
    const refused = invalidTopic(packet.topic) ? 'invalid-topic'
      : !principal ? 'unauthenticated'
      : principal.kind === 'account' ? ServiceAccounts.publishRefusal(principal.account, packet.topic, packet.retain)
      : devicePublishRefusal(client.id, packet.topic, packet.retain);
    if (refused) {
      counters.inc('mqtt_publish_refused_total', { reason: refused });
      log.warn({ clientId: client.id, topic: packet.topic, reason: refused }, 'publish refused: connection closed');
      return done(new Error(`publish refused: ${refused}`));
    }
    if (principal!.kind === 'account') return done(null);
    const { channel } = parseDeviceTopic(packet.topic)!;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    settle({ counters, log }, client, packet.topic, uplink.handle(client.id, channel as 'event' | 'heartbeat' | 'status', payload), () => done(null), (err) => done(err));
  };
}

/**
 * What becomes of a device's message once the uplink has it: acknowledged
 * when handled (for an event: durable), or when retrying cannot help; else no
 * PUBACK, and `refuse` ends the connection so the device resends.
 */
function settle(
  { counters, log }: Pick<HookDeps, 'counters' | 'log'>, client: Client, topic: string, handled: Promise<void>, ack: () => void, refuse: (err: Error) => void,
): void {
  handled.then(ack, (err: unknown) => {
    if (err instanceof IntakeError) {
      // Retrying cannot fix a replay or a device without a site; acknowledge so it stops.
      // The intake logged a replay (once per burst); the rest is loud.
      if (err.code !== 'REPLAYED') log.error({ err, clientId: client.id, code: err.code }, 'event cannot become an alert');
      return ack();
    }
    // Not durable: no PUBACK. Closing the connection makes the device resend on reconnect.
    counters.inc('mqtt_events_not_acked_total');
    log.error({ err, clientId: client.id, topic }, 'event NOT acknowledged: the device will resend it');
    refuse(err as Error);
  });
}

/**
 * A device's own QoS 1 event, handled before aedes would take it through its
 * handler chain and route it (an alert is ours alone): the uplink stores it,
 * and the PUBACK is written once it is durable — exactly when
 * authorizePublish's `done` would have had aedes write it — or the
 * connection is closed unacknowledged. If a configured account could
 * subscribe to device events, there is no lane and events take aedes' path.
 */
export function makeEventLane(deps: HookDeps): PublishLane | null {
  const { uplink, principals, accounts } = deps;
  if (accounts.anyMayReceive(topics.event('+'))) return null;
  return function eventLane(client: Client, packet: PublishPacket): boolean {
    if (packet.qos !== 1 || packet.retain || packet.messageId === undefined) return false;
    const principal = principals.get(client);
    if (principal?.kind !== 'device' || packet.topic !== topics.event(principal.id)) return false;
    const messageId = packet.messageId;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    settle(deps, client, packet.topic, uplink.handle(principal.id, 'event', payload), () => writePuback(client, messageId), () => client.close());
    return true;
  };
}

/**
 * A device's heartbeats on its own topic, handled in full before aedes would
 * route them: what authorizePublish and DeviceUplink.handle would do, without
 * aedes' handler chain, the promise or the routing. Devices can never
 * subscribe to heartbeats, so only an integrator's account could receive one:
 * if the configured accounts could, there is no lane and heartbeats take
 * aedes' path (null).
 */
export function makeHeartbeatLane({ uplink, principals, accounts, log }: HookDeps): PublishLane | null {
  if (accounts.anyMayReceive(topics.heartbeat('+'))) return null;
  return function heartbeatLane(client: Client, packet: PublishPacket): boolean {
    if (packet.qos !== 0 || packet.retain) return false;
    const principal = principals.get(client);
    if (principal?.kind !== 'device' || !isHeartbeatTopicOf(packet.topic, principal.id)) return false;
    try {
      uplink.heartbeat(principal.id, typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload);
    } catch (err) {
      // A bug here must not reach aedes' parser, nor cost the device its connection.
      log.error({ err, clientId: client.id }, 'heartbeat handling failed');
    }
    return true;
  };
}

/** Devices may subscribe to exactly their own ack and config topics: no wildcards, no $SYS. */
export function deviceSubscribeAllowed(clientId: string, topic: string): boolean {
  const parsed = parseDeviceTopic(topic);
  return parsed !== null && parsed.deviceId === clientId && !isUplink(parsed.channel);
}

export function makeAuthorizeSubscribe({ principals, counters, log }: HookDeps) {
  return function authorizeSubscribe(client: Client | null, sub: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void): void {
    if (invalidTopic(sub.topic)) {
      counters.inc('mqtt_subscribe_refused_total', { reason: 'invalid-topic' });
      log.warn({ clientId: client?.id }, 'subscription with U+0000 or invalid UTF-8: connection closed');
      return done(new Error('invalid topic filter'));
    }
    const principal = client ? principals.get(client) : undefined;
    const allowed = principal?.kind === 'account'
      ? ServiceAccounts.subscribeAllowed(principal.account, sub.topic)
      : principal?.kind === 'device' && deviceSubscribeAllowed(principal.id, sub.topic);
    if (allowed) return done(null, sub);
    counters.inc('mqtt_subscribe_refused_total');
    log.warn({ clientId: client?.id, topic: sub.topic }, 'subscription refused');
    // A null subscription is SUBACK 0x80: refused without dropping the device's connection.
    done(null, null);
  };
}

/** The deny list wins per message, also for a subscription that only partly overlaps it. */
export function makeAuthorizeForward({ principals }: Pick<HookDeps, 'principals'>) {
  return function authorizeForward<P extends { topic: string }>(client: Client, packet: P): P | null {
    const principal = principals.get(client);
    if (principal?.kind === 'account' && !ServiceAccounts.mayReceive(principal.account, packet.topic)) return null;
    return packet;
  };
}
