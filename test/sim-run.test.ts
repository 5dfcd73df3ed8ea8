// A small simulator run against the real gateway process and a real HTTP
// police endpoint: a few hundred devices on their own connections, a burst of
// 500 presses, then a reconnect storm with presses in flight. What the police
// received is counted by Idempotency-Key: every press arrives exactly once.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readDemoKey } from '../gateway/registry/demo-credentials.ts';
import { demoFleet } from '../device-sim/scenarios.ts';
import { runSim, type SimRunOptions } from '../device-sim/sim-run.ts';
import { killAllGateways, removeDir, startGateway, tempDataDir, type GatewayProcess } from './support/gateway-process.ts';
import { ScriptedEndpoint } from './support/scripted-endpoint.ts';

const STORES = 250;
const HOMES = 20;

let gw: GatewayProcess;
let police: ScriptedEndpoint;
let dataDir: string;

beforeAll(async () => {
  police = new ScriptedEndpoint();
  await police.start();
  dataDir = tempDataDir('safehaven-sim-');
  gw = startGateway({
    dataDir,
    env: {
      SAFEHAVEN_POLICE_URL: police.url(), SAFEHAVEN_POLICE_SECRET: 'sim-test-police-secret-0123',
      SAFEHAVEN_DEMO_STORES: String(STORES), SAFEHAVEN_DEMO_HOMES: String(HOMES),
    },
    // Warnings and the ready line: a thousand alerts' info lines are not worth holding.
    keep: (l) => (l.level ?? 0) >= 40,
  });
  await gw.ready(60_000);
}, 90_000);

afterAll(async () => {
  await killAllGateways();
  await police?.stop();
  if (dataDir) removeDir(dataDir);
});

function simOptions(overrides: Partial<SimRunOptions>): SimRunOptions {
  const url = new URL(gw.mqttUrl);
  return {
    host: url.hostname, port: Number(url.port), devices: demoFleet({ stores: STORES, homes: HOMES, demoKey: readDemoKey(dataDir) }),
    scenario: 'burst', presses: 500, ratePerSec: 0, durationSec: 1, seed: 1, drainTimeoutMs: 60_000, connectConcurrency: 50,
    progress: () => undefined, ...overrides,
  };
}

/** A run whose deliveries are the police endpoint's receipts (a device offline at its `acknowledged` ack never hears it). */
async function runCountingPolice(overrides: Partial<SimRunOptions>) {
  let seen = police.seen.length;
  let timer: NodeJS.Timeout | null = null;
  try {
    return await runSim(simOptions({
      ...overrides,
      deliveredByAck: false,
      onFleet: (fleet) => {
        timer = setInterval(() => {
          for (; seen < police.seen.length; seen++) fleet.stats.delivered(police.seen[seen]!.key, performance.now());
        }, 10);
      },
    }));
  } finally {
    if (timer) clearInterval(timer);
  }
}

/** Keys the police answered 2xx since `from`, and how many of those requests repeated a key. */
function policeSince(from: number): { distinct: Set<string>; duplicates: number } {
  const keys = police.delivered().slice(from);
  return { distinct: new Set(keys), duplicates: keys.length - new Set(keys).size };
}

it('a burst of 500 presses from 310 devices reaches the police exactly once each', async () => {
  const before = police.delivered().length;
  const result = await runCountingPolice({ scenario: 'burst', presses: 500 });
  expect(result.stats.peakConnected).toBe(STORES + HOMES * 3);
  expect(result.stats.refused).toBe(0);
  expect(result.stats.sent).toBe(500);
  expect(result.stats.ackedTotal).toBe(500);
  expect(result.undelivered).toEqual([]);
  const { distinct, duplicates } = policeSince(before);
  expect(distinct.size).toBe(500);
  expect(duplicates).toBe(0);
}, 120_000);

it('a reconnect storm with 200 presses in flight: every device comes back, every press arrives once, resends are repeats', async () => {
  const before = police.delivered().length;
  const result = await runCountingPolice({ scenario: 'reconnect-storm', presses: 200, seed: 2 });
  expect(result.reconnectMs).not.toBeNull();
  expect(result.stats.reconnects).toBe(STORES + HOMES * 3);
  expect(result.stats.sent).toBe(200);
  expect(result.undelivered).toEqual([]);
  const { distinct, duplicates } = policeSince(before);
  expect(distinct.size).toBe(200);
  expect(duplicates).toBe(0);
}, 120_000);

it('a flaky network (lost packets, random drops) loses no press and duplicates none', async () => {
  const before = police.delivered().length;
  const result = await runCountingPolice({
    scenario: 'flaky', ratePerSec: 40, durationSec: 4, seed: 3, flaky: { lossRate: 0.2, dropPerSec: 0.02 },
  });
  expect(result.stats.sent).toBeGreaterThan(50);
  expect(result.undelivered).toEqual([]);
  const { distinct, duplicates } = policeSince(before);
  expect(distinct.size).toBe(result.stats.sent);
  expect(duplicates).toBe(0);
}, 120_000);
