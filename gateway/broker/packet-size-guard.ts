// aedes (through mqtt-packet) reads a packet's whole body into memory before
// anyone can look at it, whatever size its header declares: an 8 MB "panic"
// or a 256 MB remaining length would be buffered first. This guard reads only
// the fixed headers of what reaches aedes' parser, and cuts the connection as
// soon as a header declares more than the limit — before the body arrives.
// Until aedes reads, the socket itself holds at most its highWaterMark.
import type { Duplex } from 'node:stream';

export type ScanVerdict = { ok: true } | { ok: false; declared: number | null };

/**
 * Walks MQTT fixed headers across chunk boundaries: one type byte, a 1–4 byte
 * remaining length, then the body, which is skipped unread.
 */
export class MqttHeaderScanner {
  private inBody = 0;
  private readingLength = false;
  private length = 0;
  private lengthBytes = 0;

  constructor(private readonly maxPacketBytes: number) {}

  scan(chunk: Buffer): ScanVerdict {
    let i = 0;
    while (i < chunk.length) {
      if (this.inBody > 0) {
        const skip = Math.min(this.inBody, chunk.length - i);
        this.inBody -= skip;
        i += skip;
        continue;
      }
      if (!this.readingLength) {
        // The type byte; the length follows.
        this.readingLength = true;
        this.length = 0;
        this.lengthBytes = 0;
        i++;
        continue;
      }
      const byte = chunk[i++]!;
      this.length += (byte & 0x7f) * 128 ** this.lengthBytes;
      this.lengthBytes++;
      if (byte & 0x80) {
        if (this.lengthBytes === 4) return { ok: false, declared: null };
        continue;
      }
      if (1 + this.lengthBytes + this.length > this.maxPacketBytes) return { ok: false, declared: this.length };
      this.readingLength = false;
      this.inBody = this.length;
    }
    return { ok: true };
  }
}

/** A connection's scanner, kept on its parser so the guarded parse is one function for every connection. */
class ConnectionGuard<M> extends MqttHeaderScanner {
  refused = false;

  constructor(maxPacketBytes: number, readonly meta: M, readonly onRefused: (client: unknown, meta: M, declared: number | null) => void) {
    super(maxPacketBytes);
  }
}

const GUARD = Symbol('packetSizeGuard');

/** The parts of an aedes client and its mqtt-packet parser this guard reaches into. */
interface GuardedParser {
  parse(buf: Buffer): number;
  client: { conn: Duplex };
  [GUARD]: ConnectionGuard<unknown>;
}

/** The guarded parse: every chunk a connection reads passes here first. */
export function guardedParse(this: GuardedParser, buf: Buffer): number {
  const guard = this[GUARD];
  if (guard.refused) return 0;
  const verdict = guard.scan(buf);
  if (verdict.ok) return (Object.getPrototypeOf(this) as GuardedParser).parse.call(this, buf);
  guard.refused = true;
  guard.onRefused(this.client, guard.meta, verdict.declared);
  this.client.conn.destroy();
  return 0;
}

/**
 * Makes an aedes client's parser see only bytes whose packets fit the limit.
 * aedes 1.x reads its connection in one place (`conn.read()` in `nextBatch`,
 * lib/client.js) and hands every chunk to `_parser.parse`; this scans each
 * chunk's headers first and, at the first header over the limit, destroys the
 * connection instead, so the parser never buffers that body. No stream sits in
 * between: a chunk costs one header scan, and aedes' writes (corked ones as one
 * writev) go to the socket itself. `onRefused` (one function for all
 * connections; `meta` is this connection's) hears of each cut.
 */
export function guardPacketSize<M>(
  client: unknown, maxPacketBytes: number, meta: M, onRefused: (client: unknown, meta: M, declared: number | null) => void,
): void {
  const parser = (client as { _parser: GuardedParser })._parser;
  parser[GUARD] = new ConnectionGuard(maxPacketBytes, meta, onRefused) as ConnectionGuard<unknown>;
  parser.parse = guardedParse;
}
