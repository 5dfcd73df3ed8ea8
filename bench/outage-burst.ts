// Benchmark: a burst of panic presses while the police endpoint is DOWN, then
// the endpoint comes back and the backlog drains.
//
//   npm run bench:outage                 # 20,000 alerts
//   npm run bench:outage -- --quick      # 5,000 alerts
//   npm run bench:outage -- --alerts 50000 --devices 400 --outage-sec 30
//   npm run bench:outage -- --heap-mb 64   # cap the gateway's heap: garbage or retained?
//
// The gateway is the real thing, a child process on a temp data dir with a
// demo registry of `--devices` stores (one panic button each). The police
// endpoint is a port where nothing listens until the drain phase, when the
// police simulator starts on it. The gateway's RSS (/proc/<pid>/status VmRSS)
// is sampled every second throughout.
//
// Output: progress on stderr; a summary table and then ONE JSON line on stdout.
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { parseArgs } from 'node:util';
import { PoliceSim } from '../gateway/police-sim/police-sim.ts';
import { demoSecret, readDemoKey } from '../gateway/registry/demo-credentials.ts';
import { deriveAlertId, topics } from '../protocol/index.ts';
import { freePortOutsideEphemeralRange, removeDir, startGateway, tempDataDir, type GatewayProcess } from '../test/support/gateway-process.ts';

const { values: args } = parseArgs({
  options: {
    alerts: { type: 'string' },
    quick: { type: 'boolean', default: false },
    devices: { type: 'string', default: '200' },
    /** Unacknowledged publishes per device at once (total in flight = devices × window). */
    window: { type: 'string', default: '5' },
    /** How long the endpoint stays down after the last PUBACK (RSS is watched meanwhile). */
    'outage-sec': { type: 'string', default: '15' },
    /** Give up on the drain after this long. */
    'drain-timeout-sec': { type: 'string', default: '600' },
    'keep-data': { type: 'boolean', default: false },
    /** Cap the gateway's V8 old space (MiB) to tell retained memory from lazily collected garbage. */
    'heap-mb': { type: 'string' },
  },
  strict: true,
});

const ALERTS = Number(args.alerts ?? (args.quick ? 5000 : 20_000));
const DEVICES = Number(args.devices);
const WINDOW = Number(args.window);
const OUTAGE_SEC = Number(args['outage-sec']);
const DRAIN_TIMEOUT_MS = Number(args['drain-timeout-sec']) * 1000;
for (const [name, v] of Object.entries({ alerts: ALERTS, devices: DEVICES, window: WINDOW, 'outage-sec': OUTAGE_SEC })) {
  if (!Number.isInteger(v) || v < 0 || (name !== 'outage-sec' && v < 1)) throw new Error(`--${name} must be a positive whole number`);
}
const HEAP_MB = args['heap-mb'] === undefined ? null : Number(args['heap-mb']);
if (HEAP_MB !== null && (!Number.isInteger(HEAP_MB) || HEAP_MB < 16)) throw new Error('--heap-mb must be a whole number ≥ 16');
const POLICE_SECRET = 'bench-police-secret-0123456789';

const t0 = Date.now();
const since = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
const progress = (msg: string) => process.stderr.write(`[${since()} s] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (kib: number | null) => (kib === null ? null : Math.round((kib / 1024) * 10) / 10);

type Phase = 'idle' | 'burst' | 'outage' | 'drain' | 'drained';
interface Sample { t: number; phase: Phase; rssKiB: number }

class RssSampler {
  readonly samples: Sample[] = [];
  phase: Phase = 'idle';
  private timer: NodeJS.Timeout | null = null;
  constructor(private readonly gw: GatewayProcess) {}
  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
  }
  sample(): number | null {
    const rss = this.gw.rssKiB();
    if (rss !== null) this.samples.push({ t: Date.now() - t0, phase: this.phase, rssKiB: rss });
    return rss;
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
  peak(...phases: Phase[]): number | null {
    const xs = this.samples.filter((s) => phases.length === 0 || phases.includes(s.phase)).map((s) => s.rssKiB);
    return xs.length ? Math.max(...xs) : null;
  }
  last(): number | null {
    return this.samples.at(-1)?.rssKiB ?? null;
  }
}

async function healthz(gw: GatewayProcess): Promise<any> {
  const res = await fetch(`${gw.httpUrl}/healthz`, { signal: AbortSignal.timeout(10_000) });
  return res.json();
}

function connectDevice(url: string, id: string, secret: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId: id, username: id, password: secret, reconnectPeriod: 1000, connectTimeout: 30_000, keepalive: 60 });
  client.on('error', (err) => progress(`device ${id}: ${err.message}`));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${id} did not connect`)), 60_000);
    client.once('connect', () => {
      clearTimeout(t);
      resolve(client);
    });
  });
}

async function main(): Promise<void> {
  const dataDir = tempDataDir('safehaven-bench-');
  // Bound only when the police "come back": below the ephemeral range, no outgoing connection takes it meanwhile.
  const policePort = await freePortOutsideEphemeralRange();
  const policeUrl = `http://127.0.0.1:${policePort}/alerts`;
  progress(`${ALERTS} alerts over ${DEVICES} devices (window ${WINDOW} each); police endpoint ${policeUrl} is DOWN; data dir ${dataDir}`);

  const gw = startGateway({
    dataDir,
    hardTimeoutMs: 3_600_000,
    env: {
      SAFEHAVEN_POLICE_URL: policeUrl,
      SAFEHAVEN_POLICE_SECRET: POLICE_SECRET,
      SAFEHAVEN_DEMO_STORES: String(DEVICES),
      SAFEHAVEN_DEMO_HOMES: '0',
      SAFEHAVEN_ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef',
      SAFEHAVEN_LOG_LEVEL: 'info',
      ...(HEAP_MB ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=${HEAP_MB}`.trim() } : {}),
    },
    // Keep warnings and worse (and the ready line): 40,000 info lines are not worth holding.
    keep: (l) => (l.level ?? 0) >= 40,
  });
  let police: PoliceSim | null = null;
  const clients: MqttClient[] = [];
  const sampler = new RssSampler(gw);
  try {
    await gw.ready(300_000);
    sampler.start();
    await sleep(1000);
    const rssBefore = sampler.sample();
    progress(`gateway ready (pid ${gw.pid}), RSS ${mib(rssBefore)} MiB`);

    // Devices.
    const key = readDemoKey(dataDir);
    const ids = Array.from({ length: DEVICES }, (_, i) => `pb-store-${String(i + 1).padStart(4, '0')}`);
    for (let i = 0; i < ids.length; i += 50) {
      clients.push(...(await Promise.all(ids.slice(i, i + 50).map((id) => connectDevice(gw.mqttUrl, id, demoSecret(key, id))))));
    }
    progress(`${clients.length} devices connected`);

    // The burst: event k goes to device k % DEVICES, each device's seq increasing.
    sampler.phase = 'burst';
    const perDevice = ids.map((_, d) => Math.floor(ALERTS / DEVICES) + (d < ALERTS % DEVICES ? 1 : 0));
    const expected = new Set<string>();
    ids.forEach((id, d) => {
      for (let seq = 1; seq <= perDevice[d]!; seq++) expected.add(deriveAlertId(id, seq));
    });
    let acked = 0;
    let publishErrors = 0;
    const burstStart = Date.now();
    const ticker = setInterval(() => {
      const secs = (Date.now() - burstStart) / 1000;
      progress(`burst: ${acked}/${ALERTS} PUBACKed (${Math.round(acked / secs)}/s), gateway RSS ${mib(sampler.last())} MiB`);
    }, 2000);
    const pressOnce = (client: MqttClient, id: string, seq: number): Promise<void> => new Promise((resolve) => {
      client.publish(topics.event(id), JSON.stringify({ seq, ts: Date.now(), type: 'panic' }), { qos: 1 }, (err) => {
        if (err) {
          publishErrors++;
          setTimeout(() => void pressOnce(client, id, seq).then(resolve), 500);
          return;
        }
        acked++;
        resolve();
      });
    });
    await Promise.all(ids.map(async (id, d) => {
      const client = clients[d]!;
      const inFlight = new Set<Promise<void>>();
      for (let seq = 1; seq <= perDevice[d]!; seq++) {
        while (inFlight.size >= WINDOW) await Promise.race(inFlight);
        const p: Promise<void> = pressOnce(client, id, seq).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await Promise.all(inFlight);
    }));
    clearInterval(ticker);
    const burstMs = Date.now() - burstStart;
    const rssAfterBurst = sampler.sample();
    const healthAfterBurst = await healthz(gw);
    progress(`all ${ALERTS} PUBACKed in ${(burstMs / 1000).toFixed(1)} s (${Math.round(ALERTS / (burstMs / 1000))}/s); ` +
      `outbox pending ${healthAfterBurst.police?.pending}, RSS ${mib(rssAfterBurst)} MiB`);

    // The outage goes on a while: retries, breaker probes and escalation checks run against the backlog.
    sampler.phase = 'outage';
    for (let s = 0; s < OUTAGE_SEC; s += 5) {
      await sleep(Math.min(5, OUTAGE_SEC - s) * 1000);
      progress(`outage: RSS ${mib(sampler.last())} MiB`);
    }
    const healthInOutage = await healthz(gw);
    const rssEndOfOutage = sampler.sample();
    const peakDown = sampler.peak('burst', 'outage');

    // The police come back on the same URL.
    sampler.phase = 'drain';
    police = new PoliceSim({ host: '127.0.0.1', port: policePort, secret: POLICE_SECRET, log: pino({ level: 'silent' }) });
    await police.start();
    const upAt = Date.now();
    progress('police endpoint UP: draining');
    let firstDeliveryMs: number | null = null;
    let lastReport = 0;
    for (;;) {
      const got = police.received().length;
      if (got > 0 && firstDeliveryMs === null) firstDeliveryMs = Date.now() - upAt;
      if (got >= expected.size) break;
      if (Date.now() - upAt > DRAIN_TIMEOUT_MS) throw new Error(`drain timed out: ${got}/${expected.size} at the police`);
      if (Date.now() - lastReport >= 2000) {
        lastReport = Date.now();
        progress(`drain: ${got}/${expected.size} distinct keys at the police, RSS ${mib(sampler.last())} MiB`);
      }
      await sleep(100);
    }
    const drainMs = Date.now() - upAt;
    sampler.phase = 'drained';
    const received = police.received();
    const unknownKeys = received.filter((a) => !expected.has(a.idempotencyKey)).length;
    const stats = police.stats();
    progress(`drained in ${(drainMs / 1000).toFixed(1)} s (first delivery after ${((firstDeliveryMs ?? 0) / 1000).toFixed(1)} s)`);
    await sleep(3000);
    const rssAfterDrain = sampler.sample();
    const healthAfterDrain = await healthz(gw);
    const peakDrain = sampler.peak('drain');
    sampler.stop();

    for (const c of clients.splice(0)) await c.endAsync(true);
    const exit = await gw.stop(30_000);
    const warnings = gw.logs().filter((l) => (l.level ?? 0) >= 40);
    const warnCodes: Record<string, number> = {};
    for (const w of warnings) {
      const k = `${w.level}:${String(w.code ?? w.msg).slice(0, 60)}`;
      warnCodes[k] = (warnCodes[k] ?? 0) + 1;
    }

    const result = {
      bench: 'outage-burst',
      alerts: ALERTS,
      devices: DEVICES,
      windowPerDevice: WINDOW,
      outageSecAfterBurst: OUTAGE_SEC,
      gatewayHeapCapMiB: HEAP_MB,
      burst: { pubackAllMs: burstMs, perSec: Math.round(ALERTS / (burstMs / 1000)), publishErrors },
      rssMiB: {
        beforeBurst: mib(rssBefore),
        afterBurst: mib(rssAfterBurst),
        peakWhileDown: mib(peakDown),
        endOfOutage: mib(rssEndOfOutage),
        peakDuringDrain: mib(peakDrain),
        afterDrain: mib(rssAfterDrain),
      },
      outbox: {
        pendingAfterBurst: healthAfterBurst.police?.pending ?? null,
        pendingEndOfOutage: healthInOutage.police?.pending ?? null,
        pendingAfterDrain: healthAfterDrain.police?.pending ?? null,
        healthStatusWhileDown: healthInOutage.status ?? null,
        failingEndpointsWhileDown: healthInOutage.police?.failingEndpoints ?? null,
      },
      drain: {
        firstDeliveryMs,
        allDeliveredMs: drainMs,
        perSecAfterFirst: firstDeliveryMs === null ? null : Math.round(expected.size / Math.max(0.001, (drainMs - firstDeliveryMs) / 1000)),
        distinctKeys: received.length,
        expectedKeys: expected.size,
        unknownKeys,
        duplicates: stats.duplicates,
        policeRequests: stats.requests,
      },
      gatewayExit: exit,
      gatewayWarnings: warnCodes,
      rssSamples: sampler.samples.length,
      node: process.version,
    };

    const row = (k: string, v: unknown) => `  ${k.padEnd(34)} ${v}`;
    const table = [
      '',
      `outage-burst: ${ALERTS} alerts, ${DEVICES} devices, police DOWN during the burst + ${OUTAGE_SEC} s, then UP` +
        (HEAP_MB ? ` (gateway old space capped at ${HEAP_MB} MiB)` : ''),
      row('time to PUBACK all', `${(burstMs / 1000).toFixed(2)} s (${result.burst.perSec}/s)`),
      row('publish errors (retried)', publishErrors),
      row('gateway RSS before burst', `${result.rssMiB.beforeBurst} MiB`),
      row('gateway RSS after burst', `${result.rssMiB.afterBurst} MiB`),
      row('gateway RSS peak while down', `${result.rssMiB.peakWhileDown} MiB`),
      row('gateway RSS end of outage', `${result.rssMiB.endOfOutage} MiB`),
      row('outbox pending (healthz)', `${result.outbox.pendingAfterBurst} after burst, ${result.outbox.pendingEndOfOutage} end of outage`),
      row('healthz status while down', `${result.outbox.healthStatusWhileDown}`),
      row('first delivery after police UP', `${((firstDeliveryMs ?? 0) / 1000).toFixed(2)} s`),
      row('all delivered after police UP', `${(drainMs / 1000).toFixed(2)} s`),
      row('distinct keys at police', `${received.length} / ${expected.size} (unknown ${unknownKeys})`),
      row('duplicate deliveries (same key)', stats.duplicates),
      row('gateway RSS peak during drain', `${result.rssMiB.peakDuringDrain} MiB`),
      row('gateway RSS after drain', `${result.rssMiB.afterDrain} MiB`),
      row('outbox pending after drain', result.outbox.pendingAfterDrain),
      row('gateway exit on SIGTERM', JSON.stringify(exit)),
      '',
    ].join('\n');
    process.stdout.write(`${table}\n${JSON.stringify(result)}\n`);
    if (received.length !== expected.size || unknownKeys > 0) process.exitCode = 1;
  } finally {
    sampler.stop();
    for (const c of clients) c.end(true);
    if (gw.alive) gw.kill('SIGKILL');
    await gw.exited;
    await police?.stop();
    if (!args['keep-data']) removeDir(dataDir);
    else progress(`data dir kept: ${dataDir}`);
  }
}

main().catch((err: unknown) => {
  progress(`FAILED: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
