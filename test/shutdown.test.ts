// Clean shutdown of the real gateway process: SIGTERM / SIGINT with a police
// POST in flight, a second signal during shutdown, and refusing to start on a
// data dir it cannot write. After each stop the gateway is restarted on the
// same data dir to show that nothing it had acknowledged was lost.
import { chmodSync, chownSync, mkdirSync, readdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { deriveAlertId, IDEMPOTENCY_HEADER, topics } from '../protocol/index.ts';
import { demoSecret, readDemoKey } from '../gateway/registry/demo-credentials.ts';
import { connectDevice, POLICE_SECRET, publish, startPoliceSim, waitFor } from './support/harness.ts';
import {
  asUser, freePortOutsideEphemeralRange, isRoot, killAllGateways, NOBODY, removeDir, startGateway, tempDataDir, type GatewayProcess,
} from './support/gateway-process.ts';

const TEST_TIMEOUT_MS = 120_000;
const BUTTON = 'pb-store-0001';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await killAllGateways();
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A police endpoint that takes a request and never answers: the extreme slow
 * server. It records the Idempotency-Key of each request it is holding.
 */
class HungPolice {
  readonly keys: string[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(readonly port: number) {
    this.server = createServer((req: IncomingMessage, _res: ServerResponse) => {
      const key = req.headers[IDEMPOTENCY_HEADER];
      this.keys.push(Array.isArray(key) ? key[0]! : key ?? '');
      req.resume();
      // no answer, ever
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((ok, fail) => {
      this.server.once('error', fail);
      this.server.listen(this.port, '127.0.0.1', () => ok());
    });
    return this;
  }

  url(): string {
    return `http://127.0.0.1:${this.port}/alerts`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

function env(policeUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    SAFEHAVEN_POLICE_URL: policeUrl,
    SAFEHAVEN_POLICE_SECRET: POLICE_SECRET,
    SAFEHAVEN_DEMO_STORES: '2',
    SAFEHAVEN_DEMO_HOMES: '0',
    SAFEHAVEN_ADMIN_TOKEN: 'shutdown-test-admin-token-0123456789',
    ...extra,
  };
}

function newDataDir(): string {
  const dir = tempDataDir('safehaven-shutdown-');
  cleanups.push(() => removeDir(dir));
  return dir;
}

/** One press of the demo button, returned once the gateway has PUBACKed it. */
async function press(gw: GatewayProcess, dataDir: string, seq: number): Promise<string> {
  const device = await connectDevice(gw.mqttUrl, BUTTON, demoSecret(readDemoKey(dataDir), BUTTON));
  try {
    await publish(device, topics.event(BUTTON), JSON.stringify({ seq, ts: Date.now(), type: 'panic' }));
  } finally {
    await device.endAsync(true);
  }
  return deriveAlertId(BUTTON, seq);
}

/**
 * A gateway whose only police POST hangs: press once, wait until the police
 * endpoint holds the request, and hand back everything needed to stop it
 * mid-POST and to restart it later against a working police on the same URL.
 */
async function gatewayWithHungPost(timeoutMs: number) {
  const port = await freePortOutsideEphemeralRange();
  const hung = await new HungPolice(port).start();
  cleanups.push(() => hung.stop());
  const dataDir = newDataDir();
  const gw = startGateway({ dataDir, env: env(hung.url(), { SAFEHAVEN_POLICE_TIMEOUT_MS: String(timeoutMs) }) });
  await gw.ready();
  const alertId = await press(gw, dataDir, 1);
  await waitFor(() => hung.keys.includes(alertId), 'the police POST to be in flight', 30_000);
  return { gw, hung, dataDir, alertId, port };
}

/** Restarts on the same data dir with a working police simulator on the same URL; resolves once the alert is delivered. */
async function restartAndExpectDelivery(dataDir: string, port: number, hung: HungPolice, alertId: string): Promise<void> {
  await hung.stop();
  const police = await startPoliceSim(port);
  cleanups.push(() => police.stop());
  const gw = startGateway({ dataDir, env: env(police.url()) });
  await gw.ready();
  const recovered = await gw.waitForLog((l) => /outbox has undelivered alerts/.test(String(l.msg)), 'the outbox recovery warning');
  expect(recovered.pending).toBe(1);
  await waitFor(() => police.received().find((a) => a.idempotencyKey === alertId), `delivery of ${alertId} after the restart`, 30_000);
  await gw.waitForLog((l) => l.msg === 'alert delivered to police' && l.alertId === alertId, 'the delivery log line');
  expect(police.received().map((a) => a.idempotencyKey)).toEqual([alertId]);
  expect(await gw.stop()).toEqual({ code: 0, signal: null });
}

describe('SIGTERM with a police POST in flight', () => {
  it('lets the attempt time out, records it, exits 0 by itself; a restart delivers the alert under the same key', async () => {
    // Per-attempt timeout (1.5 s) shorter than the shutdown grace (5 s): the attempt ends within the grace.
    const { gw, hung, dataDir, alertId, port } = await gatewayWithHungPost(1500);
    gw.kill('SIGTERM');
    const exit = await gw.exited;
    expect(exit, gw.tail()).toEqual({ code: 0, signal: null });
    expect(gw.findLog((l) => l.msg === 'stopped cleanly'), gw.tail()).toBeDefined();
    // The timed-out attempt is recorded (the row stays due), not lost in a closing store.
    expect(gw.findLog((l) => l.level === 60 || /not recorded|could not record/.test(String(l.msg))), gw.tail()).toBeUndefined();
    await restartAndExpectDelivery(dataDir, port, hung, alertId);
  }, TEST_TIMEOUT_MS);

  it('gives up on an attempt that outlives the shutdown grace, exits 0, and a restart delivers the alert', async () => {
    // Per-attempt timeout (30 s) far beyond the 5 s grace: shutdown must cut the POST, not wait for it.
    const { gw, hung, dataDir, alertId, port } = await gatewayWithHungPost(30_000);
    gw.kill('SIGTERM');
    const exit = await gw.exited;
    expect(exit, gw.tail()).toEqual({ code: 0, signal: null });
    expect(gw.findLog((l) => l.msg === 'stopped cleanly'), gw.tail()).toBeDefined();
    await restartAndExpectDelivery(dataDir, port, hung, alertId);
  }, TEST_TIMEOUT_MS);

  it('exits at once on a second SIGTERM during shutdown (code 1), and still loses nothing', async () => {
    const { gw, hung, dataDir, alertId, port } = await gatewayWithHungPost(30_000);
    gw.kill('SIGTERM');
    await gw.waitForLog((l) => l.signal === 'SIGTERM' && /^shutting down/.test(String(l.msg)), 'the shutdown log line');
    gw.kill('SIGTERM');
    const exit = await gw.exited;
    expect(exit, gw.tail()).toEqual({ code: 1, signal: null });
    expect(gw.findLog((l) => /second signal/.test(String(l.msg))), gw.tail()).toBeDefined();
    expect(gw.findLog((l) => l.msg === 'stopped cleanly')).toBeUndefined();
    await restartAndExpectDelivery(dataDir, port, hung, alertId);
  }, TEST_TIMEOUT_MS);
});

it('stops cleanly on SIGINT (Ctrl-C) after delivering, exit code 0', async () => {
  const police = await startPoliceSim();
  cleanups.push(() => police.stop());
  const dataDir = newDataDir();
  const gw = startGateway({ dataDir, env: env(police.url()) });
  await gw.ready();
  const alertId = await press(gw, dataDir, 7);
  await waitFor(() => police.received().find((a) => a.idempotencyKey === alertId), 'delivery');
  gw.kill('SIGINT');
  expect(await gw.exited, gw.tail()).toEqual({ code: 0, signal: null });
  expect(gw.findLog((l) => l.signal === 'SIGINT' && /^shutting down/.test(String(l.msg)))).toBeDefined();
  expect(gw.findLog((l) => l.msg === 'stopped cleanly'), gw.tail()).toBeDefined();
}, TEST_TIMEOUT_MS);

describe('a data dir the gateway cannot write', () => {
  // Root writes through any file mode, so as root the gateway runs as `nobody` for these tests.
  const user = () => {
    if (!isRoot()) return undefined;
    const u = asUser(NOBODY);
    cleanups.push(() => removeDir(u.home));
    return u;
  };
  const makeReadOnly = (dir: string) => {
    if (isRoot()) {
      for (const f of readdirSync(dir)) chmodSync(`${dir}/${f}`, 0o444);
      chownSync(dir, NOBODY.uid, NOBODY.gid);
    }
    chmodSync(dir, 0o555);
  };

  async function expectRefusal(gw: GatewayProcess, dataDir: string): Promise<void> {
    const exit = await gw.exited;
    expect(exit.signal, gw.tail()).toBeNull();
    expect(exit.code, gw.tail()).not.toBe(0);
    const fatal = gw.findLog((l) => l.level === 60);
    expect(fatal, gw.tail()).toBeDefined();
    expect(fatal!.msg).toMatch(/failed to start/);
    expect(JSON.stringify(fatal!.err)).toMatch(/SQLITE_(CANTOPEN|READONLY)|EACCES|EROFS|read-?only/i);
    expect(gw.findLog((l) => l.ready === true)).toBeUndefined();
    expect(gw.output().stderr, gw.tail()).toContain(`safehaven: cannot start: cannot open the store`);
    expect(gw.output().stderr).toContain(dataDir);
  }

  it('refuses to start on an empty read-only data dir: non-zero exit, a fatal log line', async () => {
    const parent = tempDataDir('safehaven-ro-');
    cleanups.push(() => removeDir(parent));
    chmodSync(parent, 0o755);
    const dataDir = `${parent}/data`;
    mkdirSync(dataDir);
    makeReadOnly(dataDir);
    const gw = startGateway({ dataDir, env: env('http://127.0.0.1:9/alerts'), user: user() });
    await expectRefusal(gw, dataDir);
  }, TEST_TIMEOUT_MS);

  it('refuses to start on an existing store whose dir turned read-only (e.g. remounted ro)', async () => {
    const parent = tempDataDir('safehaven-ro-');
    cleanups.push(() => removeDir(parent));
    chmodSync(parent, 0o755);
    const dataDir = `${parent}/data`;
    mkdirSync(dataDir);
    if (isRoot()) chownSync(dataDir, NOBODY.uid, NOBODY.gid);
    const u = user();
    const first = startGateway({ dataDir, env: env('http://127.0.0.1:9/alerts'), user: u });
    await first.ready();
    expect(await first.stop(), first.tail()).toEqual({ code: 0, signal: null });
    expect(readdirSync(dataDir)).toContain('safehaven.db');

    makeReadOnly(dataDir);
    const second = startGateway({ dataDir, env: env('http://127.0.0.1:9/alerts'), user: u });
    await expectRefusal(second, dataDir);
  }, TEST_TIMEOUT_MS);
});
