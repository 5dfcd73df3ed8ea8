// The device fleet of bench/supervision-accuracy.ts, in its own process so
// that its heartbeats keep arriving (and queue in the gateway's socket
// buffers) while the gateway's event loop is busy. One connection per device
// with the simulator's lean client (10,000 of them cost a few MB); QoS 0
// heartbeats on a schedule; some devices send each heartbeat
// just before their deadline ("edge" devices, the ones a busy gateway could
// wrongly flag); "victims" stop at a given time while staying connected.
// Driven over IPC by the benchmark: see FleetCommand / FleetReport.
import { LeanClient } from '../device-sim/lean-client.ts';
import { topics } from '../protocol/index.ts';

export interface FleetPlan {
  port: number;
  secret: string;
  ids: string[];
  /** Normal devices: a heartbeat every interval × (0.9 … 1.0). */
  intervalMs: number;
  /** Edge devices: a heartbeat every edgePeriodMs (just inside interval + grace). */
  edgeIds: string[];
  edgePeriodMs: number;
  /** Panic presses per second, from normal devices, to keep the alert path busy. */
  pressesPerSec: number;
}

export type FleetCommand =
  | { cmd: 'connect'; plan: FleetPlan }
  | { cmd: 'run'; victims: Array<{ id: string; stopAfterMs: number }> }
  | { cmd: 'report' };

export type FleetReport =
  | { kind: 'progress'; connected: number }
  | { kind: 'connected'; connected: number; refused: number }
  | { kind: 'report'; lastSent: Record<string, number>; heartbeats: number; presses: number; lateTicks: number };

/** Connections opened at once while connecting: more would overflow the listen backlog. */
const CONNECT_PARALLELISM = 200;
const TICK_MS = 20;
const CONNECT_TIMEOUT_MS = 30_000;
/** Presses are fire-and-forget here; a PUBACK later than this is simply not waited for. */
const ACK_TIMEOUT_MS = 30_000;

interface Device {
  id: string;
  client: LeanClient;
  periodMs: number;
  nextAt: number;
  seq: number;
  stopAt: number;
  /** When the device last sent anything (heartbeat or press). */
  lastSent: number;
}

const devices: Device[] = [];
let heartbeats = 0;
let presses = 0;
let lateTicks = 0;
let plan: FleetPlan;

const send = (msg: FleetReport) => process.send!(msg);

/** keepalive 0: the devices' only sign of life is the heartbeats this bench schedules. */
async function openOne(id: string): Promise<LeanClient | null> {
  const client = new LeanClient({
    host: '127.0.0.1', port: plan.port, clientId: id, username: id, password: plan.secret,
    keepaliveSec: 0, connectTimeoutMs: CONNECT_TIMEOUT_MS, ackTimeoutMs: ACK_TIMEOUT_MS,
  });
  try {
    await client.connect();
    return client;
  } catch {
    return null;
  }
}

async function connectAll(): Promise<void> {
  const edge = new Set(plan.edgeIds);
  let next = 0;
  let refused = 0;
  const now = Date.now();
  const worker = async () => {
    while (next < plan.ids.length) {
      const id = plan.ids[next++]!;
      const client = await openOne(id);
      if (!client) {
        refused++;
        continue;
      }
      const periodMs = edge.has(id) ? plan.edgePeriodMs : plan.intervalMs * (0.9 + 0.1 * Math.random());
      devices.push({ id, client, periodMs, nextAt: now + Math.random() * periodMs, seq: 0, stopAt: Infinity, lastSent: 0 });
      if (devices.length % 1000 === 0) send({ kind: 'progress', connected: devices.length });
    }
  };
  await Promise.all(Array.from({ length: CONNECT_PARALLELISM }, worker));
  send({ kind: 'connected', connected: devices.length, refused });
  schedule();
}

function heartbeat(d: Device, now: number): void {
  d.seq++;
  void d.client.publish(topics.heartbeat(d.id), JSON.stringify({ seq: d.seq, ts: now, battery: 90, rssi: -60 }), 0).catch(() => undefined);
  d.lastSent = now;
  heartbeats++;
}

function press(d: Device, now: number): void {
  d.seq++;
  void d.client.publish(topics.event(d.id), JSON.stringify({ seq: d.seq, ts: now, type: 'test' }), 1).catch(() => undefined);
  // A press is a check-in too: the victim's window runs from whichever came last.
  d.lastSent = now;
  presses++;
}

/** One ticker for the fleet; a device's heartbeat is due at nextAt. */
function schedule(): void {
  const edge = new Set(plan.edgeIds);
  const normal = devices.filter((d) => !edge.has(d.id));
  let pressCredit = 0;
  let last = Date.now();
  setInterval(() => {
    const now = Date.now();
    if (now - last > TICK_MS * 3) lateTicks++;
    pressCredit += ((now - last) / 1000) * plan.pressesPerSec;
    last = now;
    for (const d of devices) {
      if (now >= d.stopAt || now < d.nextAt) continue;
      heartbeat(d, now);
      d.nextAt += d.periodMs;
      if (d.nextAt < now) d.nextAt = now + d.periodMs;
    }
    for (; pressCredit >= 1; pressCredit--) {
      const d = normal[Math.floor(Math.random() * normal.length)];
      if (d && now < d.stopAt) press(d, now);
    }
  }, TICK_MS);
}

process.on('message', (msg: FleetCommand) => {
  if (msg.cmd === 'connect') {
    plan = msg.plan;
    void connectAll();
  } else if (msg.cmd === 'run') {
    const byId = new Map(devices.map((d) => [d.id, d]));
    const now = Date.now();
    for (const v of msg.victims) {
      const d = byId.get(v.id);
      if (d) d.stopAt = now + v.stopAfterMs;
    }
  } else if (msg.cmd === 'report') {
    const lastSent: Record<string, number> = {};
    for (const d of devices) if (d.stopAt !== Infinity) lastSent[d.id] = d.lastSent;
    send({ kind: 'report', lastSent, heartbeats, presses, lateTicks });
  }
});
process.on('disconnect', () => process.exit(0));
