// The gateway as users run it: a child process, configured by env vars.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { topics } from '../protocol/index.ts';
import { demoSecret, readDemoKey } from '../gateway/registry/demo-credentials.ts';
import { connectDevice, publish } from './support/harness.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function runGateway(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], {
    // No managed influxd unless a test asks: several would contend for port 8086.
    env: { ...process.env, SAFEHAVEN_LOG_LEVEL: 'info', SAFEHAVEN_INFLUX_MANAGED: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const ready = async (): Promise<{ mqttPort: number; httpPort: number }> => {
    for (let i = 0; i < 600 && !/"ready":true/.test(stdout); i++) await new Promise((r) => setTimeout(r, 50));
    const line = stdout.split('\n').find((l) => l.includes('"ready":true'));
    if (!line) throw new Error(`gateway did not start:\n${stderr}\n${stdout}`);
    return JSON.parse(line) as { mqttPort: number; httpPort: number };
  };
  return { child, exited, ready, output: () => ({ stdout, stderr }) };
}

describe('configuration errors stop the gateway with a message naming the setting', () => {
  it.each([
    [{ SAFEHAVEN_MQTT_PORT: 'abc' }, 'SAFEHAVEN_MQTT_PORT'],
    [{ SAFEHAVEN_HTTP_PORT: '99999' }, 'SAFEHAVEN_HTTP_PORT'],
    [{ SAFEHAVEN_POLICE_URL: 'not a url' }, 'SAFEHAVEN_POLICE_URL'],
    [{ SAFEHAVEN_CONFIG: '/nonexistent/safehaven.json' }, 'SAFEHAVEN_CONFIG'],
  ])('%j', async (env, name) => {
    const run = runGateway(env);
    expect(await run.exited).toBe(2);
    expect(run.output().stderr).toMatch(new RegExp(`configuration error: .*${name}`));
  });
});

it('starts on defaults, says where everything is, and stops cleanly on SIGTERM with a device connected', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'safehaven-proc-'));
  dirs.push(dataDir);
  const run = runGateway({ SAFEHAVEN_DATA_DIR: dataDir, SAFEHAVEN_MQTT_PORT: '0', SAFEHAVEN_HTTP_PORT: '0', SAFEHAVEN_DEMO_STORES: '3', SAFEHAVEN_DEMO_HOMES: '1' });
  const { mqttPort, httpPort } = await run.ready();
  const { stderr } = run.output();
  for (const part of ['MQTT', 'HTTP API', 'Dashboard', 'Data dir', 'Police route', 'POLICE SIMULATOR', 'InfluxDB', 'Admin token']) expect(stderr).toContain(part);
  const health = (await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json()) as { police: { simulator: boolean }; warning: string };
  expect(health.police.simulator).toBe(true);
  expect(health.warning).toMatch(/SIMULATOR/);

  const id = 'pb-store-0001';
  const device = await connectDevice(`mqtt://127.0.0.1:${mqttPort}`, id, demoSecret(readDemoKey(dataDir), id));
  await publish(device, topics.event(id), JSON.stringify({ seq: 1, ts: Date.now(), type: 'panic' }));
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(0);
  expect(run.output().stdout).toContain('stopped cleanly');
  await device.endAsync(true);
});
