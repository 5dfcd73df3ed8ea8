// 100 dashboards on the live feed over real sockets, one of them a frozen tab
// that never reads: every alert still reaches the police once and every
// reading dashboard, and the frozen one is dropped and counted.
import type { MqttClient } from 'mqtt';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveAlertId, FEED_PATH, topics } from '../protocol/index.ts';
import { FakeSupervision } from './support/fake-supervision.ts';
import { ADMIN_TOKEN, connectDevice, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

const READERS = 99;
const ALERTS = 12;
const BUTTONS = ['pb-store-0001', 'pb-store-0002', 'pb-store-0003', 'pb-store-0004'];
/** Trouble changes are the filler that fills the frozen client's socket buffers: the largest detail the schema allows. */
const DETAIL = 'x'.repeat(500);
/** Bound on the filler: the kernel takes a few MB per socket, the feed 1 MiB more. */
const MAX_FILLER_BYTES = 64 * 1024 * 1024;

let gw: TestGateway;
const sup = new FakeSupervision();
const readers: Array<{ req: http.ClientRequest; received: Set<string>; bytes: number }> = [];
let stuck: net.Socket;
let devices: MqttClient[] = [];

beforeAll(async () => {
  gw = await startTestGateway({}, { deps: { troubles: sup, presence: sup } });
});

afterAll(async () => {
  for (const r of readers) r.req.destroy();
  stuck?.destroy();
  await Promise.all(devices.map((d) => d.endAsync(true)));
  await gw.stop();
});

async function feedStatus(): Promise<{ clients: number; largestBacklogBytes: number }> {
  return (await gw.api('GET', '/healthz', undefined, null)).json.feed;
}

/** Raises and clears troubles, a batch per event-loop turn, until `done`; returns the bytes one feed was sent. */
async function fillUntil(done: () => boolean | Promise<boolean>): Promise<number> {
  let bytes = 0;
  while (!(await done())) {
    for (let i = 0; i < 100; i++) sup.clear(sup.raise('low-battery', 'pb-store-0001', 'store-0001', DETAIL).id);
    bytes += 100 * 2 * 750;
    if (bytes > MAX_FILLER_BYTES) throw new Error(`sent ${bytes} bytes of filler and the condition never came`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return bytes;
}

function openReader(): Promise<void> {
  return new Promise((resolve, reject) => {
    const reader = { req: null as unknown as http.ClientRequest, received: new Set<string>(), bytes: 0 };
    reader.req = http.get(`${gw.httpUrl}${FEED_PATH}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`feed answered ${res.statusCode}`));
      res.setEncoding('utf8');
      let buffer = '';
      res.on('data', (chunk: string) => {
        reader.bytes += chunk.length;
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!block.startsWith('event: alert\n')) continue;
          const { change, alert } = JSON.parse(block.slice(block.indexOf('data: ') + 6));
          if (change === 'received') reader.received.add(alert.id);
        }
      });
      resolve();
    });
    reader.req.on('error', () => {});
    readers.push(reader);
  });
}

describe('live feed fan-out', () => {
  it('delivers every alert with 100 feeds connected, one never reading: the frozen one is dropped and counted', async () => {
    // The frozen tab: asks for the feed, then never reads a byte.
    stuck = net.connect(gw.info.httpPort, '127.0.0.1');
    stuck.on('error', () => {});
    stuck.pause();
    stuck.write(`GET ${FEED_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`);
    await waitFor(async () => (await feedStatus()).clients === 1, 'the frozen feed to connect');
    // Fill its socket buffers until the gateway holds unsent bytes for it (the other feeds are not there yet, to keep this cheap).
    const filled = await fillUntil(async () => (await feedStatus()).largestBacklogBytes > 0);

    await Promise.all(Array.from({ length: READERS }, openReader));
    await waitFor(async () => (await feedStatus()).clients === READERS + 1, 'all feeds connected', 20_000);

    devices = await Promise.all(BUTTONS.map((id) => connectDevice(gw.mqttUrl, id, gw.deviceSecret(id))));
    const ids: string[] = [];
    const presses = (async () => {
      for (let i = 0; i < ALERTS; i++) {
        const button = BUTTONS[i % BUTTONS.length]!;
        const seq = 100 + i;
        await publish(devices[i % BUTTONS.length]!, topics.event(button), JSON.stringify({ seq, ts: Date.now(), type: 'panic', battery: 90, rssi: -60 }));
        ids.push(deriveAlertId(button, seq));
      }
    })();
    const dropped = () => gw.gateway.counters.get('feed_clients_dropped_total', { reason: 'slow' }) === 1;
    await fillUntil(dropped);
    await presses;

    await waitFor(() => ids.every((id) => gw.police.received().some((r) => r.idempotencyKey === id)), 'every alert at the police', 20_000);
    await waitFor(() => readers.every((r) => ids.every((id) => r.received.has(id))), 'every alert on every reading feed', 20_000);
    for (const id of ids) {
      const receipts = gw.police.received().filter((r) => r.idempotencyKey === id);
      expect(receipts.map((r) => r.attempts)).toEqual([[1]]);
    }
    expect(gw.gateway.counters.get('feed_clients_dropped_total', { reason: 'slow' })).toBe(1);
    expect((await feedStatus()).clients).toBe(READERS);
    const perReader = readers.reduce((s, r) => s + r.bytes, 0) / readers.length;
    console.log(`feed fan-out: ${READERS} reading feeds + 1 frozen; ${(filled / 1e6).toFixed(1)} MB of filler before the frozen one's socket was full; `
      + `${(perReader / 1e6).toFixed(1)} MB per reading feed; ${ALERTS} alerts, all delivered`);
  }, 120_000);
});
