// One simulator run: a fleet connects, heartbeats, and presses following a
// scenario; radio devices behind a simulated dongle may join over a serial
// port; progress goes to `progress` every two seconds; the run ends when every
// press is delivered (or the drain deadline passes) and returns its counts.
import type { AckFrame } from '../protocol/index.ts';
import { stateRank } from '../protocol/index.ts';
import { SimDongle, type DongleWire } from './dongle.ts';
import { Fleet } from './fleet.ts';
import {
  burstPlan, clockSkewMs, nextArrivalMs, seededRandom, trippable, TRIP_TYPE,
  type FlakyPolicy, type Scenario, type SimDeviceSpec, type SupervisionClass,
} from './scenarios.ts';
import type { SimStats } from './sim-stats.ts';

export interface SimRunOptions {
  host: string;
  port: number;
  devices: SimDeviceSpec[];
  scenario: Scenario;
  /** burst and reconnect-storm: presses at once. */
  presses: number;
  /** steady, flaky, clock-skew: presses per second over `durationSec`. */
  ratePerSec: number;
  durationSec: number;
  heartbeatSec?: Partial<Record<SupervisionClass, number>>;
  seed: number;
  localAddresses?: string[];
  connectConcurrency?: number;
  /** flaky: chance a message is lost, drops per device per second. */
  flaky?: FlakyPolicy;
  /** clock-skew: share of devices with a wrong clock. */
  skewFraction?: number;
  /** Give up waiting for deliveries after this long. */
  drainTimeoutMs: number;
  /** Radio devices behind one simulated dongle on this wire (the gateway's serial bridge on the other end). */
  dongle?: { wire: DongleWire; receiverId: string; devices: SimDeviceSpec[]; radioKey: (id: string) => Buffer };
  /** False when the caller reports police receipts into `fleet.stats` itself. */
  deliveredByAck?: boolean;
  /** Called with the fleet once it exists (to feed police receipts, for instance). */
  onFleet?: (fleet: Fleet) => void;
  progress: (line: string) => void;
}

export interface SimRunResult {
  stats: SimStats;
  /** reconnect-storm: ms from the drop until every device was back. */
  reconnectMs: number | null;
  /** Presses not delivered when the run gave up. */
  undelivered: string[];
  dongle: { sent: number; acked: number; delivered: number } | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runSim(opts: SimRunOptions): Promise<SimRunResult> {
  const random = seededRandom(opts.seed);
  const skew = opts.scenario === 'clock-skew' ? opts.devices.map(() => clockSkewMs(opts.skewFraction ?? 0.3, random)) : undefined;
  const fleet = new Fleet({
    host: opts.host, port: opts.port, localAddresses: opts.localAddresses, devices: opts.devices, heartbeatSec: opts.heartbeatSec,
    connectConcurrency: opts.connectConcurrency, flaky: opts.scenario === 'flaky' ? opts.flaky ?? { lossRate: 0.05, dropPerSec: 0.01 } : null,
    clockSkewMs: skew, deliveredByAck: opts.deliveredByAck, random,
  });
  opts.onFleet?.(fleet);
  const { stats } = fleet;
  const started = performance.now();
  const ticker = setInterval(() => opts.progress(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${stats.progressLine()}`), 2000);
  let reconnectMs: number | null = null;
  const dongle = opts.dongle ? startDongle(opts.dongle) : null;
  try {
    opts.progress(`connecting ${opts.devices.length} devices to ${opts.host}:${opts.port} (scenario ${opts.scenario})`);
    await fleet.connectAll();
    fleet.start();
    opts.progress(`${stats.connected} connected in ${((performance.now() - started) / 1000).toFixed(1)} s; heartbeats every ` +
      `${fleet.heartbeatSec('store')} s (stores) / ${fleet.heartbeatSec('home')} s (homes)`);
    const candidates = trippable(opts.devices);
    if (candidates.length === 0) throw new Error('no device in the fleet can trip (alarm bells only?)');

    switch (opts.scenario) {
      case 'burst':
        for (const i of burstPlan(candidates, opts.presses)) fleet.press(i);
        dongle?.pressAll();
        break;
      case 'reconnect-storm': {
        for (const i of burstPlan(candidates, opts.presses)) fleet.press(i);
        const dropAt = performance.now();
        fleet.dropAll();
        opts.progress(`every connection dropped with ${opts.presses} presses in flight`);
        await fleet.until(() => fleet.connectedCount() === fleet.size, opts.drainTimeoutMs, 'every device to reconnect');
        reconnectMs = performance.now() - dropAt;
        opts.progress(`all ${fleet.size} reconnected in ${(reconnectMs / 1000).toFixed(1)} s`);
        break;
      }
      case 'steady':
      case 'flaky':
      case 'clock-skew': {
        const end = performance.now() + opts.durationSec * 1000;
        let at = performance.now() + nextArrivalMs(opts.ratePerSec, random);
        while (at < end) {
          await sleep(Math.max(0, at - performance.now()));
          const i = candidates[Math.floor(random() * candidates.length)]!;
          // One press in flight per device, so a resend after a drop never comes below a newer seq (a replay).
          if (!fleet.hasPending(i)) fleet.press(i);
          at += nextArrivalMs(opts.ratePerSec, random);
        }
        dongle?.pressAll();
        break;
      }
    }
    // Acknowledged too: the police get a press before its PUBACK (which waits for the store), and until then the device still holds it.
    const pending = () => stats.deliveredTotal >= stats.sent && stats.ackedTotal >= stats.sent && (!dongle || dongle.delivered() >= dongle.sent());
    try {
      await fleet.until(pending, opts.drainTimeoutMs, 'every press to be delivered and acknowledged');
    } catch {
      opts.progress(`gave up after ${opts.drainTimeoutMs} ms: ${stats.sent - stats.deliveredTotal} presses not delivered, ${stats.sent - stats.ackedTotal} not acknowledged`);
    }
    opts.progress(`done: ${stats.progressLine()}`);
    return { stats, reconnectMs, undelivered: stats.outstanding('delivered'), dongle: dongle?.report() ?? null };
  } finally {
    clearInterval(ticker);
    fleet.stop();
    dongle?.stop();
  }
}

/** The radio side: one dongle relays its devices' heartbeats and, when told, one press each. */
function startDongle(cfg: NonNullable<SimRunOptions['dongle']>) {
  const dongle = new SimDongle(cfg.wire, {
    receiverId: cfg.receiverId, devices: cfg.devices.map((d) => ({ id: d.id, radioKey: cfg.radioKey(d.id), seq: Date.now() * 1000 })),
  }).start();
  const sent = new Set<string>();
  const acked = new Set<string>();
  const delivered = new Set<string>();
  dongle.onAck((ack: AckFrame) => {
    if (!sent.has(ack.alertId)) return;
    acked.add(ack.alertId);
    if (stateRank(ack.state) >= stateRank('acknowledged')) delivered.add(ack.alertId);
  });
  dongle.boot();
  dongle.health();
  const timer = setInterval(() => {
    for (const d of cfg.devices) dongle.heartbeat(d.id);
    dongle.health();
  }, 30_000);
  return {
    pressAll(): void {
      for (const d of cfg.devices) {
        const type = TRIP_TYPE[d.type];
        if (type) sent.add(dongle.press(d.id, type).alertId);
      }
    },
    sent: () => sent.size,
    delivered: () => delivered.size,
    report: () => ({ sent: sent.size, acked: acked.size, delivered: delivered.size }),
    stop: () => clearInterval(timer),
  };
}
