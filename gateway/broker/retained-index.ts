// aedes' in-memory persistence, with retained messages looked up by topic.
// The stock one answers every SUBSCRIBE by testing the filter against every
// retained message in the broker. Here each device has two retained
// messages (its config, its status) and subscribes to its own exact topics,
// so connecting N devices cost O(N²): at 2,000 devices it was the largest
// item of the gateway's CPU profile, and connects crawled. A filter without
// wildcards (all a device may use) is now one Map lookup; a service
// account's wildcard filter still scans, as before.
import aedesPersistence from 'aedes-persistence';
import { Readable } from 'node:stream';
import { topicMatches } from './topic-filter.ts';

interface Packet {
  cmd?: string;
  topic: string;
  payload: Buffer;
  qos?: number;
}

/** Distinct small payloads shared between retained messages (every device's config and "online" are alike); bounded. */
const MAX_SHARED_PAYLOADS = 256;
const MAX_SHARED_PAYLOAD_BYTES = 128;

/** The parts of aedes' persistence this replaces (its typings do not describe the CommonJS factory). */
interface MemoryPersistence {
  storeRetained(packet: Packet, cb?: (err: Error | null) => void): Promise<void> | undefined;
  createRetainedStream(filter: string): Readable;
  createRetainedStreamCombi(filters: string[]): Readable;
}

const hasWildcard = (filter: string) => filter.includes('+') || filter.includes('#');

export function indexedMemoryPersistence(): MemoryPersistence {
  const persistence = (aedesPersistence as unknown as () => MemoryPersistence)();
  const retained = new Map<string, Packet>();
  function* matching(filters: readonly string[]): Generator<Packet> {
    for (const filter of filters) {
      if (!hasWildcard(filter)) {
        const packet = retained.get(filter);
        if (packet) yield packet;
        continue;
      }
      for (const [topic, packet] of retained) if (topicMatches(filter, topic)) yield packet;
    }
  }
  const shared = new Map<string, Buffer>();
  /** One Buffer for every retained copy of the same small payload; a payload read off a socket is not kept as a view of its chunk. */
  const sharedPayload = (payload: Buffer): Buffer => {
    if (payload.length > MAX_SHARED_PAYLOAD_BYTES) return Buffer.from(payload);
    const key = payload.toString('latin1');
    let buf = shared.get(key);
    if (!buf) {
      buf = Buffer.from(payload);
      if (shared.size < MAX_SHARED_PAYLOADS) shared.set(key, buf);
    }
    return buf;
  };
  // Same semantics as the stock store: an empty payload clears the topic; a copy is kept.
  // Only what aedes reads back when it delivers a retained message (lib/handlers/subscribe.js): 10,000
  // devices keep 20,000 of them, and a full aedes Packet copy costs several hundred bytes more each.
  persistence.storeRetained = (packet, cb) => {
    if (packet.payload.length === 0) retained.delete(packet.topic);
    else retained.set(packet.topic, { cmd: packet.cmd ?? 'publish', topic: packet.topic, payload: sharedPayload(packet.payload), qos: packet.qos ?? 0 });
    if (cb) {
      process.nextTick(cb, null);
      return undefined;
    }
    return Promise.resolve();
  };
  persistence.createRetainedStream = (filter) => Readable.from(matching([filter]));
  persistence.createRetainedStreamCombi = (filters) => Readable.from(matching(filters));
  return persistence;
}
