// aedes hooks. Each is a small function built from its dependencies, so tests
// can call them directly with a fake client. A device is identified by its
// client id, which must equal its username (its device id).
import type { AuthenticateError, Client, PublishPacket, Subscription } from 'aedes';
import type { Logger } from 'pino';
import { isUplink, parseDeviceTopic } from '../../protocol/index.ts';
import type { Counters } from '../metrics/counters.ts';
import { IntakeError } from '../pipeline/alert-intake.ts';
import type { Registry } from '../registry/registry.ts';
import type { DeviceUplink } from './device-uplink.ts';

/** CONNACK return code 5, "not authorized" (INTERFACES §2 fixes this code for bad credentials). */
const NOT_AUTHORIZED = 5;

export interface HookDeps {
  registry: Registry;
  uplink: DeviceUplink;
  counters: Counters;
  log: Logger;
}

function refusal(message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: NOT_AUTHORIZED }) as AuthenticateError;
}

export function makeAuthenticate({ registry, counters, log }: HookDeps) {
  return function authenticate(
    client: Client,
    username: Readonly<string> | undefined,
    password: Readonly<Buffer> | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const deny = (reason: string) => {
      counters.inc('mqtt_auth_failures_total', { reason });
      log.warn({ clientId: client.id, username, reason, remote: client.conn && 'remoteAddress' in client.conn ? client.conn.remoteAddress : undefined }, 'MQTT connect refused');
      done(refusal(reason), false);
    };
    if (!username || !password) return deny('missing-credentials');
    if (client.id !== username) return deny('client-id-mismatch');
    registry.authenticate(username, password.toString('utf8')).then(
      (outcome) => (outcome === 'ok' ? done(null, true) : deny(outcome)),
      (err: unknown) => {
        log.error({ err, clientId: client.id }, 'authentication failed with an error');
        deny('error');
      },
    );
  };
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

export function makeAuthorizePublish({ uplink, counters, log }: HookDeps) {
  return function authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    // null client = the gateway's own publishes (acks, config, integrator topic).
    if (!client) return done(null);
    const refused = devicePublishRefusal(client.id, packet.topic, packet.retain);
    if (refused) {
      counters.inc('mqtt_publish_refused_total', { reason: refused });
      log.warn({ clientId: client.id, topic: packet.topic, reason: refused }, 'publish refused: connection closed');
      return done(new Error(`publish refused: ${refused}`));
    }
    const { channel } = parseDeviceTopic(packet.topic)!;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    uplink.handle(client.id, channel as 'event' | 'heartbeat' | 'status', payload).then(
      () => done(null),
      (err: unknown) => {
        if (err instanceof IntakeError) {
          // Retrying cannot fix a device without a site; acknowledge so it stops, and say so loudly.
          log.error({ err, clientId: client.id, code: err.code }, 'event cannot become an alert');
          return done(null);
        }
        // Not durable: no PUBACK. Closing the connection makes the device resend on reconnect.
        counters.inc('mqtt_events_not_acked_total');
        log.error({ err, clientId: client.id, topic: packet.topic }, 'event NOT acknowledged: the device will resend it');
        done(err as Error);
      },
    );
  };
}

/** Devices may subscribe to exactly their own ack and config topics: no wildcards, no $SYS. */
export function deviceSubscribeAllowed(clientId: string, topic: string): boolean {
  const parsed = parseDeviceTopic(topic);
  return parsed !== null && parsed.deviceId === clientId && !isUplink(parsed.channel);
}

export function makeAuthorizeSubscribe({ counters, log }: HookDeps) {
  return function authorizeSubscribe(client: Client | null, sub: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void): void {
    if (client && deviceSubscribeAllowed(client.id, sub.topic)) return done(null, sub);
    counters.inc('mqtt_subscribe_refused_total');
    log.warn({ clientId: client?.id, topic: sub.topic }, 'subscription refused');
    // A null subscription is SUBACK 0x80: refused without dropping the device's connection.
    done(null, null);
  };
}
