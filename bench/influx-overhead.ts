// What latency metrics cost the alert path: press → PUBACK and press → police
// receipt, measured over real MQTT and HTTP with metrics disabled, with a real
// influxd up, and with InfluxDB down (refusing connections, and accepting them
// but never answering, so every write runs into its deadline), all in one run.
// Modes take turns, one gateway at a time, round after round, so drift of the
// machine falls on all of them alike. Needs influxd (scripts/install-system-deps.sh).
//
//   npm run bench:influx [-- --rounds 3 --presses 100]
import mqtt, { type MqttClient } from 'mqtt';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { deriveAlertId, IDEMPOTENCY_HEADER, topics } from '../protocol/index.ts';
import { ConfigSchema } from '../gateway/config.ts';
import { Gateway } from '../gateway/gateway.ts';
import { freePort } from '../gateway/metrics/managed-influxd.ts';
import { nearestRank } from '../gateway/metrics/latency-window.ts';
import { demoSecret, readDemoKey } from '../gateway/registry/demo-credentials.ts';
import { startInfluxd } from '../test/support/influxd.ts';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, presses: { type: 'string', default: '100' }, devices: { type: 'string', default: '20' } },
});
const ROUNDS = Number(args.rounds);
const PRESSES = Number(args.presses);
const DEVICES = Number(args.devices);
const WARMUP = 20;
const SECRET = 'bench-police-secret-0123456789';
const silent = pino({ level: 'silent' });

type Mode = 'disabled' | 'up' | 'down-refused' | 'down-hanging';
const MODES: Mode[] = ['disabled', 'up', 'down-refused', 'down-hanging'];

/** A police endpoint that notes, at sub-millisecond resolution, when each alert's first POST arrived. */
function startPolice(): Promise<{ server: HttpServer; url: string; arrivals: Map<string, number> }> {
  const arrivals = new Map<string, number>();
  const server = createHttpServer((req, res) => {
    const key = String(req.headers[IDEMPOTENCY_HEADER.toLowerCase()] ?? '');
    if (!arrivals.has(key)) arrivals.set(key, performance.now());
    req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"caseId":"bench"}'));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`, arrivals })));
}

/** Accepts connections and never answers: the slowest kind of "down". */
function startBlackHole(): Promise<{ server: TcpServer; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket.on('close', () => sockets.delete(socket)).on('error', () => undefined));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, sockets })));
}

function connect(url: string, id: string, secret: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId: id, username: id, password: secret, reconnectPeriod: 0, connectTimeout: 5000 });
  return new Promise((resolve, reject) => {
    client.once('connect', () => {
      // As the protocol README asks of firmware: without it, Nagle holds a press behind a delayed ACK.
      (client.stream as unknown as Socket).setNoDelay?.(true);
      resolve(client);
    });
    client.once('error', reject);
  });
}

function waitUntil(probe: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (probe()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 1);
    };
    check();
  });
}

interface Samples { puback: number[]; police: number[] }

async function runRound(mode: Mode, dataDir: string, influxUrl: string | null, police: Awaited<ReturnType<typeof startPolice>>, seqBase: number, into: Samples) {
  const config = ConfigSchema.parse({
    dataDir, logLevel: 'silent', adminToken: 'bench-admin-token-0123456789',
    mqtt: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 },
    police: { url: police.url, secret: SECRET }, demo: { enabled: true },
    // Harsher than the defaults (1 s, 10 s): writes and health samples land among the presses.
    influx: { managed: false, ...(influxUrl ? { url: influxUrl } : {}), flushIntervalMs: 100, healthIntervalSec: 1 },
  });
  const gateway = new Gateway(config, { log: silent });
  const info = await gateway.start();
  const key = readDemoKey(dataDir);
  const ids = Array.from({ length: DEVICES }, (_, i) => `pb-store-${String(i + 1).padStart(4, '0')}`);
  const clients = await Promise.all(ids.map((id) => connect(`mqtt://127.0.0.1:${info.mqttPort}`, id, demoSecret(key, id))));
  try {
    for (let i = 0; i < WARMUP + PRESSES; i++) {
      const d = i % DEVICES;
      const seq = seqBase + i;
      const alertId = deriveAlertId(ids[d]!, seq);
      const pressed = performance.now();
      await new Promise<void>((resolve, reject) => clients[d]!.publish(topics.event(ids[d]!), JSON.stringify({ seq, ts: Date.now(), type: 'panic' }), { qos: 1 }, (err) => (err ? reject(err) : resolve())));
      const puback = performance.now() - pressed;
      await waitUntil(() => police.arrivals.has(alertId), `police receipt of ${alertId}`);
      if (i >= WARMUP) {
        into.puback.push(puback);
        into.police.push(police.arrivals.get(alertId)! - pressed);
      }
    }
    const { status, written, buffered, dropped } = gateway['metrics']!.status();
    return { status, written, buffered, dropped };
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await gateway.stop();
  }
}

const stats = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const r = (x: number | null) => Math.round((x ?? NaN) * 100) / 100;
  return { n: xs.length, mean: r(xs.reduce((a, b) => a + b, 0) / xs.length), p50: r(nearestRank(sorted, 50)), p95: r(nearestRank(sorted, 95)), p99: r(nearestRank(sorted, 99)) };
};

const work = mkdtempSync(join(tmpdir(), 'safehaven-bench-'));
const police = await startPolice();
const blackHole = await startBlackHole();
process.stderr.write('seeding the Seoul demo registry once (656 stores, 3,000 homes)…\n');
const template = join(work, 'template');
const seeder = new Gateway(ConfigSchema.parse({
  dataDir: template, logLevel: 'silent', mqtt: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 }, police: { url: police.url, secret: SECRET }, influx: { managed: false },
}), { log: silent });
await seeder.start();
await seeder.stop();
const influxd = await startInfluxd(join(work, 'influxd'));
const influxUrls: Record<Mode, string | null> = {
  disabled: null,
  up: `${influxd.url()}/safehaven`,
  'down-refused': `http://127.0.0.1:${await freePort()}/safehaven`,
  'down-hanging': `http://127.0.0.1:${blackHole.port}/safehaven`,
};
const samples = Object.fromEntries(MODES.map((m) => [m, { puback: [] as number[], police: [] as number[] }])) as Record<Mode, Samples>;
const metricsState = {} as Record<Mode, unknown>;
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of MODES) {
      const dataDir = join(work, mode);
      if (round === 0) cpSync(template, dataDir, { recursive: true });
      // Every (round, mode) its own seqs: the police endpoint is shared and keys arrivals by alert id.
      const seqBase = 1 + (round * MODES.length + MODES.indexOf(mode)) * (WARMUP + PRESSES);
      metricsState[mode] = await runRound(mode, dataDir, influxUrls[mode], police, seqBase, samples[mode]);
      process.stderr.write(`round ${round + 1}/${ROUNDS} ${mode}: done\n`);
    }
  }
} finally {
  await influxd.stop();
  blackHole.sockets.forEach((s) => s.destroy());
  blackHole.server.close();
  police.server.close();
}

const result = Object.fromEntries(MODES.map((m) => [m, { puback_ms: stats(samples[m].puback), police_ms: stats(samples[m].police), metrics: metricsState[m] }]));
const line = (label: string, s: ReturnType<typeof stats>) => `${label.padEnd(10)} p50 ${String(s.p50).padStart(6)}  p95 ${String(s.p95).padStart(6)}  p99 ${String(s.p99).padStart(6)}  mean ${String(s.mean).padStart(6)} ms`;
process.stdout.write(`\nAlert-path latency, ${ROUNDS} rounds × ${PRESSES} sequential presses per mode (after ${WARMUP} warm-up presses each round), ${DEVICES} devices;\nmetrics flushed every 100 ms and health sampled every 1 s over the 9,656-device demo registry\n`);
for (const m of MODES) {
  process.stdout.write(`\n${m}\n  ${line('→ PUBACK', result[m]!.puback_ms)}\n  ${line('→ police', result[m]!.police_ms)}\n  metrics: ${JSON.stringify(metricsState[m])}\n`);
}
process.stdout.write(`\n${JSON.stringify({ bench: 'influx-overhead', rounds: ROUNDS, presses: PRESSES, devices: DEVICES, modes: result })}\n`);
rmSync(work, { recursive: true, force: true });
