// aedes (through mqtt-packet) reads a packet's whole body into memory before
// anyone can look at it, whatever size its header declares: an 8 MB "panic"
// or a 256 MB remaining length would be buffered first. This guard sits
// between the socket and aedes, reads only the fixed headers, and cuts the
// connection as soon as a header declares more than the limit — before the
// body arrives.
import { Duplex } from 'node:stream';

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

/**
 * Wraps a connection so aedes only ever sees bytes whose packets fit the
 * limit. Writes pass straight through (corked ones as one). `onRefused` hears of each cut.
 */
export function guardPacketSize(inner: Duplex, maxPacketBytes: number, onRefused: (declared: number | null) => void): Duplex {
  const scanner = new MqttHeaderScanner(maxPacketBytes);
  const outer = new Duplex({
    read() {
      inner.resume();
    },
    write(chunk: Buffer, _enc, done) {
      inner.write(chunk, done);
    },
    // aedes corks a client while it writes a packet's parts (and acks in a
    // row): pass them on as one write, one syscall, not one per part.
    writev(chunks, done) {
      inner.write(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk as Buffer)), done);
    },
    final(done) {
      inner.end(done);
    },
    destroy(err, done) {
      inner.destroy(err ?? undefined);
      done(err);
    },
  });
  inner.on('data', (chunk: Buffer) => {
    const verdict = scanner.scan(chunk);
    if (!verdict.ok) {
      onRefused(verdict.declared);
      inner.destroy();
      outer.destroy();
      return;
    }
    if (!outer.push(chunk)) inner.pause();
  });
  inner.on('end', () => outer.push(null));
  inner.on('error', (err) => outer.destroy(err));
  inner.on('close', () => {
    if (!outer.destroyed) outer.destroy();
  });
  // The hooks log and rate-limit by the peer's address.
  Object.defineProperty(outer, 'remoteAddress', { get: () => (inner as Duplex & { remoteAddress?: string }).remoteAddress });
  return outer;
}
