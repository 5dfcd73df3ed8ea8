// Starts a real gateway (real aedes over TCP, real SQLite, real HTTP) on
// ephemeral ports with a throwaway data dir, and a real police simulator
// over HTTP in front of it. Tests talk to both over sockets only.
import mqtt, { type MqttClient } from 'mqtt';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ConfigSchema, type Config } from '../../gateway/config.ts';
import { Gateway, type GatewayDeps, type GatewayInfo } from '../../gateway/gateway.ts';
import { createRootLogger } from '../../gateway/logger.ts';
import { PoliceSim } from '../../gateway/police-sim/police-sim.ts';
import { demoSecret, readDemoKey } from '../../gateway/registry/demo-credentials.ts';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
export const POLICE_SECRET = 'test-police-secret-0123456789';

export type LogLine = Record<string, unknown> & { level: number; msg: string };

/** Captures the gateway's JSON log lines so tests can assert on them. */
export class LogCapture extends Writable {
  readonly lines: LogLine[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line) this.lines.push(JSON.parse(line) as LogLine);
    done();
  }
  find(predicate: (l: LogLine) => boolean): LogLine | undefined {
    return this.lines.find(predicate);
  }
}

export interface TestGateway {
  gateway: Gateway;
  info: GatewayInfo;
  config: Config;
  police: PoliceSim;
  logs: LogCapture;
  mqttUrl: string;
  httpUrl: string;
  deviceSecret(deviceId: string): string;
  api(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; json: any }>;
  stop(): Promise<void>;
}

export async function startPoliceSim(port = 0): Promise<PoliceSim> {
  const sim = new PoliceSim({ host: '127.0.0.1', port, secret: POLICE_SECRET, log: pino({ level: 'silent' }) });
  await sim.start();
  return sim;
}

export async function startTestGateway(
  patch: Record<string, unknown> = {},
  opts: { police?: PoliceSim; dataDir?: string; deps?: Omit<GatewayDeps, 'log'> } = {},
): Promise<TestGateway> {
  const police = opts.police ?? (await startPoliceSim());
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'safehaven-test-'));
  const config = ConfigSchema.parse({
    dataDir,
    logLevel: 'debug',
    adminToken: ADMIN_TOKEN,
    mqtt: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    police: { url: police.url(), secret: POLICE_SECRET, retryBaseMs: 50, retryMaxMs: 400, timeoutMs: 2000 },
    demo: { stores: 4, homes: 2 },
    // Tests of other features never start an influxd; the latency tests ask for one.
    influx: { managed: false },
    // No tile server on the test network: the dashboard map draws sites on a plain background.
    dashboard: { tileUrl: '' },
    ...patch,
  });
  const logs = new LogCapture();
  const gateway = new Gateway(config, { ...opts.deps, log: createRootLogger('debug', logs) });
  const info = await gateway.start();
  const httpUrl = `http://127.0.0.1:${info.httpPort}`;
  return {
    gateway, info, config, police, logs, httpUrl,
    mqttUrl: `mqtt://127.0.0.1:${info.mqttPort}`,
    deviceSecret: (deviceId) => demoSecret(readDemoKey(dataDir), deviceId),
    async api(method, path, body, token = ADMIN_TOKEN) {
      const res = await fetch(`${httpUrl}${path}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : null };
    },
    async stop() {
      await gateway.stop();
      if (!opts.police) await police.stop();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A device over a real MQTT connection; rejects with the CONNACK error if refused. */
export function connectDevice(url: string, deviceId: string, secret: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId: deviceId, username: deviceId, password: secret, reconnectPeriod: 0, connectTimeout: 5000, ...extra });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

/** Collects every message a client receives, parsed as JSON. */
export function collect(client: MqttClient): Array<{ topic: string; body: any }> {
  const seen: Array<{ topic: string; body: any }> = [];
  client.on('message', (topic, payload) => {
    try {
      seen.push({ topic, body: JSON.parse(payload.toString()) });
    } catch {
      seen.push({ topic, body: payload.toString() });
    }
  });
  return seen;
}

export async function waitFor<T>(probe: () => T | undefined | false | null | Promise<T | undefined | false | null>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function publish(client: MqttClient, topic: string, payload: string | Buffer, opts: mqtt.IClientPublishOptions = { qos: 1 }): Promise<void> {
  return new Promise((resolve, reject) => client.publish(topic, payload, opts, (err) => (err ? reject(err) : resolve())));
}
