// A lane around aedes for publishes the gateway handles in full itself. aedes
// takes every publish through its handler chain (topic checks, the
// authorizePublish hook, a promise, then routing through its emitter and
// topic matcher to subscribers) even when nobody can be subscribed. A device's
// heartbeat needs none of that: no ack (QoS 0), no subscriber (see
// makeHeartbeatLane), and its handling never waits. The lane takes such a
// packet as aedes' parser produces it; whatever it declines goes on to aedes
// unchanged.
import type { Client, PublishPacket } from 'aedes';
import type { EventEmitter } from 'node:events';

/** True if the packet was handled in full and aedes must not see it; false to leave it to aedes. Must not throw. */
export type PublishLane = (client: Client, packet: PublishPacket) => boolean;

/** What this reaches of an aedes 1.x client (lib/client.js) and its parser. */
interface ClientInternals {
  _parser: LaneParser;
  connected: boolean;
  closed: boolean;
  _keepaliveInterval: number;
  _keepaliveTimer: NodeJS.Timeout | null;
}

type LaneParser = EventEmitter & { client: ClientInternals };
type PacketListener = (this: LaneParser, packet: { cmd: string }) => void;

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
  function onPacket(this: LaneParser, packet: { cmd: string }): void {
    const c = this.client;
    if (packet.cmd === 'publish' && c.connected && !c.closed && lane(c as unknown as Client, packet as PublishPacket)) {
      if (c._keepaliveInterval > 0) c._keepaliveTimer?.refresh();
      return;
    }
    enqueue!.call(this, packet);
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
  };
}
