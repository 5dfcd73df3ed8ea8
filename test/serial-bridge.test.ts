// The serial bridge in a whole gateway, with the dongle on a SerialPortMock
// cable: radio presses take the MQTT alert path (same ids, dedupe, acks) and
// everything a dongle can get wrong is refused, counted and survived.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockCable } from '../device-sim/mock-cable.ts';
import { SimDongle } from '../device-sim/dongle.ts';
import { crc16, deriveAlertId, deriveRadioKey, formatAck, formatDeviceEvent } from '../protocol/index.ts';
import { startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

const PORT = { path: '/dev/mock-rx1', name: 'rx1' };
const DEVICES = ['pb-store-0001', 'pb-store-0002', 'pb-store-0003', 'pb-store-0004', 'ms-home-0001', 'ds-home-0001'];

let gw: TestGateway;
let cable: MockCable;
let dongle: SimDongle;
/** Set by the restart test: the gateway before it, whose police and data dir the second one borrowed. */
let first: TestGateway | null = null;

async function startGateway(dataDir?: string): Promise<void> {
  cable = new MockCable(PORT.path);
  gw = await startTestGateway(
    { serial: { ports: [PORT], offlineTroubleSec: 1 } },
    { deps: { serialPort: cable.factory }, ...(dataDir ? { dataDir, police: gw.police } : {}) },
  );
  dongle = new SimDongle(cable, {
    receiverId: 'rx-store-01',
    devices: DEVICES.map((id) => ({ id, radioKey: deriveRadioKey(gw.deviceSecret(id)) })),
  }).start();
  await waitFor(() => cable.opened > 0, 'the gateway to open the mock port');
}

const rejected = (reason: string) => gw.gateway.counters.get('serial_frames_rejected_total', { port: 'rx1', reason });
const policeGot = (alertId: string) => gw.police.received().filter((a) => a.idempotencyKey === alertId);
const serialHealth = async () => (await gw.api('GET', '/healthz')).json.serial;

beforeAll(async () => {
  await startGateway();
});

afterAll(async () => {
  await gw.stop();
  if (first) {
    await first.police.stop();
    rmSync(first.config.dataDir, { recursive: true, force: true });
  }
});

describe('radio presses take the alert path', () => {
  it('delivers a press to the police and acks the dongle received → dispatched → acknowledged', async () => {
    const press = dongle.press('pb-store-0001');
    const delivered = await waitFor(() => policeGot(press.alertId)[0], 'police receipt');
    expect(delivered.body).toMatchObject({ alertId: press.alertId, deviceId: 'pb-store-0001', type: 'panic' });
    await dongle.waitForAck(press.alertId, 'acknowledged');
    expect(dongle.acks.filter((a) => a.alertId === press.alertId).map((a) => a.state)).toEqual(['received', 'dispatched', 'acknowledged']);
    expect(dongle.acks[0]).toMatchObject({ deviceId: 'pb-store-0001', seq: press.seq });
    const { json } = await gw.api('GET', `/api/alerts/${press.alertId}`);
    expect(json).toMatchObject({ source: 'serial', state: 'acknowledged' });
  });

  it('turns a repeat of the same seq into the same alert, acked again and dispatched once', async () => {
    const press = dongle.press('pb-store-0002');
    await dongle.waitForAck(press.alertId, 'acknowledged');
    const acksBefore = dongle.acks.length;
    dongle.send(press.line);
    await waitFor(() => dongle.acks.length > acksBefore, 'the ack of the repeat');
    expect(dongle.acks.at(-1)).toMatchObject({ alertId: press.alertId, state: 'acknowledged' });
    expect(policeGot(press.alertId)).toHaveLength(1);
    expect(rejected('replayed')).toBe(0);
  });
});

describe('refused frames: no alert, counted by reason, logged once per burst', () => {
  it('refuses a replayed frame with a seq below the device\'s highest alert', async () => {
    const newer = dongle.press('pb-store-0003', 'panic', { seq: 20 });
    await dongle.waitForAck(newer.alertId, 'received');
    const old = dongle.press('pb-store-0003', 'panic', { seq: 12 });
    await waitFor(() => rejected('replayed') === 1, 'the replay to be counted');
    expect((await gw.api('GET', `/api/alerts/${old.alertId}`)).status).toBe(404);
    expect(dongle.acks.some((a) => a.alertId === old.alertId)).toBe(false);
  });

  it('refuses forged frames and unknown devices, and logs each reason once per burst', async () => {
    const forged = formatDeviceEvent({ deviceId: 'pb-store-0004', seq: 1, type: 'panic', ts: Date.now(), rssi: -50, battery: 90 }, deriveRadioKey('a guess'));
    const stranger = formatDeviceEvent({ deviceId: 'pb-nobody', seq: 1, type: 'panic', ts: Date.now(), rssi: -50, battery: 90 }, deriveRadioKey('x'));
    dongle.send(forged + forged + stranger);
    await waitFor(() => rejected('bad-mac') === 2 && rejected('unknown-device') === 1, 'the refusals to be counted');
    expect((await gw.api('GET', `/api/alerts/${deriveAlertId('pb-store-0004', 1)}`)).status).toBe(404);
    expect(gw.logs.lines.filter((l) => l.code === 'SERIAL_BAD_MAC')).toHaveLength(1);
    expect(gw.logs.find((l) => l.code === 'SERIAL_UNKNOWN_DEVICE')).toMatchObject({ deviceId: 'pb-nobody', port: 'rx1' });
  });

  it('refuses a revoked device and one without a radio key (provisioned before the serial bridge)', async () => {
    const registry = gw.gateway['registry']!;
    registry.device('pb-store-0004')!.revokedAt = Date.now();
    registry.device('ms-home-0001')!.radioKey = null;
    const revoked = dongle.press('pb-store-0004', 'panic', { seq: 2 });
    const keyless = dongle.press('ms-home-0001', 'intrusion', { seq: 2 });
    await waitFor(() => rejected('revoked') === 1 && rejected('no-radio-key') === 1, 'both refusals counted');
    registry.device('pb-store-0004')!.revokedAt = null;
    registry.device('ms-home-0001')!.radioKey = deriveRadioKey(gw.deviceSecret('ms-home-0001'));
    for (const { alertId } of [revoked, keyless]) expect((await gw.api('GET', `/api/alerts/${alertId}`)).status).toBe(404);
    expect(gw.logs.find((l) => l.code === 'SERIAL_NO_RADIO_KEY')?.msg).toContain('provision it again');
  });

  it('counts garbled, bad-checksum, bad-version, over-long and downlink lines by reason', async () => {
    const good = dongle.press('pb-store-0004', 'test', { seq: 5 });
    const content = good.line.slice(0, good.line.lastIndexOf('|'));
    dongle.send('hello dongle\r\n');
    dongle.send(`${content}|0000\r\n`);
    const v2 = content.replace(/^SH1/, 'SH2');
    dongle.send(`${v2}|${crc16(v2).toString(16).toUpperCase().padStart(4, '0')}\r\n`);
    dongle.babble(10_000);
    dongle.send(formatAck({ deviceId: 'pb-store-0004', seq: 5, alertId: good.alertId, state: 'received' }));
    await waitFor(() => ['garbled', 'bad-checksum', 'bad-version', 'too-long', 'unexpected-kind'].every((r) => rejected(r) === 1), 'every reason counted');
    expect(gw.gateway.counters.get('serial_bytes_dropped_total', { port: 'rx1' })).toBe(10_000);
    await dongle.waitForAck(good.alertId, 'received');
  });
});

describe('heartbeats and the receiver', () => {
  it('records a heartbeat as presence and refuses a replayed one', async () => {
    const line = dongle.heartbeat('ms-home-0001', '3.0.1');
    const device = await waitFor(async () => {
      const { json } = await gw.api('GET', '/api/devices/ms-home-0001');
      return json.firmware === '3.0.1' && json;
    }, 'presence from the heartbeat');
    expect(device).toMatchObject({ battery: 87, rssi: -64 });
    dongle.send(line);
    await waitFor(() => rejected('replayed') === 2, 'the replayed heartbeat to be counted');
  });

  it('shows the receiver from BOOT and RHL in /healthz, and online among the devices', async () => {
    const provisioned = await gw.api('POST', '/api/devices', { siteId: 'store-0001', type: 'rf-receiver', id: 'rx-store-01' });
    expect(provisioned.status).toBe(201);
    expect((await gw.api('GET', '/api/devices/rx-store-01')).json.online).toBe(false);
    dongle.boot();
    dongle.health(-108, 2);
    const port = await waitFor(async () => (await serialHealth()).ports[0].receiver?.queueDepth === 2 && (await serialHealth()).ports[0], 'receiver health');
    expect(port).toMatchObject({ name: 'rx1', path: PORT.path, online: true, trouble: false, receiver: { id: 'rx-store-01', fw: '2.1.0', noiseFloorDbm: -108 } });
    expect((await serialHealth()).status).toBe('ok');
    expect((await gw.api('GET', '/api/devices/rx-store-01')).json.online).toBe(true);
  });

  it('tells each radio device its heartbeat interval by a CFG frame when first heard, and all of them again after a BOOT', async () => {
    const first = await waitFor(() => dongle.configs.find((c) => c.deviceId === 'ms-home-0001'), 'the CFG of the sensor');
    expect(first).toEqual({ kind: 'CFG', deviceId: 'ms-home-0001', heartbeatSec: 60 });
    const before = dongle.configs.length;
    dongle.boot();
    await waitFor(() => dongle.configs.slice(before).some((c) => c.deviceId === 'ms-home-0001'), 'the CFGs after the boot');
    expect(dongle.configs.slice(before)).toContainEqual({ kind: 'CFG', deviceId: 'rx-store-01', heartbeatSec: 60 });
  });
});

describe('an unplugged receiver', () => {
  it('is shown offline, raises trouble past the threshold, and is reopened when plugged in again', async () => {
    cable.unplug();
    await waitFor(async () => (await serialHealth()).ports[0].online === false, 'receiver offline');
    expect((await gw.api('GET', '/api/devices/rx-store-01')).json.online).toBe(false);
    const trouble = await waitFor(async () => (await gw.api('GET', '/healthz')).json.serial.trouble && (await gw.api('GET', '/healthz')).json, 'trouble');
    expect(trouble.status).toBe('degraded');
    expect(trouble.serial.status).toBe('trouble');
    expect(gw.logs.find((l) => l.code === 'SERIAL_RECEIVER_OFFLINE')).toMatchObject({ port: 'rx1', level: 50 });
    expect(gw.logs.lines.filter((l) => l.code === 'SERIAL_PORT_UNAVAILABLE' && l.level === 40)).toHaveLength(1);
    // The dongle named itself and is a registered device: the trouble entry is on it.
    const entries = async () => (await gw.api('GET', '/api/troubles')).json.items as Array<{ kind: string; deviceId: string | null; siteId: string | null }>;
    const entry = await waitFor(async () => (await entries()).find((t) => t.kind === 'receiver-offline'), 'the receiver-offline trouble');
    expect(entry).toMatchObject({ deviceId: 'rx-store-01', siteId: 'store-0001', severity: 8 });

    const opened = cable.opened;
    cable.plug();
    await waitFor(() => cable.opened > opened, 'the port reopened');
    const press = dongle.press('ds-home-0001', 'door');
    await dongle.waitForAck(press.alertId, 'received');
    const health = await serialHealth();
    expect(health).toMatchObject({ status: 'ok', trouble: false });
    expect(gw.logs.find((l) => l.code === 'SERIAL_RECEIVER_BACK')).toBeDefined();
    // Its own trouble clears when the dongle speaks again.
    dongle.health();
    await waitFor(async () => !(await entries()).some((t) => t.kind === 'receiver-offline'), 'the receiver restore');
  });
});

describe('across a restart', () => {
  it('still refuses a seq below the highest stored alert seq', async () => {
    first = gw;
    await first.gateway.stop();
    await startGateway(first.config.dataDir);
    const old = dongle.press('pb-store-0003', 'panic', { seq: 15 });
    await waitFor(() => rejected('replayed') === 1, 'the replay to be counted after the restart');
    expect((await gw.api('GET', `/api/alerts/${old.alertId}`)).status).toBe(404);
    const next = dongle.press('pb-store-0003', 'panic', { seq: 21 });
    await dongle.waitForAck(next.alertId, 'received');
  });
});
