// The serial link's two lanes on a port that drains only when the test says
// so, as a 115200-baud wire would: CFG lines fill at most half the write
// buffer, so an ack written behind hundreds of them still has room.
import pino from 'pino';
import { Duplex } from 'node:stream';
import { expect, it } from 'vitest';
import { Counters } from '../gateway/metrics/counters.ts';
import { MAX_PENDING_WRITE_BYTES, PortLink, type SerialPortLike } from '../gateway/serial/port-link.ts';
import { deriveAlertId, formatAck, formatConfig } from '../protocol/index.ts';
import { waitFor } from './support/harness.ts';

/** Every write stays pending (counted in writableLength) until drain() completes it. */
class SlowWire extends Duplex implements SerialPortLike {
  isOpen = false;
  readonly wire: string[] = [];
  private pending: Array<() => void> = [];
  constructor() {
    super({ decodeStrings: true });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.wire.push(chunk.toString('latin1'));
    this.pending.push(done);
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, done: () => void): void {
    for (const { chunk } of chunks) this.wire.push(chunk.toString('latin1'));
    this.pending.push(done);
  }
  open(callback: (err: Error | null) => void): void {
    this.isOpen = true;
    callback(null);
  }
  close(callback?: (err: Error | null) => void): void {
    this.isOpen = false;
    callback?.(null);
  }
  drain(): void {
    for (const done of this.pending.splice(0)) done();
  }
}

it('keeps half the write buffer for acks while CFG lines wait, and sends every CFG line as the wire drains', async () => {
  const port = new SlowWire();
  const link = new PortLink({ path: '/dev/slow', name: 'slow', baudRate: 115_200 }, 60, {
    factory: () => port, sink: { line: () => {}, overflow: () => {} }, clock: { now: () => Date.now() },
    counters: new Counters(), log: pino({ level: 'silent' }), reopen: { minMs: 100, maxMs: 100 },
  });
  link.start();
  await waitFor(() => port.isOpen, 'the port to open');

  const configs = Array.from({ length: 300 }, (_, i) => formatConfig({ deviceId: `ms-home-${String(i).padStart(4, '0')}`, heartbeatSec: 600 }));
  for (const line of configs) expect(link.sendWhenIdle(line)).toBe('sent');
  expect(port.writableLength).toBeLessThanOrEqual(MAX_PENDING_WRITE_BYTES / 2);

  const ack = formatAck({ deviceId: 'pb-store-0001', seq: 42, alertId: deriveAlertId('pb-store-0001', 42), state: 'received' });
  expect(link.send(ack)).toBe('sent');
  // The ack is on the wire right behind what was already there, ahead of most CFG lines.
  expect(port.wire.indexOf(ack)).toBeLessThan(configs.length / 2);

  await waitFor(() => {
    port.drain();
    return port.wire.length === configs.length + 1;
  }, 'every CFG line on the wire');
  expect(port.wire.filter((l) => l !== ack)).toEqual(configs);
  await link.stop();
});
