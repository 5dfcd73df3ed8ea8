// `safehaven <command>`: one CLI for the gateway, its simulators and tools.
// In a checkout: `npm run safehaven -- <command>`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { SimDongle } from '../../device-sim/dongle.ts';
import { press, PressError } from '../../device-sim/press.ts';
import { SerialWire } from '../../device-sim/pty.ts';
import { demoFleet, SCENARIOS } from '../../device-sim/scenarios.ts';
import { runSim } from '../../device-sim/sim-run.ts';
import { deriveRadioKey, describeIssues, DeviceId, DeviceType, EventType, formatDeviceEvent, SiteId } from '../../protocol/index.ts';
import { ServiceAccountSchema } from '../config.ts';
import { ApiCommandError, apiTarget, importSites, provisionDevice } from './api-commands.ts';
import { POLICE_SECRET_FILE } from '../data-dir-secrets.ts';
import { createRootLogger } from '../logger.ts';
import { runGateway } from '../main.ts';
import { PoliceSim } from '../police-sim/police-sim.ts';
import { demoSecret, readDemoKey } from '../registry/demo-credentials.ts';
import { hashSecret, STRONG_COST } from '../registry/secrets.ts';

const USAGE = `usage: safehaven <command> [options]

commands:
  gateway                       run the gateway (same as npm start)
  police-sim [options]          run a stand-in police endpoint
      --host H --port P           listen address (default 127.0.0.1:8090)
      --secret S                  HMAC key; default: <data-dir>/police-secret
      --latency-ms N --fail-rate R --fail-status S   inject slowness and failures
  sim [options]                 a fleet of simulated stores and homes, each on its own
                                MQTT connection with its demo credentials: connects,
                                heartbeats, presses per scenario, prints a summary table
      --scenario S                steady (default), burst, reconnect-storm, flaky, clock-skew
      --stores N --homes N        the gateway's demo registry size (default 656 / 3000)
      --devices N                 only the first N of its devices (up to 50000)
      --presses N                 burst / reconnect-storm: presses at once (default 500)
      --rate R --duration-sec S   steady / flaky / clock-skew: R presses/s for S s (default 2 / 30)
      --heartbeat-sec N           heartbeat interval of both classes (default: the gateway's config)
      --loss R --drops R          flaky: message loss rate, drops per device per second
      --skew R                    clock-skew: share of devices with a wrong clock (default 0.3)
      --dongle PATH --radio N     also N radio devices (the last of the fleet) behind a
                                  simulated dongle on serial port PATH
      --source-ips N              spread connections over 127.0.0.1..N (past ~28,000 ports)
      --drain-sec N               how long to wait for deliveries (default 60)
      --seed N                    random seed (default 1)
      --mqtt URL                  default mqtt://127.0.0.1:$SAFEHAVEN_MQTT_PORT or :1883
  sim press <deviceId> [options]  press one button and show the acks
      --secret S                  device secret; default: derived for demo devices
      --type T                    panic|intrusion|door|tamper|test (default panic)
      --seq N                     default: the current time in ms (always increasing)
      --mqtt URL                  default mqtt://127.0.0.1:$SAFEHAVEN_MQTT_PORT or :1883
      --wait-ms N                 how long to wait for the police ack (default 10000)
  sim dongle --path P --devices ID[,ID…] [options]
                                a simulated RF receiver dongle on a serial port or pty end:
                                boots, presses, heartbeats, prints the gateway's ACK lines
      --press ID[,ID…]            press these devices once, after the boot line
      --type T                    event type of the presses (default panic)
      --secret S                  radio key from this secret (one device only);
                                  default: derived for demo devices
      --receiver ID               the dongle's receiver id (default rx-sim-01)
      --heartbeat-sec N           heartbeats and health every N s (default 60)
  import FILE [--existing skip|fail] [--url U --token T]
                                import sites from a .csv (header: id,kind,name,address,
                                phone,lat,lon,district,policeStation) or .json file
                                into the running gateway; all rows or none
  provision --site ID --type T [--id ID] [--url U --token T]
                                provision a device; prints its id and secret (once)
                                --url default http://127.0.0.1:$SAFEHAVEN_HTTP_PORT or :8080
                                --token default $SAFEHAVEN_ADMIN_TOKEN or <data-dir>/admin-token
  hash-password                 read a service account password on stdin, print its
                                scrypt hash for mqtt.serviceAccounts[].password
  frame --device ID --secret S --seq N --type T [--ts MS --rssi=DBM --battery PCT]
                                print one valid serial device-event line, signed with
                                the radio key derived from the secret
                                (negative values need "=": --rssi=-61)

common: --data-dir D (default $SAFEHAVEN_DATA_DIR or ./data)
`;

class UsageError extends Error {}

const intArg = (name: string) => z.coerce.number({ error: `--${name} must be a number` }).int(`--${name} must be a whole number`);

function parse<S extends z.ZodType>(schema: S, values: unknown): z.infer<S> {
  const result = schema.safeParse(values);
  if (result.success) return result.data;
  const { field, message } = describeIssues(result.error);
  throw new UsageError(field ? `--${field}: ${message.replace(`${field}: `, '')}` : message);
}

function dataDir(values: { 'data-dir'?: string }): string {
  return values['data-dir'] ?? process.env.SAFEHAVEN_DATA_DIR ?? './data';
}

async function policeSim(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: {
    host: { type: 'string' }, port: { type: 'string' }, secret: { type: 'string' }, 'data-dir': { type: 'string' },
    'latency-ms': { type: 'string' }, 'fail-rate': { type: 'string' }, 'fail-status': { type: 'string' },
  } });
  const opts = parse(z.object({
    host: z.string().default('127.0.0.1'),
    port: intArg('port').min(0).max(65535).default(8090),
    'latency-ms': intArg('latency-ms').min(0).default(0),
    'fail-rate': z.coerce.number().min(0).max(1).default(0),
    'fail-status': intArg('fail-status').min(300).max(599).default(503),
  }), values);
  const secret = values.secret ?? readFileSync(join(dataDir(values), POLICE_SECRET_FILE), 'utf8').trim();
  const log = createRootLogger(process.env.SAFEHAVEN_LOG_LEVEL ?? 'info');
  const sim = new PoliceSim({
    host: opts.host, port: opts.port, secret, log, latencyMs: opts['latency-ms'], failRate: opts['fail-rate'], failStatus: opts['fail-status'],
  });
  await sim.start();
  process.stderr.write(`police-sim listening: POST ${sim.url()} (GET it for what was received, POST /control to change behaviour)\n`);
  const stop = () => void sim.stop().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function simPress(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: {
    secret: { type: 'string' }, type: { type: 'string' }, seq: { type: 'string' }, mqtt: { type: 'string' },
    'wait-ms': { type: 'string' }, 'data-dir': { type: 'string' },
  } });
  const opts = parse(z.object({
    deviceId: DeviceId,
    type: EventType.default('panic'),
    seq: intArg('seq').min(0).default(Date.now()),
    'wait-ms': intArg('wait-ms').min(100).default(10_000),
  }), { ...values, deviceId: positionals[0] });
  const secret = values.secret ?? demoSecret(readDemoKey(dataDir(values)), opts.deviceId);
  const url = values.mqtt ?? `mqtt://127.0.0.1:${process.env.SAFEHAVEN_MQTT_PORT ?? 1883}`;
  process.stderr.write(`pressing ${opts.deviceId} (${opts.type}, seq ${opts.seq}) via ${url}\n`);
  const result = await press({
    url, deviceId: opts.deviceId, secret, type: opts.type, seq: opts.seq, waitMs: opts['wait-ms'], until: 'acknowledged',
    onAck: (ack, ms) => process.stderr.write(`  +${ms} ms  ${ack.state.padEnd(12)} alert ${ack.alertId}\n`),
  });
  process.stderr.write(`PUBACK after ${result.pubackMs} ms (the alert was stored before it was sent)\n`);
  if (!result.reached) {
    process.stderr.write(`no police acknowledgement within ${opts['wait-ms']} ms: the gateway keeps retrying; see /api/alerts\n`);
    process.exitCode = 3;
  }
}

async function simFleet(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: {
    scenario: { type: 'string' }, stores: { type: 'string' }, homes: { type: 'string' }, devices: { type: 'string' },
    presses: { type: 'string' }, rate: { type: 'string' }, 'duration-sec': { type: 'string' }, 'heartbeat-sec': { type: 'string' },
    loss: { type: 'string' }, drops: { type: 'string' }, skew: { type: 'string' }, dongle: { type: 'string' }, radio: { type: 'string' },
    'source-ips': { type: 'string' }, 'drain-sec': { type: 'string' }, seed: { type: 'string' }, mqtt: { type: 'string' }, 'data-dir': { type: 'string' },
  } });
  const rate = (name: string) => z.coerce.number({ error: `--${name} must be a number` }).min(0).max(1);
  const opts = parse(z.object({
    scenario: z.enum(SCENARIOS).default('steady'),
    stores: intArg('stores').min(0).max(100_000).default(656),
    homes: intArg('homes').min(0).max(100_000).default(3000),
    devices: intArg('devices').min(1).max(50_000).optional(),
    presses: intArg('presses').min(0).max(100_000).default(500),
    rate: z.coerce.number().min(0).max(10_000).default(2),
    'duration-sec': intArg('duration-sec').min(1).max(86_400).default(30),
    'heartbeat-sec': intArg('heartbeat-sec').min(1).max(86_400).optional(),
    loss: rate('loss').default(0.05),
    drops: rate('drops').default(0.01),
    skew: rate('skew').default(0.3),
    dongle: z.string().min(1).optional(),
    radio: intArg('radio').min(1).max(1000).default(10),
    'source-ips': intArg('source-ips').min(1).max(254).default(1),
    'drain-sec': intArg('drain-sec').min(1).max(3600).default(60),
    seed: intArg('seed').default(1),
  }), values);
  const url = new URL(values.mqtt ?? `mqtt://127.0.0.1:${process.env.SAFEHAVEN_MQTT_PORT ?? 1883}`);
  const demoKey = readDemoKey(dataDir(values));
  const all = demoFleet({ stores: opts.stores, homes: opts.homes, demoKey, limit: opts.devices });
  const radio = opts.dongle ? all.splice(Math.max(0, all.length - opts.radio)) : [];
  let wire: SerialWire | null = null;
  if (opts.dongle) {
    wire = new SerialWire();
    await wire.open(opts.dongle);
  }
  const heartbeat = opts['heartbeat-sec'];
  const result = await runSim({
    host: url.hostname, port: Number(url.port || 1883), devices: all, scenario: opts.scenario, presses: opts.presses,
    ratePerSec: opts.rate, durationSec: opts['duration-sec'], seed: opts.seed, drainTimeoutMs: opts['drain-sec'] * 1000,
    heartbeatSec: heartbeat ? { store: heartbeat, home: heartbeat } : undefined,
    localAddresses: Array.from({ length: opts['source-ips'] }, (_, i) => `127.0.0.${i + 1}`),
    flaky: { lossRate: opts.loss, dropPerSec: opts.drops }, skewFraction: opts.skew,
    dongle: wire ? { wire, receiverId: 'rx-sim-01', devices: radio, radioKey: (id) => deriveRadioKey(demoSecret(demoKey, id)) } : undefined,
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  await wire?.close();
  process.stdout.write(result.stats.table(`sim ${opts.scenario}: ${all.length} MQTT devices${radio.length ? ` + ${radio.length} radio devices` : ''} on ${url.host}`));
  if (result.reconnectMs !== null) process.stdout.write(`  ${'reconnect storm: all back in'.padEnd(30)} ${(result.reconnectMs / 1000).toFixed(2)} s\n`);
  if (result.dongle) process.stdout.write(`  ${'radio presses sent/acked/deliv.'.padEnd(30)} ${result.dongle.sent} / ${result.dongle.acked} / ${result.dongle.delivered}\n`);
  // "Delivered" is the `acknowledged` ack a device heard: one sent while it was offline is not heard again.
  if (result.undelivered.length > 0) {
    process.stderr.write(`${result.undelivered.length} presses without an acknowledged ack (first: ${result.undelivered.slice(0, 5).join(', ')}); see /api/alerts\n`);
    process.exitCode = 3;
  }
}

async function simDongle(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: {
    path: { type: 'string' }, devices: { type: 'string' }, press: { type: 'string' }, type: { type: 'string' },
    secret: { type: 'string' }, receiver: { type: 'string' }, 'heartbeat-sec': { type: 'string' }, 'data-dir': { type: 'string' },
  } });
  const idList = z.string().transform((list) => list.split(',')).pipe(z.array(DeviceId).min(1));
  const opts = parse(z.object({
    path: z.string().min(1),
    devices: idList,
    press: idList.optional(),
    type: EventType.default('panic'),
    receiver: DeviceId.default('rx-sim-01'),
    'heartbeat-sec': intArg('heartbeat-sec').min(1).max(86_400).default(60),
  }), values);
  if (values.secret !== undefined && opts.devices.length !== 1) throw new UsageError('--secret: only with one device in --devices');
  const stranger = opts.press?.find((id) => !opts.devices.includes(id));
  if (stranger) throw new UsageError(`--press: ${stranger} is not in --devices`);
  const radioKey = (id: string) => deriveRadioKey(values.secret ?? demoSecret(readDemoKey(dataDir(values)), id));

  const wire = new SerialWire();
  await wire.open(opts.path);
  // Seqs start at the current time, so that they keep increasing from one run to the next.
  const devices = opts.devices.map((id) => ({ id, radioKey: radioKey(id), seq: Date.now() }));
  const dongle = new SimDongle(wire, { receiverId: opts.receiver, devices }).start();
  dongle.onAck((ack) => process.stderr.write(`  ACK ${ack.state.padEnd(12)} ${ack.deviceId} seq ${ack.seq} alert ${ack.alertId}\n`));
  dongle.boot();
  dongle.health();
  process.stderr.write(`dongle ${opts.receiver} on ${opts.path} with ${opts.devices.join(', ')}; Ctrl-C to stop\n`);
  for (const id of opts.press ?? []) {
    const sent = dongle.press(id, opts.type);
    process.stderr.write(`pressed ${id} (${opts.type}, seq ${sent.seq}): alert ${sent.alertId}\n`);
  }
  const timer = setInterval(() => {
    for (const id of opts.devices) dongle.heartbeat(id);
    dongle.health();
  }, opts['heartbeat-sec'] * 1000);
  const stop = () => {
    clearInterval(timer);
    void wire.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function importCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: {
    existing: { type: 'string' }, url: { type: 'string' }, token: { type: 'string' }, 'data-dir': { type: 'string' },
  } });
  const opts = parse(z.object({ file: z.string({ error: 'the file to import is missing' }), existing: z.enum(['skip', 'fail']).default('fail') }),
    { ...values, file: positionals[0] });
  const result = await importSites(apiTarget(values, dataDir(values)), opts.file, opts.existing);
  process.stderr.write(`imported ${result.added} sites${result.skipped.length ? `, skipped ${result.skipped.length} that exist already` : ''}\n`);
}

async function provisionCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: {
    site: { type: 'string' }, type: { type: 'string' }, id: { type: 'string' }, url: { type: 'string' }, token: { type: 'string' }, 'data-dir': { type: 'string' },
  } });
  const opts = parse(z.object({ site: SiteId, type: DeviceType, id: DeviceId.optional() }), values);
  const device = await provisionDevice(apiTarget(values, dataDir(values)), { siteId: opts.site, type: opts.type, id: opts.id });
  process.stderr.write('the secret is shown this once: put it on the device now\n');
  process.stdout.write(`${JSON.stringify({ id: device.id, secret: device.secret })}\n`);
}

/** From stdin, so the password is in neither the shell history nor the process list. */
async function hashPassword(): Promise<void> {
  let input = '';
  for await (const chunk of process.stdin) input += String(chunk);
  const password = input.replace(/\r?\n$/, '');
  const problem = ServiceAccountSchema.shape.password.safeParse(password).error;
  if (problem) throw new UsageError(`hash-password: the password on stdin: ${describeIssues(problem).message}`);
  process.stdout.write(`${await hashSecret(password, STRONG_COST)}\n`);
}

function frame(args: string[]): void {
  const { values } = parseArgs({ args, options: {
    device: { type: 'string' }, secret: { type: 'string' }, seq: { type: 'string' }, type: { type: 'string' },
    ts: { type: 'string' }, rssi: { type: 'string' }, battery: { type: 'string' },
  } });
  const f = parse(z.object({
    device: DeviceId,
    secret: z.string().min(1),
    seq: intArg('seq').min(0),
    type: EventType,
    ts: intArg('ts').min(0).default(Date.now()),
    rssi: intArg('rssi').min(-150).max(0).default(-60),
    battery: intArg('battery').min(0).max(100).default(100),
  }), values);
  const event = { deviceId: f.device, seq: f.seq, type: f.type, ts: f.ts, rssi: f.rssi, battery: f.battery };
  process.stdout.write(formatDeviceEvent(event, deriveRadioKey(f.secret)));
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'gateway': return await runGateway();
      case 'police-sim': return await policeSim(rest);
      case 'sim':
        if (rest[0] === 'press') return await simPress(rest.slice(1));
        if (rest[0] === 'dongle') return await simDongle(rest.slice(1));
        if (rest[0] === undefined || rest[0].startsWith('--')) return await simFleet(rest);
        throw new UsageError(`unknown sim command ${rest[0]}: try "sim --scenario burst", "sim press <deviceId>" or "sim dongle --path P --devices ID"`);
      case 'frame': return frame(rest);
      case 'hash-password': return await hashPassword();
      case 'import': return await importCommand(rest);
      case 'provision': return await provisionCommand(rest);
      case undefined: case 'help': case '--help': case '-h':
        process.stdout.write(USAGE);
        return;
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`safehaven: ${(err as Error).message}\n\n${USAGE}`);
      process.exit(2);
    }
    if (err instanceof PressError || err instanceof ApiCommandError) {
      process.stderr.write(`safehaven: ${err.code}: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

await main(process.argv.slice(2));
