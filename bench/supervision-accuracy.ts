// Benchmark: supervision accuracy with 10,000 devices while the gateway is busy.
//
//   npm run bench:supervision                     # 10,000 devices, 10 s + 3 s window
//   npm run bench:supervision -- --quick          # 2,000 devices
//   npm run bench:supervision -- --devices 10000 --interval-sec 10 --grace-sec 3 --victims 300 \
//     --edge 1000 --stall-ms 300 --stall-every-ms 1500 --presses-per-sec 20
//
// The gateway is the real thing, in this process (so its event loop can be
// made busy on purpose and its trouble book watched): embedded aedes over
// TCP, SQLite on a temp dir, the in-process police simulator. The fleet is a
// child process (bench/supervision-fleet.ts) with one MQTT connection per
// device sending QoS 0 heartbeats; `--edge` of them send every heartbeat
// 150 ms before their deadline, which is what a busy gateway could wrongly
// flag. Meanwhile the gateway's loop is blocked for `--stall-ms` every
// `--stall-every-ms` (a GC pause, a slow request) and `--presses-per-sec`
// test presses take the alert path. `--victims` devices stop sending at
// random times while staying connected.
//
// Figures: for each victim, the delay from (its last message sent +
// interval + grace) to its offline trouble (the target is under 1 s), split
// into transit (sent → handled by the gateway) and the gateway's own judging
// delay (its deadline → the trouble), victims
// never flagged, and false flags (offline troubles for devices that never
// stopped; the target is 0). Progress on stderr; a summary and ONE JSON line
// on stdout. Timings on a shared machine are noisy.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ConfigSchema } from '../gateway/config.ts';
import { Gateway } from '../gateway/gateway.ts';
import { createRootLogger } from '../gateway/logger.ts';
import { generateDemoSites } from '../gateway/registry/demo-registry.ts';
import { DEMO_COST, hashSecret } from '../gateway/registry/secrets.ts';
import { openDatabase } from '../gateway/store/database.ts';
import { RegistryRepo } from '../gateway/store/registry-repo.ts';
import type { Supervisor } from '../gateway/supervision/supervisor.ts';
import type { TroubleBook } from '../gateway/supervision/trouble-book.ts';
import { deriveRadioKey } from '../protocol/index.ts';
import type { FleetCommand, FleetPlan, FleetReport } from './supervision-fleet.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    devices: { type: 'string' },
    'interval-sec': { type: 'string', default: '10' },
    'grace-sec': { type: 'string', default: '3' },
    victims: { type: 'string' },
    edge: { type: 'string' },
    'stall-ms': { type: 'string', default: '300' },
    'stall-every-ms': { type: 'string', default: '1500' },
    'presses-per-sec': { type: 'string', default: '20' },
    /** Victims stop within this long after the measurement starts. */
    'spread-sec': { type: 'string', default: '20' },
  },
  strict: true,
});

const DEVICES = Number(args.devices ?? (args.quick ? 2000 : 10_000));
const INTERVAL_MS = Number(args['interval-sec']) * 1000;
const GRACE_MS = Number(args['grace-sec']) * 1000;
const WINDOW_MS = INTERVAL_MS + GRACE_MS;
const VICTIMS = Number(args.victims ?? Math.round(DEVICES * 0.03));
const EDGE = Number(args.edge ?? Math.round(DEVICES * 0.1));
const STALL_MS = Number(args['stall-ms']);
const STALL_EVERY_MS = Number(args['stall-every-ms']);
const PRESSES_PER_SEC = Number(args['presses-per-sec']);
const SPREAD_MS = Number(args['spread-sec']) * 1000;
/** Edge devices send this long before their deadline. */
const EDGE_MARGIN_MS = 150;
const SECRET = 'bench-device-secret-0123456789abcdef';
for (const [name, v] of Object.entries({ devices: DEVICES, interval: INTERVAL_MS, victims: VICTIMS, edge: EDGE, stall: STALL_MS, every: STALL_EVERY_MS })) {
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} must be a whole number ≥ 0`);
}
if (VICTIMS + EDGE > DEVICES) throw new Error('--victims + --edge must not exceed --devices');

const t0 = Date.now();
const progress = (msg: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (sorted: number[], q: number) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);

/** 10,000 stores with one panic button each, all sharing one secret (one scrypt hash instead of 10,000). */
async function seedStore(dataDir: string): Promise<string[]> {
  const db = openDatabase({ dataDir, synchronous: 'normal' });
  const repo = new RegistryRepo(db);
  const hash = await hashSecret(SECRET, DEMO_COST);
  const radioKey = deriveRadioKey(SECRET);
  const sites = generateDemoSites({ stores: DEVICES, homes: 0, seed: 7 });
  const ids = sites.map((s) => `pb-${s.id}`);
  const now = Date.now();
  db.transaction(() => {
    sites.forEach((site, i) => {
      repo.insertSite(site, now);
      repo.insertDevice({ id: ids[i]!, siteId: site.id, type: 'panic-button', secretHash: hash, radioKey, createdAt: now });
    });
  })();
  db.close();
  return ids;
}

function shuffle<T>(list: T[]): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'safehaven-bench-supervision-'));
  progress(`seeding ${DEVICES} devices into ${dataDir}`);
  const ids = await seedStore(dataDir);
  const config = ConfigSchema.parse({
    dataDir, logLevel: 'error',
    mqtt: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 },
    demo: { enabled: false }, influx: { managed: false }, store: { synchronous: 'normal' },
    supervision: { heartbeatSec: INTERVAL_MS / 1000, graceSec: GRACE_MS / 1000 },
  });
  const gateway = new Gateway(config, { log: createRootLogger('error') });
  const info = await gateway.start();
  const supervisor = gateway['supervisor'] as Supervisor;
  const troubles = gateway['troubles'] as TroubleBook;
  progress(`gateway up: MQTT ${info.mqttPort}, ${info.devices} devices`);

  const measuring = { on: false };
  const offlineAt = new Map<string, number>();
  /** The deadline the gateway held when it flagged the device: last message *received* + interval + grace. */
  const deadlineAt = new Map<string, number>();
  const watched = supervisor['watched'] as Map<string, { deadline: number }>;
  troubles.on(({ kind, trouble }) => {
    if (kind === 'raised' && trouble.kind === 'offline' && trouble.deviceId && measuring.on && !offlineAt.has(trouble.deviceId)) {
      offlineAt.set(trouble.deviceId, Date.parse(trouble.raisedAt));
      const w = watched.get(trouble.deviceId);
      if (w) deadlineAt.set(trouble.deviceId, w.deadline);
    }
  });

  const fleet = fork(new URL('./supervision-fleet.ts', import.meta.url), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const reports: FleetReport[] = [];
  const waiters: Array<() => void> = [];
  fleet.on('message', (msg: FleetReport) => {
    if (msg.kind === 'progress') progress(`fleet: ${msg.connected} connected`);
    reports.push(msg);
    waiters.splice(0).forEach((w) => w());
  });
  const next = async <K extends FleetReport['kind']>(kind: K): Promise<Extract<FleetReport, { kind: K }>> => {
    for (;;) {
      const found = reports.find((r) => r.kind === kind);
      if (found) return found as Extract<FleetReport, { kind: K }>;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  const command = (c: FleetCommand) => fleet.send(c);

  const shuffled = shuffle(ids);
  const victims = shuffled.slice(0, VICTIMS).map((id) => ({ id, stopAfterMs: Math.round(Math.random() * SPREAD_MS) }));
  const edgeIds = shuffled.slice(VICTIMS, VICTIMS + EDGE);
  const plan: FleetPlan = { port: info.mqttPort, secret: SECRET, ids, intervalMs: INTERVAL_MS, edgeIds, edgePeriodMs: WINDOW_MS - EDGE_MARGIN_MS, pressesPerSec: PRESSES_PER_SEC };
  command({ cmd: 'connect', plan });
  const connected = await next('connected');
  progress(`fleet: ${connected.connected} connected, ${connected.refused} refused`);

  // Busy gateway: the loop blocked on purpose, like a GC pause or a slow request.
  let stalls = 0;
  const stallTimer = STALL_MS > 0 ? setInterval(() => {
    const until = Date.now() + STALL_MS;
    while (Date.now() < until) { /* busy */ }
    stalls++;
  }, STALL_EVERY_MS) : null;

  // Warm-up: every device heard at least once on its own schedule before anything is judged.
  progress(`warm-up: ${Math.round(WINDOW_MS / 1000)} s (stalls of ${STALL_MS} ms every ${STALL_EVERY_MS} ms from now on)`);
  await sleep(WINDOW_MS);
  const warmupFlags = supervisor.status().missed;
  measuring.on = true;
  const elu0 = performance.eventLoopUtilization();
  command({ cmd: 'run', victims });
  const measureMs = SPREAD_MS + WINDOW_MS + 3000;
  progress(`measuring for ${Math.round(measureMs / 1000)} s: ${VICTIMS} victims stop within ${SPREAD_MS / 1000} s, ${EDGE} edge devices, ${PRESSES_PER_SEC} presses/s`);
  const started = Date.now();
  while (Date.now() - started < measureMs) {
    await sleep(5000);
    progress(`${offlineAt.size} offline troubles so far, ${supervisor.status().onWheel} devices on the wheel`);
  }
  if (stallTimer) clearInterval(stallTimer);
  const elu = performance.eventLoopUtilization(elu0).utilization;
  command({ cmd: 'report' });
  const report = await next('report');

  const victimIds = new Set(victims.map((v) => v.id));
  const delays: number[] = [];
  const judged: number[] = [];
  const transit: number[] = [];
  let undetected = 0;
  for (const v of victims) {
    const sent = report.lastSent[v.id];
    const at = offlineAt.get(v.id);
    if (at === undefined || sent === undefined || sent === 0) {
      undetected++;
      continue;
    }
    delays.push(at - (sent + WINDOW_MS));
    const deadline = deadlineAt.get(v.id);
    if (deadline !== undefined) {
      judged.push(at - deadline);
      transit.push(deadline - WINDOW_MS - sent);
    }
  }
  for (const list of [delays, judged, transit]) list.sort((a, b) => a - b);
  const falseFlags = [...offlineAt.keys()].filter((id) => !victimIds.has(id));
  const edgeSet = new Set(edgeIds);
  const within1s = delays.filter((d) => d <= 1000).length;
  const heartbeats = gateway.counters.get('device_messages_total', { channel: 'heartbeat' });

  const result = {
    bench: 'supervision-accuracy',
    devices: connected.connected,
    intervalSec: INTERVAL_MS / 1000, graceSec: GRACE_MS / 1000,
    victims: VICTIMS, detected: delays.length, undetected,
    delayMsP50: quantile(delays, 0.5), delayMsP95: quantile(delays, 0.95), delayMsP99: quantile(delays, 0.99), delayMsMax: delays.at(-1) ?? null,
    earliestMs: delays[0] ?? null,
    judgeDelayMsP50: quantile(judged, 0.5), judgeDelayMsP99: quantile(judged, 0.99), judgeDelayMsMax: judged.at(-1) ?? null,
    transitMsP50: quantile(transit, 0.5), transitMsMax: transit.at(-1) ?? null,
    eventLoopUtilization: Math.round(elu * 1000) / 1000,
    withinIntervalPlus1s: delays.length === 0 ? null : within1s / delays.length,
    falseFlags: falseFlags.length, falseFlagsEdge: falseFlags.filter((id) => edgeSet.has(id)).length, warmupFlags,
    edgeDevices: EDGE, stalls, stallMs: STALL_MS, stallEveryMs: STALL_EVERY_MS,
    heartbeatsHandled: heartbeats, fleetHeartbeats: report.heartbeats, presses: report.presses, fleetLateTicks: report.lateTicks,
    rssMiB: Math.round(process.memoryUsage().rss / 1024 / 1024),
  };
  process.stdout.write([
    '',
    `supervision accuracy: ${result.devices} devices, window ${result.intervalSec} s + ${result.graceSec} s, loop stalled ${STALL_MS} ms every ${STALL_EVERY_MS} ms (${stalls} stalls)`,
    `  missed check-ins: ${result.detected}/${VICTIMS} flagged, ${undetected} not flagged`,
    `  delay after interval + grace: p50 ${result.delayMsP50} ms, p95 ${result.delayMsP95} ms, p99 ${result.delayMsP99} ms, max ${result.delayMsMax} ms, earliest ${result.earliestMs} ms`,
    `  within interval + grace + 1 s: ${within1s}/${delays.length}`,
    `  of which: last message sent → received by the gateway p50 ${result.transitMsP50} ms, max ${result.transitMsMax} ms;`,
    `            gateway deadline → flag p50 ${result.judgeDelayMsP50} ms, p99 ${result.judgeDelayMsP99} ms, max ${result.judgeDelayMsMax} ms`,
    `  gateway event loop utilisation while measuring: ${Math.round(elu * 100)} %`,
    `  false flags: ${result.falseFlags} (edge devices: ${result.falseFlagsEdge}; during warm-up: ${warmupFlags})`,
    `  heartbeats handled ${heartbeats}, presses ${report.presses}, gateway RSS ${result.rssMiB} MiB`,
    '',
  ].join('\n'));
  process.stdout.write(`${JSON.stringify(result)}\n`);

  fleet.disconnect();
  await gateway.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
