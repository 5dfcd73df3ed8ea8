// Crash safety, proven with real processes and sockets: the gateway is a
// child process, killed with SIGKILL in the middle of a burst of presses from
// real MQTT devices (mqtt.js, QoS 1), and restarted on the same data dir. The
// police endpoint is a real HTTP server (the police simulator) that counts
// every Idempotency-Key it sees.
//
// The promise under test: an event whose PUBACK reached the device is never
// lost, and the police see it under exactly one key, deriveAlertId(device, seq).
//
// Three gateway runs on one data dir:
//  1. on MQTT port P: devices press; SIGKILL once enough PUBACKs came back,
//     while presses (and, with a slow police, POSTs) are in flight;
//  2. on another MQTT port, so no device can reach it: whatever it delivers
//     comes from the outbox alone. Every event PUBACKed by run 1 must arrive;
//     then it is stopped with SIGTERM;
//  3. on port P again: the devices' clients reconnect by themselves and resend
//     what was never PUBACKed (mqtt.js keeps unacknowledged QoS 1 publishes in
//     its outgoing store and resends them after every CONNACK, clean session
//     or not), then finish the burst. In the end every (device, seq) pressed is
//     at the police once per key, and no other key is.
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { deriveAlertId, topics } from '../protocol/index.ts';
import { demoSecret, readDemoKey } from '../gateway/registry/demo-credentials.ts';
import type { PoliceSim } from '../gateway/police-sim/police-sim.ts';
import { POLICE_SECRET, startPoliceSim, waitFor } from './support/harness.ts';
import {
  freePortOutsideEphemeralRange, killAllGateways, removeDir, startGateway, tempDataDir, type GatewayProcess,
} from './support/gateway-process.ts';

const DEVICES = 10;
const PRESSES_PER_DEVICE = 30;
const TOTAL = DEVICES * PRESSES_PER_DEVICE;
/** Unacknowledged publishes per device at a time, like a device with a small in-flight window. */
const WINDOW = 4;
const TEST_TIMEOUT_MS = 120_000;

const deviceIds = Array.from({ length: DEVICES }, (_, i) => `pb-store-${String(i + 1).padStart(4, '0')}`);
const eventKey = (deviceId: string, seq: number) => `${deviceId}#${seq}`;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await killAllGateways();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function gatewayEnv(police: PoliceSim): Record<string, string> {
  return {
    SAFEHAVEN_POLICE_URL: police.url(),
    SAFEHAVEN_POLICE_SECRET: POLICE_SECRET,
    SAFEHAVEN_DEMO_STORES: String(DEVICES + 2),
    SAFEHAVEN_DEMO_HOMES: '0',
    SAFEHAVEN_ADMIN_TOKEN: 'crash-test-admin-token-0123456789',
  };
}

/** A device's client that, like firmware, reconnects on its own and never gives up an unacknowledged press. */
function connectButton(mqttPort: number, deviceId: string, secret: string, clean: boolean): Promise<MqttClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, {
    clientId: deviceId, username: deviceId, password: secret, clean, reconnectPeriod: 250, connectTimeout: 5000, keepalive: 30,
  });
  // While the gateway is down every reconnect attempt is refused: expected, not fatal.
  client.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${deviceId} did not connect`)), 20_000);
    client.once('connect', () => {
      clearTimeout(t);
      resolve(client);
    });
  });
}

interface Burst {
  published: Set<string>;
  /** Event key → which run of the gateway was up when its PUBACK arrived. */
  acked: Map<string, number>;
  publishErrors: string[];
  done: Promise<void>;
}

/**
 * Every device presses seq 1..N, at most WINDOW unacknowledged at a time; a
 * publish is "acked" when mqtt.js calls back without error (its PUBACK came).
 */
function runBurst(clients: Map<string, MqttClient>, currentRun: () => number, onAck: () => void): Burst {
  const burst: Burst = { published: new Set(), acked: new Map(), publishErrors: [], done: Promise.resolve() };
  const pressOnce = (client: MqttClient, deviceId: string, seq: number) => new Promise<void>((resolve) => {
    const payload = JSON.stringify({ seq, ts: Date.now(), type: 'panic' });
    burst.published.add(eventKey(deviceId, seq));
    client.publish(topics.event(deviceId), payload, { qos: 1 }, (err) => {
      if (err) {
        // Not expected with reconnecting clients; a device would press again, so do we.
        burst.publishErrors.push(`${deviceId}#${seq}: ${err.message}`);
        setTimeout(() => void pressOnce(client, deviceId, seq).then(resolve), 200);
        return;
      }
      if (!burst.acked.has(eventKey(deviceId, seq))) burst.acked.set(eventKey(deviceId, seq), currentRun());
      onAck();
      resolve();
    });
  });
  const device = async (deviceId: string) => {
    const client = clients.get(deviceId)!;
    const inFlight = new Set<Promise<void>>();
    for (let seq = 1; seq <= PRESSES_PER_DEVICE; seq++) {
      while (inFlight.size >= WINDOW) await Promise.race(inFlight);
      const p: Promise<void> = pressOnce(client, deviceId, seq).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
  };
  burst.done = Promise.all(deviceIds.map(device)).then(() => undefined);
  return burst;
}

/** Requests the simulator has started but not yet answered (it sleeps `latencyMs` first). */
function policeInFlight(police: PoliceSim): number {
  const s = police.stats();
  return s.requests - s.delivered - s.duplicates - s.injectedFailures - s.badSignature - s.badBody;
}

/**
 * One scenario: police latency, and the number of PUBACKs after which the
 * gateway is SIGKILLed (well into the burst, well before its end).
 */
async function crashMidBurst(latencyMs: number, killAfterAcks: number): Promise<void> {
  const police = await startPoliceSim();
  cleanups.push(() => police.stop());
  police.setBehaviour({ latencyMs });
  const dataDir = tempDataDir('safehaven-crash-');
  cleanups.push(() => removeDir(dataDir));
  const mqttPort = await freePortOutsideEphemeralRange();
  const env = gatewayEnv(police);

  // Run 1: the burst, and SIGKILL in the middle of it.
  let run = 1;
  const first = startGateway({ dataDir, mqttPort, env });
  await first.ready();
  const key = readDemoKey(dataDir);
  const clients = new Map<string, MqttClient>();
  cleanups.push(() => Promise.all([...clients.values()].map((c) => c.endAsync(true))).then(() => undefined));
  await Promise.all(deviceIds.map(async (id, i) => clients.set(id, await connectButton(mqttPort, id, demoSecret(key, id), i % 2 === 0))));

  let killedAt: { acked: number; published: number; policeInFlight: number } | null = null;
  const maybeKill = () => {
    if (killedAt || burst.acked.size < killAfterAcks) return;
    // With a slow police, also wait until a POST is in flight at the police, so the crash cuts one short.
    const inFlightAtPolice = policeInFlight(police);
    if (latencyMs > 0 && inFlightAtPolice === 0) return;
    killedAt = { acked: burst.acked.size, published: burst.published.size, policeInFlight: inFlightAtPolice };
    first.kill('SIGKILL');
  };
  const burst = runBurst(clients, () => run, maybeKill);
  // Should the whole burst be acked before the kill condition held, kill anyway: the assertions below then say why.
  void burst.done.then(() => first.kill('SIGKILL'));
  const exit1 = await first.exited;
  expect(exit1.signal, first.tail()).toBe('SIGKILL');
  expect(killedAt).not.toBeNull();
  const kill = killedAt!;
  // The crash really came mid-burst: presses were unacknowledged at that moment, and more were still to come.
  expect(kill.published).toBeGreaterThan(kill.acked);
  expect(kill.acked).toBeLessThan(TOTAL);
  if (latencyMs > 0) expect(kill.policeInFlight).toBeGreaterThan(0);

  // Run 2: same data dir, no device can reach it. Everything PUBACKed by run 1 must come out of the outbox.
  run = 2;
  const ackedByRun1 = [...burst.acked].filter(([, r]) => r === 1).map(([k]) => k);
  const second = startGateway({ dataDir, env });
  await second.ready();
  const expectedKeys = (keys: Iterable<string>) => new Set([...keys].map((k) => {
    const [deviceId, seq] = k.split('#') as [string, string];
    return deriveAlertId(deviceId, Number(seq));
  }));
  const mustArrive = expectedKeys(ackedByRun1);
  await waitFor(() => {
    const at = new Set(police.received().map((a) => a.idempotencyKey));
    return [...mustArrive].every((k) => at.has(k));
  }, `police receipt of all ${mustArrive.size} events PUBACKed before the crash (from the outbox alone)`, 60_000).catch((err: Error) => {
    const at = new Set(police.received().map((a) => a.idempotencyKey));
    const missing = ackedByRun1.filter((k) => !at.has(expectedKeys([k]).values().next().value!));
    throw new Error(`${err.message}\nLOST (PUBACKed, never at the police): ${missing.join(', ')}\n${second.tail()}`);
  });
  const recoveredPending = second.findLog((l) => typeof l.pending === 'number' && /outbox has undelivered alerts/.test(String(l.msg)))?.pending ?? 0;
  if (latencyMs > 0) {
    // A POST was in flight when run 1 died, so its alert had no 2xx and had to be in the outbox at restart.
    expect(recoveredPending).toBeGreaterThan(0);
  }
  // Nothing at the police that no device pressed.
  const publishedIds = expectedKeys(burst.published);
  expect(police.received().filter((a) => !publishedIds.has(a.idempotencyKey)).map((a) => a.idempotencyKey)).toEqual([]);
  const stop2 = await second.stop();
  expect(stop2, second.tail()).toEqual({ code: 0, signal: null });

  // Run 3: back on port P. The devices reconnect by themselves, resend what was never acknowledged, and finish the burst.
  run = 3;
  const third = startGateway({ dataDir, mqttPort, env });
  await third.ready();
  await Promise.race([
    burst.done,
    third.exited.then((e) => Promise.reject(new Error(`run 3 exited early: ${JSON.stringify(e)}\n${third.tail()}`))),
    new Promise((_, reject) => setTimeout(() => reject(new Error(`burst did not complete: ${burst.acked.size}/${TOTAL} acked\n${third.tail()}`)), 60_000).unref()),
  ]);
  expect(burst.published.size).toBe(TOTAL);
  expect(burst.acked.size).toBe(TOTAL);

  const allIds = expectedKeys(burst.published);
  await waitFor(() => police.received().length >= allIds.size && police.received().every((a) => allIds.has(a.idempotencyKey)), `all ${TOTAL} keys at the police`, 60_000)
    .catch((err: Error) => {
      const at = new Set(police.received().map((a) => a.idempotencyKey));
      throw new Error(`${err.message}: ${at.size} distinct keys, missing ${[...allIds].filter((k) => !at.has(k)).length}\n${third.tail()}`);
    });
  // Exactly one record per key, and exactly the keys pressed: none lost, none under a second key.
  const keysAtPolice = police.received().map((a) => a.idempotencyKey);
  expect(new Set(keysAtPolice).size).toBe(keysAtPolice.length);
  expect(new Set(keysAtPolice)).toEqual(allIds);

  const stats = police.stats();
  const repeated = police.received().filter((a) => a.attempts.length > 1).map((a) => `${a.idempotencyKey} attempts=${a.attempts.join(',')}`);
  console.info(
    `[crash-recovery latency=${latencyMs}ms] killed after ${kill.acked} PUBACKs with ${kill.published - kill.acked} presses in flight ` +
      `and ${kill.policeInFlight} police POSTs in flight; PUBACKed by run 1: ${ackedByRun1.length}; outbox pending at restart: ${recoveredPending}; ` +
      `acked by run 3: ${[...burst.acked.values()].filter((r) => r === 3).length}; police: ${stats.delivered} distinct keys, ` +
      `${stats.duplicates} duplicate deliveries (same key, allowed)${repeated.length ? `: ${repeated.join('; ')}` : ''}; ` +
      `publish errors: ${burst.publishErrors.length}`,
  );
  expect(stats.badSignature + stats.badBody).toBe(0);
  expect((await third.stop()).code).toBe(0);
}

describe('SIGKILL mid-burst, restart on the same data dir', () => {
  it('loses no PUBACKed press and delivers every press under its one Idempotency-Key (fast police)', async () => {
    await crashMidBurst(0, 150);
  }, TEST_TIMEOUT_MS);

  it('the same with a slow police endpoint, so the kill cuts POSTs short (duplicates under the same key are allowed)', async () => {
    await crashMidBurst(200, 80);
  }, TEST_TIMEOUT_MS);
});
