// What the dashboards' live feed costs the alert path: press → PUBACK and
// press → police receipt over real MQTT and HTTP with no feed connected, with
// 100 reading feeds, and with 100 feeds of which one never reads. Modes take
// turns on one gateway, round after round, so drift of the machine falls on
// all of them alike. Figures taken while other work runs are noisy.
//
//   npm run bench:feed [-- --rounds 3 --presses 100 --feeds 100]
import type { MqttClient } from 'mqtt';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { deriveAlertId, FEED_PATH, topics } from '../protocol/index.ts';
import { nearestRank } from '../gateway/metrics/latency-window.ts';
import { ADMIN_TOKEN, connectDevice, publish, startTestGateway, waitFor } from '../test/support/harness.ts';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, presses: { type: 'string', default: '100' }, feeds: { type: 'string', default: '100' } },
});
const ROUNDS = Number(args.rounds);
const PRESSES = Number(args.presses);
const FEEDS = Number(args.feeds);
const BUTTONS = ['pb-store-0001', 'pb-store-0002', 'pb-store-0003', 'pb-store-0004'];

type Mode = 'no feeds' | 'reading feeds' | 'one frozen feed';
const MODES: Mode[] = ['no feeds', 'reading feeds', 'one frozen feed'];

const gw = await startTestGateway({ logLevel: 'warn' });
const devices: MqttClient[] = await Promise.all(BUTTONS.map((id) => connectDevice(gw.mqttUrl, id, gw.deviceSecret(id))));
// As the protocol README asks of firmware: without it, Nagle holds a press behind a delayed ACK.
for (const d of devices) (d.stream as unknown as net.Socket).setNoDelay?.(true);

/** Opens `n` feeds that read (and count) everything; `frozen` adds one that never reads. */
async function openFeeds(n: number, frozen: boolean): Promise<{ bytes: () => number; close: () => void }> {
  let bytes = 0;
  const reqs: http.ClientRequest[] = [];
  await Promise.all(Array.from({ length: frozen ? n - 1 : n }, () => new Promise<void>((resolve, reject) => {
    const req = http.get(`${gw.httpUrl}${FEED_PATH}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`feed answered ${res.statusCode}`));
      res.on('data', (chunk: Buffer) => { bytes += chunk.length; });
      resolve();
    });
    req.on('error', () => {});
    reqs.push(req);
  })));
  let stuck: net.Socket | null = null;
  if (frozen) {
    stuck = net.connect(gw.info.httpPort, '127.0.0.1').on('error', () => {});
    stuck.pause();
    stuck.write(`GET ${FEED_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`);
  }
  await waitFor(async () => (await gw.api('GET', '/healthz', undefined, null)).json.feed.clients === n, `${n} feeds`, 30_000);
  return { bytes: () => bytes, close: () => { for (const r of reqs) r.destroy(); stuck?.destroy(); } };
}

const samples: Record<Mode, { puback: number[]; police: number[] }> = Object.fromEntries(MODES.map((m) => [m, { puback: [], police: [] }])) as never;
let seq = 1000;
for (let round = 1; round <= ROUNDS; round++) {
  for (const mode of MODES) {
    const feeds = mode === 'no feeds' ? null : await openFeeds(FEEDS, mode === 'one frozen feed');
    for (let i = 0; i < PRESSES; i++) {
      const button = BUTTONS[i % BUTTONS.length]!;
      const s = ++seq;
      const t0 = performance.now();
      const wall0 = Date.now();
      await publish(devices[i % BUTTONS.length]!, topics.event(button), JSON.stringify({ seq: s, ts: wall0, type: 'panic' }));
      samples[mode].puback.push(performance.now() - t0);
      const id = deriveAlertId(button, s);
      const receipt = await waitFor(() => gw.police.received().find((r) => r.idempotencyKey === id), `police receipt of ${id}`);
      samples[mode].police.push(receipt.receivedAt - wall0);
    }
    process.stderr.write(`round ${round}/${ROUNDS} ${mode}: ${PRESSES} presses${feeds ? `, ${(feeds.bytes() / 1e6).toFixed(1)} MB to the feeds` : ''}\n`);
    feeds?.close();
    await waitFor(async () => (await gw.api('GET', '/healthz', undefined, null)).json.feed.clients === 0, 'feeds closed', 30_000);
  }
}

const r = (x: number | null) => (x === null ? null : Math.round(x * 100) / 100);
const stats = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return { n: xs.length, p50: r(nearestRank(sorted, 50)), p95: r(nearestRank(sorted, 95)), p99: r(nearestRank(sorted, 99)) };
};
console.log(`\nlive feed fan-out: ${FEEDS} feeds, ${ROUNDS} rounds × ${PRESSES} presses per mode (ms; press → police at 1 ms resolution)`);
const result: Record<string, unknown> = {};
for (const mode of MODES) {
  const puback = stats(samples[mode].puback);
  const police = stats(samples[mode].police);
  result[mode] = { puback, police };
  console.log(`  ${mode.padEnd(16)} press→PUBACK p50 ${puback.p50} p95 ${puback.p95} p99 ${puback.p99}   press→police p50 ${police.p50} p95 ${police.p95} p99 ${police.p99}`);
}
console.log(`  frozen feeds dropped: ${gw.gateway.counters.get('feed_clients_dropped_total', { reason: 'slow' })} (a frozen feed is dropped only once its socket buffers and 1 MiB are full)`);
console.log(JSON.stringify({ bench: 'feed-fanout', feeds: FEEDS, rounds: ROUNDS, presses: PRESSES, result }));
await Promise.all(devices.map((d) => d.endAsync(true)));
await gw.stop();
