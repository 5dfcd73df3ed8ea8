// The city benchmark: the real gateway against thousands of simulated
// devices, each on its own MQTT connection, and, in the same run, Debian's
// mosquitto plus a minimal forwarder doing the same work without a store.
//
//   npm run bench                # full: 10,000 devices at 1,000 presses/s for 30 s, burst of 20,000, scale to 50,000
//   npm run bench -- --quick     # ≤ 3 minutes: 10 s of presses, a burst of 10,000 from 10,000 devices, scale at 10,000
//   npm run bench -- --keep-data # keep the gateway's data dir
//   npm run bench -- --quick --critical-sec 30   # a longer critical path (and baseline) for a steadier p99
//   npm run bench -- --quick --phases connect,heartbeat,baseline --heartbeat-rounds 5
//   npm run bench -- --quick --phases critical --slow-fsync-ms 300 --rate 20   # a slow disk, a quiet night: the police path must not notice
//   npm run bench -- --quick --warmup-sec 0   # time the presses from a cold start (default: 5 s of presses first, reported apart)
//                                # only some phases (default: all); "baseline" is mosquitto's connect and
//                                # heartbeat cost, plus its presses when "critical" is chosen too; the
//                                # heartbeat cost as the median of 5 rounds per server (default 1)
//
// Phases, one process tree (this process runs the devices and the police
// endpoint; the gateway, mosquitto and the forwarder are children):
//   1. gateway up, devices connect (heartbeating) → RSS per connected device
//   2. heartbeat cost: a burst of heartbeats, gateway CPU time per heartbeat
//   3. critical path: a warm-up of presses (its p99 reported as the cold start), then presses at a fixed rate → police receipt, p50/p99/p99.9
//   4. burst: one press from every device at once → sent, delivered, dupes, drain time, RSS growth
//   5. scale (full run): more devices, RSS per connected device
//   6. mosquitto + forwarder: the same connections, heartbeat cost and press rate
// Progress on stderr; a table, then ONE JSON line on stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { RuntimeStatus } from '../gateway/metrics/runtime-monitor.ts';
import { readDemoKey } from '../gateway/registry/demo-credentials.ts';
import { Fleet } from '../device-sim/fleet.ts';
import { demoFleet, seededRandom, type SimDeviceSpec } from '../device-sim/scenarios.ts';
import { summarizeLatencies } from '../device-sim/sim-stats.ts';
import { fsyncShimEnv } from '../test/support/fsync-shim.ts';
import { freePortOutsideEphemeralRange, readRssKiB, removeDir, startGateway, tempDataDir, type GatewayProcess } from '../test/support/gateway-process.ts';
import { PoliceReceiver } from './police-receiver.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'keep-data': { type: 'boolean', default: false },
    /** Node flags for the gateway child, space-separated: --gateway-node-args="--cpu-prof --cpu-prof-dir=prof". */
    'gateway-node-args': { type: 'string' },
    /** The gateway's police.concurrency (POSTs in flight), through a config file; default: the gateway's default. */
    'police-concurrency': { type: 'string' },
    /** Comma-separated phases to run (connect always runs): heartbeat, critical, burst, scale, baseline. */
    phases: { type: 'string', default: 'heartbeat,critical,burst,scale,baseline' },
    /** Heartbeat-cost rounds per server; the figure is their median (CPU time per heartbeat is noisy on a shared machine). */
    'heartbeat-rounds': { type: 'string', default: '1' },
    /** Seconds of presses in the critical path and its baseline (default 10 quick, 30 full): longer runs give steadier tails. */
    'critical-sec': { type: 'string' },
    /** Every fsync and fdatasync of the gateway takes this many ms longer (a slow disk; needs a C compiler, cc). */
    'slow-fsync-ms': { type: 'string' },
    /** Presses a second in the critical path and its baseline (the targets are at 1,000). */
    rate: { type: 'string', default: '1000' },
    /**
     * Seconds of presses at the same rate before each server's timed presses, reported apart as its cold
     * start (`cold_p99_ms`): JIT compilation and first connections take the first 2-3 s, and the targets are
     * about a gateway that has been running. 0: the timed presses start cold.
     */
    'warmup-sec': { type: 'string', default: '5' },
  },
  strict: true,
});
const QUICK = args.quick;
const PHASE_NAMES = ['connect', 'heartbeat', 'critical', 'burst', 'scale', 'baseline'] as const;
type Phase = (typeof PHASE_NAMES)[number];
const PHASES = new Set(args.phases.split(',').map((p) => p.trim()).filter(Boolean));
for (const p of PHASES) if (!(PHASE_NAMES as readonly string[]).includes(p)) throw new Error(`--phases: unknown phase "${p}" (known: ${PHASE_NAMES.join(', ')})`);
const runs = (phase: Phase) => phase === 'connect' || PHASES.has(phase);
const HB_ROUNDS = Number(args['heartbeat-rounds']);
if (!(Number.isInteger(HB_ROUNDS) && HB_ROUNDS >= 1 && HB_ROUNDS <= 20)) throw new Error('--heartbeat-rounds must be a whole number from 1 to 20');

// The machine's open-file limit caps connections: each one is a descriptor in this process and in the server.
const FD_LIMIT = Number(process.env.SAFEHAVEN_BENCH_FD_LIMIT ?? 0) || readFdLimit();
const MAX_CONNECTIONS = Math.max(1000, FD_LIMIT - 1000);
const cap = (want: number) => Math.min(want, MAX_CONNECTIONS);

const POLICE_CONCURRENCY = args['police-concurrency'] === undefined ? null : Number(args['police-concurrency']);
if (POLICE_CONCURRENCY !== null && !(Number.isInteger(POLICE_CONCURRENCY) && POLICE_CONCURRENCY >= 1)) throw new Error('--police-concurrency must be a whole number ≥ 1');

const CRIT_DEVICES = cap(10_000);
const RATE = Number(args.rate);
if (!(Number.isInteger(RATE) && RATE >= 1 && RATE <= 5000)) throw new Error('--rate must be a whole number from 1 to 5000');
const CRIT_SEC = args['critical-sec'] === undefined ? (QUICK ? 10 : 30) : Number(args['critical-sec']);
if (!(Number.isInteger(CRIT_SEC) && CRIT_SEC >= 2 && CRIT_SEC <= 600)) throw new Error('--critical-sec must be a whole number from 2 to 600');
const SLOW_FSYNC_MS = args['slow-fsync-ms'] === undefined ? null : Number(args['slow-fsync-ms']);
if (SLOW_FSYNC_MS !== null && !(Number.isInteger(SLOW_FSYNC_MS) && SLOW_FSYNC_MS >= 1 && SLOW_FSYNC_MS <= 5000)) throw new Error('--slow-fsync-ms must be a whole number from 1 to 5000');
const WARMUP_SEC = Number(args['warmup-sec']);
if (!(Number.isInteger(WARMUP_SEC) && WARMUP_SEC >= 0 && WARMUP_SEC <= 60)) throw new Error('--warmup-sec must be a whole number from 0 to 60');
const BURST_PRESSES = QUICK ? 10_000 : 20_000;
const BURST_DEVICES = cap(QUICK ? 10_000 : 20_000);
const SCALE_DEVICES = cap(QUICK ? 10_000 : 50_000);
const HB_COUNT = QUICK ? 20_000 : 50_000;
const HB_RATE = 5000;
const TOTAL_DEVICES = Math.max(CRIT_DEVICES, BURST_DEVICES, SCALE_DEVICES);
const SOURCE_IPS = Math.ceil(TOTAL_DEVICES / 20_000);
const POLICE_SECRET = 'bench-police-secret-0123456789';
const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';

const scaledDown: string[] = [];
if (CRIT_SEC < 30) scaledDown.push(`${CRIT_SEC} s of presses (full: 30 s)`);
if (QUICK) scaledDown.push(`quick: burst of ${BURST_PRESSES} from ${BURST_DEVICES} devices (full: 20,000 from 20,000)`, `quick: scale at ${SCALE_DEVICES} devices (full: 50,000)`, `quick: ${HB_COUNT} heartbeats per server (full: 50,000)`);
for (const [what, want, got] of [['critical-path devices', 10_000, CRIT_DEVICES], ['burst devices', QUICK ? 10_000 : 20_000, BURST_DEVICES], ['scale devices', QUICK ? 10_000 : 50_000, SCALE_DEVICES]] as const) {
  if (got < want) scaledDown.push(`${what}: ${got} instead of ${want} (open-file limit ${FD_LIMIT}; raise it with ulimit -n as root)`);
}

const t0 = performance.now();
const progress = (msg: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (v: number | null, digits = 3) => (v === null ? null : Math.round(v * 10 ** digits) / 10 ** digits);

function readFdLimit(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8')
    const m = /^Max open files\s+(\d+)/m.exec(limits);
    return m ? Number(m[1]) : 1024;
  } catch {
    return 1024;
  }
}

/** utime + stime of a process (or, with `tid`, of one of its threads), in µs (/proc/<pid>/stat, clock ticks of 10 ms). */
function cpuMicros(pid: number, tid?: number): number {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** RSS in KiB; 0 once the process is gone (the run then fails on its missing deliveries). */
const rssKiB = (pid: number) => readRssKiB(pid) ?? 0;

/** CPU use since `from`, in % of one core, of this process and of `pid`. */
function cpuShare(from: { bench: NodeJS.CpuUsage; gateway: number; at: number }, pid: number): { bench: number; gateway: number } {
  const wallUs = (performance.now() - from.at) * 1000;
  const own = process.cpuUsage(from.bench);
  return { bench: Math.round((100 * (own.user + own.system)) / wallUs), gateway: Math.round((100 * (cpuMicros(pid) - from.gateway)) / wallUs) };
}

/** A fleet of these devices on this broker, added to `fleets`, connected (with progress) and heartbeating. */
async function startFleet(fleets: Fleet[], devices: SimDeviceSpec[], port: number, label: string): Promise<Fleet> {
  const fleet = fleetOf(devices, port);
  fleets.push(fleet);
  let done = 0;
  let last = performance.now();
  const start = performance.now();
  await fleet.connectAll(() => {
    done++;
    if (performance.now() - last > 3000) {
      last = performance.now();
      progress(`${label}: ${done}/${fleet.size} connected`);
    }
  });
  progress(`${label}: ${fleet.size} connected in ${((performance.now() - start) / 1000).toFixed(1)} s`);
  fleet.start();
  return fleet;
}

/**
 * CPU µs per heartbeat: `count` heartbeats at `rate`/s, minus the server's CPU
 * over an equally long quiet window (its timers, the fleet's usual heartbeats).
 */
async function heartbeatCost(fleet: Fleet, pid: number, count: number, rate: number): Promise<number> {
  const windowMs = (count / rate) * 1000;
  const idle0 = cpuMicros(pid);
  await sleep(windowMs);
  const idle = cpuMicros(pid) - idle0;
  const before = cpuMicros(pid);
  const start = performance.now();
  let sent = 0;
  while (sent < count) {
    const due = Math.min(count, Math.floor(((performance.now() - start) / 1000) * rate));
    for (; sent < due; sent++) fleet.heartbeatNow(sent % fleet.size);
    await sleep(5);
  }
  await sleep(500);
  const busy = cpuMicros(pid) - before;
  return Math.max(0, busy - idle * ((performance.now() - start) / windowMs)) / count;
}

type PressResult = ReturnType<typeof summarizeLatencies> & { pressed: number | null; missing: number | null; achievedRate: number | null };
/** What a phase that did not run reports. */
const SKIPPED_PRESSES: PressResult = { ...summarizeLatencies([]), pressed: null, missing: null, achievedRate: null };
type BurstResult = { [K in keyof Awaited<ReturnType<typeof runBurst>>]: Awaited<ReturnType<typeof runBurst>>[K] | null };

/** HB_ROUNDS heartbeat-cost measurements, each reported as it ends. */
async function heartbeatRounds(fleet: Fleet, pid: number, label: string, unit: string): Promise<number[]> {
  const out: number[] = [];
  for (let r = 1; r <= HB_ROUNDS; r++) {
    out.push(await heartbeatCost(fleet, pid, HB_COUNT, HB_RATE));
    progress(`${label}: ${out.at(-1)!.toFixed(1)} µs CPU per ${unit}${HB_ROUNDS > 1 ? ` (round ${r}/${HB_ROUNDS}, load ${loadavg()[0]!.toFixed(2)})` : ''}`);
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Presses at `rate`/s for `seconds` from devices without a press in flight (picked by `seed`); latency = police receipt − press. */
async function pressAtRate(fleet: Fleet, police: PoliceReceiver, rate: number, seconds: number, label: string, seed: number): Promise<PressResult> {
  const pressedAt = new Map<string, number>();
  const latencies: number[] = [];
  /** Every press's latency by the second of the phase it was pressed in: where the tail comes from. */
  const bySecond: number[][] = [];
  const phaseStart = performance.now();
  police.onFirst((key, at) => {
    const p = pressedAt.get(key);
    if (p === undefined) return;
    (bySecond[Math.floor((p - phaseStart) / 1000)] ??= []).push(at - p);
    latencies.push(at - p);
  });
  const random = seededRandom(seed);
  // The bench's own lag: what it can add to the press times (the police stamps are taken on their own thread).
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const start = performance.now();
  let sent = 0;
  const total = rate * seconds;
  let lastReport = start;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    for (; sent < due; sent++) {
      let i = Math.floor(random() * fleet.size);
      for (let tries = 0; fleet.hasPending(i) && tries < 10; tries++) i = Math.floor(random() * fleet.size);
      const at = performance.now();
      pressedAt.set(fleet.press(i), at);
    }
    if (performance.now() - lastReport > 2000) {
      lastReport = performance.now();
      progress(`${label}: ${sent}/${total} pressed, ${latencies.length} timed at the police`);
    }
    // A 1 ms cadence: each tick sends about one press, as independent devices would.
    await sleep(1);
  }
  const achievedRate = Math.round(total / ((performance.now() - start) / 1000));
  lag.disable();
  progress(`${label}: this process's event-loop delay while pressing ${loopDelayLine(lag)}`);
  const expected = [...pressedAt.keys()];
  const deadline = performance.now() + 30_000;
  while (expected.some((k) => !police.firstAt.has(k)) && performance.now() < deadline) await sleep(50);
  const missing = expected.filter((k) => !police.firstAt.has(k)).length;
  police.onFirst(() => undefined);
  progress(`${label}: p99 by second of the phase (ms): ${Array.from(bySecond, (xs, i) => `${i + 1}:${Math.round(summarizeLatencies(xs ?? []).p99 ?? 0)}`).join(' ')}`);
  return { ...summarizeLatencies(latencies), pressed: expected.length, missing, achievedRate };
}

interface TimedPresses {
  /** The timed presses, after the warm-up; `missing` counts the warm-up's lost presses too. */
  result: PressResult;
  /** p99 of the warm-up's presses (null without one): the server's cold start. */
  coldP99: number | null;
  cpu: { bench: number; gateway: number };
  /** CPU µs of the server's main thread per timed press, the fleet's heartbeats meanwhile included (the gateway's event loop; mosquitto has one thread). */
  mainThreadUsPerPress: number | null;
  /** The server's /healthz just before and just after the timed presses, and the seconds between (the gateway only). */
  health: { before: GatewayHealth | null; after: GatewayHealth | null; seconds: number } | null;
}

/** WARMUP_SEC of presses at the rate, then the timed ones (with `health`, after one /healthz read), CPU measured over those only. */
async function timedPresses(fleet: Fleet, police: PoliceReceiver, pid: number, label: string, health?: () => Promise<GatewayHealth | null>): Promise<TimedPresses> {
  // Its own device order: the timed presses must not begin with exactly the devices the warm-up just pressed.
  const warmup = WARMUP_SEC > 0 ? await pressAtRate(fleet, police, RATE, WARMUP_SEC, `${label} (warm-up, not timed)`, 7) : null;
  const health0 = (await health?.()) ?? null;
  const health0At = performance.now();
  const main0 = cpuMicros(pid, pid);
  const cpu0 = { bench: process.cpuUsage(), gateway: cpuMicros(pid), at: performance.now() };
  const timed = await pressAtRate(fleet, police, RATE, CRIT_SEC, label, 42);
  const cpu = cpuShare(cpu0, pid);
  const mainThreadUsPerPress = timed.pressed ? Math.round((cpuMicros(pid, pid) - main0) / timed.pressed) : null;
  const healths: TimedPresses['health'] = health ? { before: health0, after: await health(), seconds: (performance.now() - health0At) / 1000 } : null;
  progress(`${label}: cold start (warm-up p99) ${warmup?.p99 ?? '—'} ms, ${warmup?.missing ?? 0} of its presses missing; CPU: bench process ${cpu.bench}% of a core, server ${cpu.gateway}%, its main thread ${mainThreadUsPerPress} µs per timed press (heartbeats included)`);
  // A press lost in the warm-up is lost all the same.
  const result = { ...timed, missing: (timed.missing ?? 0) + (warmup?.missing ?? 0) };
  return { result, coldP99: warmup?.p99 ?? null, cpu, mainThreadUsPerPress, health: healths };
}

function startMosquitto(port: number, dir: string): ChildProcess {
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'max_connections -1',
    'log_type error', 'log_dest stderr', 'set_tcp_nodelay true', '',
  ].join('\n'));
  const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  child.stderr!.on('data', (b: Buffer) => progress(`mosquitto: ${b.toString().trim()}`));
  return child;
}

async function waitForPort(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`the server meant to listen on ${port} has exited`);
    if (performance.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

function startForwarder(mqttUrl: string, policeUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/baseline-forwarder.ts', mqttUrl, policeUrl], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (b: Buffer) => progress(`forwarder: ${b.toString().trim()}`));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('forwarder not ready after 30 s')), 30_000);
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) {
        clearTimeout(t);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`forwarder exited with ${code}`)));
  });
}

async function stopChild(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

function writeConfig(dir: string, config: unknown): string {
  const path = join(dir, 'bench-config.json');
  writeFileSync(path, JSON.stringify(config));
  return path;
}

function sourceIps(): string[] {
  return Array.from({ length: SOURCE_IPS }, (_, i) => `127.0.0.${i + 1}`);
}

function fleetOf(devices: SimDeviceSpec[], port: number): Fleet {
  // Heartbeats every 60 s (the gateway's default): 10,000 devices send about 167 a second throughout.
  return new Fleet({
    host: '127.0.0.1', port, localAddresses: sourceIps(), devices, heartbeatSec: { store: 60, home: 60 }, connectConcurrency: 64,
    deliveredByAck: false, ackTimeoutMs: 60_000,
  });
}

let gatewayTail: (() => string) | null = null;

async function main(): Promise<void> {
  const load = loadavg().map((l) => Math.round(l * 100) / 100);
  progress(`city bench (${QUICK ? 'quick' : 'full'}): ${TOTAL_DEVICES} demo stores; ${cpus().length} CPUs (${cpus()[0]?.model}); load ${load.join(' ')}; open-file limit ${FD_LIMIT}`);
  for (const s of scaledDown) progress(`scaled down: ${s}`);
  const police = new PoliceReceiver();
  const policeUrl = await police.start();
  const dataDir = tempDataDir('safehaven-bench-city-');
  const slowDisk = SLOW_FSYNC_MS === null ? {} : fsyncShimEnv(dataDir, { delayMs: SLOW_FSYNC_MS });
  if (SLOW_FSYNC_MS !== null) progress(`slow disk: every fsync and fdatasync of the gateway waits ${SLOW_FSYNC_MS} ms more`);
  // Below the ephemeral range: an outgoing connection (the gateway's own, during its start) cannot take them first.
  const mqttPort = await freePortOutsideEphemeralRange();
  const httpPort = await freePortOutsideEphemeralRange();
  const gw: GatewayProcess = startGateway({
    dataDir,
    mqttPort,
    httpPort,
    hardTimeoutMs: 3_600_000,
    env: {
      SAFEHAVEN_POLICE_URL: policeUrl, SAFEHAVEN_POLICE_SECRET: POLICE_SECRET,
      SAFEHAVEN_DEMO_STORES: String(TOTAL_DEVICES), SAFEHAVEN_DEMO_HOMES: '0',
      // Warnings only: at info the gateway logs two lines per alert into the pipe this process reads, and
      // this process, busy with thousands of devices, reads it late: the gateway then blocks on a full pipe.
      SAFEHAVEN_ADMIN_TOKEN: ADMIN_TOKEN, ...slowDisk,
      ...(POLICE_CONCURRENCY ? { SAFEHAVEN_CONFIG: writeConfig(dataDir, { police: { concurrency: POLICE_CONCURRENCY } }) } : {}), SAFEHAVEN_LOG_LEVEL: 'warn',
    },
    nodeArgs: args['gateway-node-args']?.split(' ').filter(Boolean),
    keep: (l) => (l.level ?? 0) >= 50,
  });
  gatewayTail = () => gw.tail(40);
  let mosquitto: ChildProcess | null = null;
  let forwarder: ChildProcess | null = null;
  let finishing = false;
  // Every phase waits for the gateway's answers: without this a gateway that died would leave the bench waiting for ever.
  void gw.exited.then((exit) => {
    if (finishing) return;
    progress(`FAILED: the gateway exited during the bench (${JSON.stringify(exit)}); its last lines:\n${gw.tail(40)}`);
    mosquitto?.kill('SIGKILL');
    forwarder?.kill('SIGKILL');
    process.exit(1);
  });
  const fleets: Fleet[] = [];
  const mosqDir = mkdtempSync(join(tmpdir(), 'safehaven-bench-mosquitto-'));
  try {
    progress('gateway starting (first start seeds the demo registry: one scrypt hash per device)');
    // The ready line is an info line: wait for the MQTT port instead.
    await waitForPort(mqttPort, 600_000, () => gw.alive);
    await sleep(2000);
    const rssIdle = rssKiB(gw.pid);
    progress(`gateway ready (pid ${gw.pid}), RSS ${(rssIdle / 1024).toFixed(1)} MiB`);

    const key = readDemoKey(dataDir);
    const all = demoFleet({ stores: TOTAL_DEVICES, homes: 0, demoKey: key });

    // 1. Connected and heartbeating.
    const crit = await startFleet(fleets, all.slice(0, CRIT_DEVICES), mqttPort, 'gateway devices');
    await sleep(3000);
    const rssCrit = rssKiB(gw.pid);
    const kbPerDevice = (rssCrit - rssIdle) / CRIT_DEVICES;
    progress(`RSS ${(rssCrit / 1024).toFixed(1)} MiB with ${CRIT_DEVICES} devices: ${kbPerDevice.toFixed(1)} KiB per device`);

    // 2. Heartbeat cost.
    let hbGateway: number | null = null;
    let hbGatewayRounds: number[] = [];
    if (runs('heartbeat')) {
      hbGatewayRounds = await heartbeatRounds(crit, gw.pid, 'gateway', 'heartbeat');
      hbGateway = median(hbGatewayRounds);
    }

    // 3. Critical path.
    let critical: PressResult = SKIPPED_PRESSES;
    let critTimed: TimedPresses | null = null;
    let runtime: RuntimeDuring | null = null;
    if (runs('critical')) {
      critTimed = await timedPresses(crit, police, gw.pid, 'gateway presses', () => gatewayHealth(httpPort));
      critical = critTimed.result;
      progress(`gateway press → police: p50 ${critical.p50} ms, p99 ${critical.p99} ms, p99.9 ${critical.p999} ms (${critical.count} timed, ${critical.missing} missing)`);
      const stages = await gatewayStages(httpPort);
      progress(`gateway's own stage times (p50/p99 ms, /api/latency): ${stages}`);
      // The same two readings as the runtime figures: around the timed presses, the warm-up's writes left out.
      const { before, after } = critTimed.health!;
      progress(`gateway store during the timed presses: ${storeLine(before, after, critical.pressed ?? 0)}`);
      runtime = runtimeDuring(critTimed.health);
      progress(`gateway runtime during the timed presses: ${runtimeLine(runtime)}`);
      // A supervision storm (devices judged offline, then back) would be part of the gateway's load.
      progress(`gateway supervision after the timed presses: ${supervisionLine(after)}`);
    }

    // 4. Burst.
    let burst: BurstResult = { sent: null, delivered: null, dupes: null, dupesByAttempt: null, drainS: null, rssGrowthMb: null };
    if (runs('burst')) {
      if (BURST_DEVICES > CRIT_DEVICES) {
        await startFleet(fleets, all.slice(CRIT_DEVICES, BURST_DEVICES), mqttPort, 'burst devices');
      }
      await sleep(2000);
      burst = await runBurst(fleets, police, gw.pid, BURST_PRESSES);
      progress(`burst: ${burst.sent} sent, ${burst.delivered} delivered, ${burst.dupes} dupes${burst.dupes ? ` (by attempt: ${JSON.stringify(burst.dupesByAttempt)})` : ''}, drained in ${burst.drainS} s, RSS +${burst.rssGrowthMb} MB`);
    }

    // 5. Scale.
    let kbAtScale: number | null = null;
    const connectedNow = fleets.reduce((n, f) => n + f.size, 0);
    if (runs('scale') && SCALE_DEVICES > CRIT_DEVICES) {
      if (SCALE_DEVICES > connectedNow) {
        await startFleet(fleets, all.slice(connectedNow, SCALE_DEVICES), mqttPort, 'scale devices');
      }
      await sleep(3000);
      kbAtScale = (rssKiB(gw.pid) - rssIdle) / SCALE_DEVICES;
      progress(`RSS ${(rssKiB(gw.pid) / 1024).toFixed(1)} MiB with ${SCALE_DEVICES} devices (after the burst): ${kbAtScale.toFixed(1)} KiB per device`);
    }
    for (const f of fleets.splice(0)) f.stop();
    finishing = true;
    const gwExit = await gw.stop(30_000);
    progress(`gateway stopped (${JSON.stringify(gwExit)})`);

    // 6. Baseline: mosquitto + forwarder, same devices, same rates.
    let hbMosquitto: number | null = null;
    let hbMosquittoRounds: number[] = [];
    let baseline: PressResult = SKIPPED_PRESSES;
    let baseTimed: TimedPresses | null = null;
    if (runs('baseline')) {
      const mosqPort = await freePortOutsideEphemeralRange();
      mosquitto = startMosquitto(mosqPort, mosqDir);
      await waitForPort(mosqPort, 10_000);
      forwarder = await startForwarder(`mqtt://127.0.0.1:${mosqPort}`, policeUrl);
      const base = await startFleet(fleets, all.slice(0, CRIT_DEVICES), mosqPort, 'mosquitto devices');
      await sleep(3000);
      if (runs('heartbeat')) {
        hbMosquittoRounds = await heartbeatRounds(base, mosquitto.pid!, 'mosquitto', 'message');
        hbMosquitto = median(hbMosquittoRounds);
      }
      if (runs('critical')) {
        baseTimed = await timedPresses(base, police, mosquitto.pid!, 'baseline presses');
        baseline = baseTimed.result;
        progress(`baseline press → police: p50 ${baseline.p50} ms, p99 ${baseline.p99} ms (${baseline.count} timed, ${baseline.missing} missing)`);
      }
      base.stop();
      fleets.splice(0);
    }

    const result = {
      bench: 'city', quick: QUICK,
      p50_ms: critical.p50, p99_ms: critical.p99, p999_ms: critical.p999,
      baseline_p50_ms: baseline.p50, baseline_p99_ms: baseline.p99,
      ratio_p99: critical.p99 !== null && baseline.p99 ? round(critical.p99 / baseline.p99) : null,
      burst_sent: burst.sent, burst_delivered: burst.delivered, burst_dupes: burst.dupes, burst_dupes_by_attempt: burst.dupesByAttempt, burst_drain_s: burst.drainS,
      rss_growth_mb: burst.rssGrowthMb,
      kb_per_device: round(kbPerDevice, 1), kb_per_device_at_scale: round(kbAtScale, 1), scale_devices: SCALE_DEVICES,
      warmup_s: WARMUP_SEC, cold_p99_ms: critTimed?.coldP99 ?? null, baseline_cold_p99_ms: baseTimed?.coldP99 ?? null,
      cpu_pct_during_critical: critTimed?.cpu ?? null, cpu_pct_during_baseline: baseTimed?.cpu ?? null,
      main_thread_us_per_press: critTimed?.mainThreadUsPerPress ?? null,
      gc_minor_per_s: runtime?.minorPerS ?? null, gc_minor_mean_ms: runtime?.minorMeanMs ?? null, gc_major: runtime?.major ?? null, gc_major_ms: runtime?.majorMs ?? null,
      loop_stalls_over_20ms: runtime?.stalls ?? null, loop_stalls_over_100ms: runtime?.longStalls ?? null,
      devices: CRIT_DEVICES, rate_per_s: critical.achievedRate, timed_presses: critical.count, missing_presses: critical.missing,
      baseline_missing: baseline.missing, burst_devices: BURST_DEVICES,
      hb_us_gateway: round(hbGateway, 1), hb_us_mosquitto: round(hbMosquitto, 1),
      hb_ratio: hbGateway !== null && hbMosquitto ? round(hbGateway / hbMosquitto, 2) : null,
      phases: ['connect', ...PHASE_NAMES.filter((p) => p !== 'connect' && runs(p))],
      ...(HB_ROUNDS > 1 ? { hb_us_gateway_rounds: hbGatewayRounds.map((v) => round(v, 1)), hb_us_mosquitto_rounds: hbMosquittoRounds.map((v) => round(v, 1)) } : {}),
      police_concurrency: POLICE_CONCURRENCY ?? 'default',
      scaled_down: scaledDown, load_at_start: load, load_at_end: loadavg().map((l) => Math.round(l * 100) / 100), node: process.version,
    };
    const row = (k: string, v: unknown, target = '') => `  ${k.padEnd(38)} ${String(v).padEnd(22)} ${target}`;
    process.stdout.write([
      '',
      `city bench (${QUICK ? 'quick' : 'full'}), load ${load.join(' ')} → ${result.load_at_end.join(' ')}`,
      row('press → police p50 / p99 / p99.9', `${critical.p50} / ${critical.p99} / ${critical.p999} ms`, 'target p99 ≤ 2 ms'),
      row('  at', `${result.rate_per_s}/s, ${CRIT_DEVICES} devices, after ${WARMUP_SEC} s of warm-up at that rate`),
      row('cold start (warm-up p99) ours / baseline', WARMUP_SEC > 0 ? `${result.cold_p99_ms} / ${result.baseline_cold_p99_ms} ms` : '(no warm-up: timed from a cold start)'),
      row('gateway main thread per timed press', `${result.main_thread_us_per_press} µs CPU (heartbeats included)`),
      row('baseline (mosquitto + forwarder) p50/p99', `${baseline.p50} / ${baseline.p99} ms`),
      row('ratio p99 ours / baseline', result.ratio_p99, 'target ≤ 1.0'),
      row('burst sent / delivered / dupes', `${burst.sent} / ${burst.delivered} / ${burst.dupes}`, 'target 0 lost, 0 dupes'),
      row('burst drain', `${burst.drainS} s`, 'target ≤ 3 s'),
      row('burst RSS growth', `${burst.rssGrowthMb} MB`, 'target ≤ 100 MB'),
      row(`RSS per device at ${CRIT_DEVICES}`, `${result.kb_per_device} KiB`, 'target ≤ 20 kB'),
      row(`RSS per device at ${SCALE_DEVICES}`, kbAtScale === null ? '(same run as above)' : `${result.kb_per_device_at_scale} KiB`, 'stretch ≤ 10 kB at 50,000'),
      row('heartbeat CPU gateway / mosquitto', `${result.hb_us_gateway} / ${result.hb_us_mosquitto} µs`, 'target ratio ≤ 1.5'),
      row('  ratio', result.hb_ratio),
      ...scaledDown.map((s) => `  scaled down: ${s}`),
      '',
    ].join('\n') + '\n');
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    finishing = true;
    for (const f of fleets) f.stop();
    if (gw.alive) gw.kill('SIGKILL');
    await gw.exited;
    await stopChild(forwarder);
    await stopChild(mosquitto);
    await police.stop();
    removeDir(mosqDir);
    if (!args['keep-data']) removeDir(dataDir);
    else progress(`data dir kept: ${dataDir}`);
  }
}

/** The gateway's per-stage latency window (ingest, persist, resolve, dispatch, police ack), as one line. */
async function gatewayStages(httpPort: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/latency?window=1h`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(10_000),
    });
    const body = await res.json() as { stages?: Record<string, { p50: number | null; p99: number | null } | null> };
    return Object.entries(body.stages ?? {}).map(([k, v]) => `${k} ${v?.p50 ?? '-'}/${v?.p99 ?? '-'}`).join(', ');
  } catch (err) {
    return `unavailable (${(err as Error).message})`;
  }
}

/** Event-loop delay percentiles in ms (1 ms resolution: p50 ≈ 1 is an idle loop). */
function loopDelayLine(h: IntervalHistogram): string {
  const ms = (ns: number) => (ns / 1e6).toFixed(1);
  return `p50 ${ms(h.percentile(50))}, p99 ${ms(h.percentile(99))}, p99.9 ${ms(h.percentile(99.9))}, max ${ms(h.max)} ms`;
}

/** The gateway's /healthz, or null if it does not answer. */
async function gatewayHealth(httpPort: number): Promise<GatewayHealth | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(10_000) });
    return await res.json() as GatewayHealth;
  } catch {
    return null;
  }
}
interface GatewayHealth {
  supervision?: { devices: number; missed: number; openTroubles: number };
  runtime?: RuntimeStatus;
  store?: { commits: number; walFlushes: number; checkpoint?: { holds?: number; restarts?: number; longestHoldMs?: number; walFrames?: number } };
}

function supervisionLine(health: GatewayHealth | null): string {
  const sup = health?.supervision;
  return sup ? `${sup.devices} supervised, ${sup.missed} missed their check-in, ${sup.openTroubles} troubles open` : 'unavailable';
}

interface RuntimeDuring {
  minorPerS: number;
  /** null: no scavenge in between. */
  minorMeanMs: number | null;
  major: number;
  /** Main-thread pause of those major GCs together (their concurrent marking runs on other threads, on the same 2 cores). */
  majorMs: number;
  stalls: number;
  longStalls: number;
}

/** GC pauses and event-loop stalls of the gateway between two /healthz reads: where a tail comes from. */
function runtimeDuring(health: TimedPresses['health']): RuntimeDuring | null {
  const before = health?.before?.runtime;
  const after = health?.after?.runtime;
  if (!health || !before || !after) return null;
  const minor = after.gc.minor.count - before.gc.minor.count;
  return {
    // Over the time between the readings: the presses may outlast their nominal seconds (late arrivals, a lower rate).
    minorPerS: round(minor / health.seconds, 1)!,
    minorMeanMs: minor ? round((after.gc.minor.totalMs - before.gc.minor.totalMs) / minor, 1) : null,
    major: after.gc.major.count - before.gc.major.count,
    majorMs: round(after.gc.major.totalMs - before.gc.major.totalMs, 1)!,
    stalls: after.eventLoop.stallsOver20Ms - before.eventLoop.stallsOver20Ms,
    longStalls: after.eventLoop.stallsOver100Ms - before.eventLoop.stallsOver100Ms,
  };
}

function runtimeLine(r: RuntimeDuring | null): string {
  if (!r) return 'unavailable';
  return `${r.minorPerS} scavenges a second (mean pause ${r.minorMeanMs ?? '—'} ms), ${r.major} major GCs (${r.majorMs} ms of pause); ` +
    `event loop late by 20 ms or more: ${r.stalls} times, by 100 ms or more: ${r.longStalls}`;
}

/** Store transactions and WAL flushes between two /healthz reads, per alert: what group commit achieved. */
function storeLine(before: GatewayHealth | null, after: GatewayHealth | null, alerts: number): string {
  if (!before?.store || !after?.store || alerts === 0) return 'unavailable';
  const commits = after.store.commits - before.store.commits;
  const flushes = after.store.walFlushes - before.store.walFlushes;
  const since = (key: 'holds' | 'restarts') => (after.store!.checkpoint?.[key] ?? 0) - (before.store!.checkpoint?.[key] ?? 0);
  return `${commits} transactions, ${flushes} WAL flushes for ${alerts} alerts (${(commits / alerts).toFixed(2)} and ${(flushes / alerts).toFixed(2)} per alert); ` +
    `writes held ${since('holds')} times for ${since('restarts')} WAL restarts (longest hold since start ${after.store.checkpoint?.longestHoldMs ?? '?'} ms), WAL at ${after.store.checkpoint?.walFrames ?? '?'} frames`;
}

/** One press from every connected device at once (more presses than devices: some press twice). */
async function runBurst(fleets: Fleet[], police: PoliceReceiver, pid: number, presses: number) {
  const rssBefore = rssKiB(pid);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssKiB(pid));
  }, 100);
  const requestsBefore = police.requests;
  const repeatsBefore = new Map(police.repeatsByAttempt);
  const distinctBefore = police.distinct;
  const keys: string[] = [];
  const devices = fleets.flatMap((f) => Array.from({ length: f.size }, (_, i) => [f, i] as const));
  const start = performance.now();
  for (let k = 0; k < presses; k++) {
    const [fleet, i] = devices[k % devices.length]!;
    keys.push(fleet.press(i));
  }
  let last = start;
  const deadline = start + 120_000;
  let lastArrival = start;
  police.onFirst((_, at) => {
    lastArrival = at;
  });
  while (police.distinct - distinctBefore < presses && performance.now() < deadline) {
    await sleep(20);
    if (readRssKiB(pid) === null) throw new Error('the server died during the burst');
    if (performance.now() - last > 2000) {
      last = performance.now();
      progress(`burst: ${police.distinct - distinctBefore}/${presses} at the police, RSS ${(rssKiB(pid) / 1024).toFixed(1)} MiB`);
    }
  }
  await sleep(1000);
  clearInterval(sampler);
  police.onFirst(() => undefined);
  const delivered = keys.filter((k) => police.firstAt.has(k)).length;
  return {
    sent: presses, delivered, dupes: police.requests - requestsBefore - (police.distinct - distinctBefore),
    dupesByAttempt: Object.fromEntries([...police.repeatsByAttempt].map(([attempt, n]) => [attempt, n - (repeatsBefore.get(attempt) ?? 0)] as const).filter(([, n]) => n > 0)),
    drainS: round((lastArrival - start) / 1000, 2), rssGrowthMb: round((rssPeak - rssBefore) / 1024, 1),
  };
}

main().catch((err: unknown) => {
  progress(`FAILED: ${(err as Error).stack ?? String(err)}`);
  if (gatewayTail) progress(gatewayTail());
  process.exit(1);
});
