// A lane around aedes for publishes the gateway handles in full itself. aedes
// takes every publish through its handler chain (topic checks, the
// authorizePublish hook, a promise, then routing through its emitter and
// topic matcher to subscribers) even when nobody can be subscribed. A device's
// heartbeat needs none of that: no ack (QoS 0), no subscriber (see
// makeHeartbeatLane), and its handling never waits. The lane takes such a
// packet as aedes' parser produces it or, when a chunk is exactly one such
// packet (the usual case), straight off the bytes before the parser; whatever
// it declines goes on to the parser and aedes unchanged.
import type { Client, PublishPacket } from 'aedes';
import mqttPacket from 'mqtt-packet';
import type { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { guardedParse } from './packet-size-guard.ts';

/** True if the packet was handled in full and aedes must not see it; false to leave it to aedes. Must not throw. */
export type PublishLane = (client: Client, packet: PublishPacket) => boolean;

/** What this reaches of an aedes 1.x client (lib/client.js) and its parser. */
interface ClientInternals {
  _parser: LaneParser;
  conn: Writable;
  connected: boolean;
  closed: boolean;
  _keepaliveInterval: number;
  _keepaliveTimer: NodeJS.Timeout | null;
}

type LaneParser = EventEmitter & {
  client: ClientInternals;
  settings: { protocolVersion?: number };
  error: Error | null;
  packet: { length: number };
  _list: { length: number };
  _stateCounter: number;
  parse(buf: Buffer): number;
};

/** Far above a heartbeat (~100 bytes) and at most the smallest packet-size limit, so the guard's verdict cannot differ. */
const MAX_WHOLE_CHUNK = 1024;
/** First byte of a PUBLISH with QoS 0, no DUP, no RETAIN. */
const PUBLISH_QOS0 = 0x30;

/**
 * A chunk that is exactly one small QoS 0 PUBLISH of MQTT 3.1/3.1.1 (how a
 * heartbeat arrives: one packet per TCP segment), read straight off the
 * bytes while the parser holds nothing: the fixed header, the remaining
 * length, the topic, the rest is the payload. Anything else — more than one
 * packet, a part of one, other flags, MQTT 5 — is null and goes to the
 * parser. The topic is read as latin1: the lane only takes its device's own
 * (ASCII) heartbeat topic, which a non-ASCII topic can never equal.
 */
function wholeQos0Publish(parser: LaneParser, buf: Buffer): PublishPacket | null {
  if (buf.length > MAX_WHOLE_CHUNK || buf[0] !== PUBLISH_QOS0) return null;
  if (parser.error || parser._stateCounter !== 0 || parser._list.length !== 0 || parser.packet.length !== -1) return null;
  const version = parser.settings.protocolVersion;
  if (version !== 4 && version !== 3) return null;
  let length = 0;
  let i = 1;
  for (let shift = 1; ; shift *= 128) {
    if (i > 4) return null;
    const byte = buf[i++]!;
    length += (byte & 0x7f) * shift;
    if (!(byte & 0x80)) break;
  }
  if (i + length !== buf.length || length < 2) return null;
  const topicEnd = i + 2 + buf.readUInt16BE(i);
  if (topicEnd > buf.length) return null;
  return { cmd: 'publish', topic: buf.toString('latin1', i + 2, topicEnd), payload: buf.subarray(topicEnd), qos: 0, retain: false, dup: false } as PublishPacket;
}
type PacketListener = (this: LaneParser, packet: { cmd: string }) => void;

/** The PUBACK aedes would write for a QoS 1 publish a lane took; nothing to a connection already gone (the device resends). */
export function writePuback(client: Client, messageId: number): void {
  const c = client as unknown as ClientInternals;
  if (c.closed || !c.connected) return;
  mqttPacket.writeToStream({ cmd: 'puback', messageId }, c.conn);
}

/** One lane made of several, asked in turn; null if none is on. */
export function eitherLane(...lanes: Array<PublishLane | null>): PublishLane | null {
  const on = lanes.filter((lane): lane is PublishLane => lane !== null);
  if (on.length <= 1) return on[0] ?? null;
  return (client, packet) => on.some((lane) => lane(client, packet));
}

/**
 * Returns what puts `lane` in front of a client's packet handling. aedes'
 * parser has one 'packet' listener (its `enqueue`, the same function for
 * every client): it is replaced by one that asks the lane first — one
 * function for all clients, no closure per connection. Only packets of a
 * fully connected client are offered (before that, aedes queues them
 * itself), and a packet the lane takes still counts as activity for the
 * keepalive, as it would in aedes' handler.
 */
export function publishLane(lane: PublishLane): (client: Client) => void {
  let enqueue: PacketListener | null = null;
  const offer = (c: ClientInternals, packet: PublishPacket): boolean => {
    if (!c.connected || c.closed || !lane(c as unknown as Client, packet)) return false;
    if (c._keepaliveInterval > 0) c._keepaliveTimer?.refresh();
    return true;
  };
  function onPacket(this: LaneParser, packet: { cmd: string }): void {
    if (packet.cmd === 'publish' && offer(this.client, packet as PublishPacket)) return;
    enqueue!.call(this, packet);
  }
  // In front of the size guard (which it calls for everything else): a lone heartbeat skips mqtt-packet's buffering and parsing.
  function laneParse(this: LaneParser, buf: Buffer): number {
    const whole = wholeQos0Publish(this, buf);
    if (whole && offer(this.client, whole)) return 0;
    return guardedParse.call(this as never, buf);
  }
  return (client) => {
    const parser = (client as unknown as ClientInternals)._parser;
    const listeners = parser.listeners('packet') as PacketListener[];
    if (listeners.length !== 1 || (enqueue !== null && listeners[0] !== enqueue)) {
      throw new Error('aedes client parser: expected exactly its one shared packet listener');
    }
    enqueue = listeners[0]!;
    parser.removeListener('packet', enqueue);
    parser.on('packet', onPacket);
    if (parser.parse !== guardedParse) throw new Error('publish lane: install the packet-size guard first');
    parser.parse = laneParse;
  };
}
