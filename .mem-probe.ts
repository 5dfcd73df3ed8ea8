// temporary probe (not committed): N devices on a gateway child, RSS delta and a heap snapshot
import { readdirSync } from 'node:fs';
import { readDemoKey } from './gateway/registry/demo-credentials.ts';
import { Fleet } from './device-sim/fleet.ts';
import { demoFleet } from './device-sim/scenarios.ts';
import { freePort, readRssKiB, removeDir, startGateway, tempDataDir } from './test/support/gateway-process.ts';
const N = Number(process.argv[2] ?? 2000);
const SNAP = process.argv[3] === "snap";
const CONNECT = Number(process.argv[4] ?? N);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dataDir = tempDataDir('mem-probe-');
const mqttPort = await freePort();
const gw = startGateway({ dataDir, mqttPort, httpPort: await freePort(), hardTimeoutMs: 600_000,
  env: { SAFEHAVEN_POLICE_URL: 'http://127.0.0.1:9/', SAFEHAVEN_POLICE_SECRET: 'x'.repeat(30), SAFEHAVEN_DEMO_STORES: String(N), SAFEHAVEN_DEMO_HOMES: '0', SAFEHAVEN_ADMIN_TOKEN: 'a'.repeat(32), SAFEHAVEN_LOG_LEVEL: 'warn' },
  nodeArgs: ['--heapsnapshot-signal=SIGUSR2', '--diagnostic-dir=' + (process.env.SNAPDIR ?? '/tmp/wt10/snap')], keep: (l) => (l.level ?? 0) >= 50 });
const { connect } = await import('node:net');
for (;;) { const ok = await new Promise<boolean>((r) => { const s = connect(mqttPort, '127.0.0.1'); s.once('connect', () => { s.destroy(); r(true); }); s.once('error', () => r(false)); }); if (ok) break; await sleep(200); }
await sleep(2000);
const idle = readRssKiB(gw.pid)!;
const fleet = new Fleet({ host: '127.0.0.1', port: mqttPort, devices: demoFleet({ stores: N, homes: 0, demoKey: readDemoKey(dataDir) }).slice(0, CONNECT), heartbeatSec: { store: 60, home: 60 }, connectConcurrency: 64, deliveredByAck: false, ackTimeoutMs: 60_000 });
await fleet.connectAll(() => {});
fleet.start();
await sleep(4000);
const rss = readRssKiB(gw.pid)!;
console.log(`N ${N}: idle ${(idle / 1024).toFixed(1)} MiB, connected ${(rss / 1024).toFixed(1)} MiB, ${((rss - idle) / Math.max(1, CONNECT)).toFixed(2)} KiB/device`);
if (SNAP) { process.kill(gw.pid, 'SIGUSR2'); await sleep(15000); console.log(readdirSync(process.env.SNAPDIR ?? '/tmp/wt10/snap')); }
fleet.stop();
await gw.stop(20_000);
removeDir(dataDir);
