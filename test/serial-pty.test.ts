// The serial bridge over a real pty pair made by socat, as a USB dongle is
// seen by the gateway: real termios, real file descriptors, a real unplug.
// socat comes from scripts/install-system-deps.sh; without it these tests fail
// (PtyCable.plug throws SocatMissingError naming the script), never skip.
import type { MqttClient } from 'mqtt';
import { exec } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimDongle } from '../device-sim/dongle.ts';
import { PtyCable } from '../device-sim/pty.ts';
import { deriveAlertId, deriveRadioKey, formatDeviceEvent, topics } from '../protocol/index.ts';
import { collect, connectDevice, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

const DEVICES = ['pb-store-0001', 'pb-store-0002', 'pb-store-0003', 'pb-store-0004'];

let dir: string;
let cable: PtyCable;
let gw: TestGateway;
let dongle: SimDongle;
const clients: MqttClient[] = [];

const rejected = (reason: string) => gw.gateway.counters.get('serial_frames_rejected_total', { port: 'rx-pty', reason });
const policeGot = (alertId: string) => gw.police.received().find((a) => a.idempotencyKey === alertId);
const portHealth = async () => (await gw.api('GET', '/healthz')).json.serial.ports[0];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'safehaven-pty-'));
  cable = new PtyCable(join(dir, 'gateway-end'), join(dir, 'dongle-end'));
  await cable.plug();
  gw = await startTestGateway({ serial: { ports: [{ path: cable.gatewayPath, name: 'rx-pty' }] } });
  dongle = new SimDongle(cable, {
    receiverId: 'rx-pty-01',
    devices: DEVICES.map((id) => ({ id, radioKey: deriveRadioKey(gw.deviceSecret(id)) })),
  }).start();
  await waitFor(async () => (await portHealth()).online, 'the gateway to open the pty');
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true)));
  await gw?.stop();
  await cable?.unplug();
  rmSync(dir, { recursive: true, force: true });
});

describe('over a real pty', () => {
  it('delivers a radio press to the police and writes the ACK lines back on the pty', async () => {
    dongle.boot();
    const press = dongle.press('pb-store-0001');
    expect(await waitFor(() => policeGot(press.alertId), 'police receipt')).toMatchObject({ body: { deviceId: 'pb-store-0001' } });
    await dongle.waitForAck(press.alertId, 'acknowledged');
    expect(dongle.acks.filter((a) => a.alertId === press.alertId).map((a) => a.state)).toEqual(['received', 'dispatched', 'acknowledged']);
    expect((await portHealth()).receiver).toMatchObject({ id: 'rx-pty-01', fw: '2.1.0' });
  });

  it('reassembles a press written to the pty in pieces', async () => {
    const event = dongle.event('pb-store-0003', 'test');
    await dongle.sendSplit(event.line, [3, 30, 71]);
    await dongle.waitForAck(event.alertId, 'received');
    expect(rejected('garbled') + rejected('bad-checksum')).toBe(0);
  });

  it('makes no alert of a replayed or a forged frame, and counts both', async () => {
    const newer = dongle.press('pb-store-0002', 'panic', { seq: 9 });
    await dongle.waitForAck(newer.alertId, 'received');
    const replayed = dongle.press('pb-store-0002', 'panic', { seq: 3 });
    const forged = formatDeviceEvent({ deviceId: 'pb-store-0002', seq: 10, type: 'panic', ts: Date.now(), rssi: -70, battery: 50 }, deriveRadioKey('not its secret'));
    dongle.send(forged);
    await waitFor(() => rejected('replayed') === 1 && rejected('bad-mac') === 1, 'both refusals counted');
    for (const alertId of [replayed.alertId, deriveAlertId('pb-store-0002', 10)]) {
      expect((await gw.api('GET', `/api/alerts/${alertId}`)).status).toBe(404);
    }
  });

  it('counts and skips 1 MB without a newline while MQTT presses keep flowing', async () => {
    const mqttButton = 'pb-store-0004';
    const client = await connectDevice(gw.mqttUrl, mqttButton, gw.deviceSecret(mqttButton));
    clients.push(client);
    const acks = collect(client);
    await new Promise<void>((resolve, reject) => client.subscribe(topics.ack(mqttButton), { qos: 1 }, (err) => (err ? reject(err) : resolve())));

    dongle.babble(1 << 20, false);
    const presses = [1, 2, 3].map((seq) => publish(client, topics.event(mqttButton), JSON.stringify({ seq, ts: Date.now(), type: 'panic' })));
    await Promise.all(presses);
    await waitFor(() => [1, 2, 3].every((seq) => acks.some((m) => m.body.seq === seq && m.body.state === 'acknowledged')), 'MQTT presses acknowledged');

    dongle.send('\r\n');
    await waitFor(() => rejected('too-long') === 1, 'the over-long line counted once');
    expect(gw.gateway.counters.get('serial_bytes_dropped_total', { port: 'rx-pty' })).toBe(1 << 20);
    const after = dongle.press('pb-store-0001');
    await dongle.waitForAck(after.alertId, 'received');
  });

  it('raises an alert end to end from `safehaven frame` output piped into the pty', async () => {
    const device = 'pb-store-0003';
    const cli = `"${process.execPath}" --import tsx gateway/cli/safehaven.ts frame --device ${device} --secret '${gw.deviceSecret(device)}' --seq 77 --type panic`;
    await promisify(exec)(`${cli} > '${cable.donglePath}'`);
    const alertId = deriveAlertId(device, 77);
    expect(await waitFor(() => policeGot(alertId), 'police receipt of the CLI frame')).toMatchObject({ body: { deviceId: device, type: 'panic' } });
    await dongle.waitForAck(alertId, 'received');
  });

  it('reconnects after the pty is closed and made again, and delivers the next frame', async () => {
    const opens = gw.gateway.counters.get('serial_port_opens_total', { port: 'rx-pty' });
    await cable.unplug();
    await waitFor(async () => !(await portHealth()).online, 'the receiver shown offline');
    expect((await portHealth()).state).toBe('closed');
    await cable.plug();
    await waitFor(() => gw.gateway.counters.get('serial_port_opens_total', { port: 'rx-pty' }) === opens + 1, 'the bridge to reopen the pty');
    const press = dongle.press('pb-store-0001');
    await waitFor(() => policeGot(press.alertId), 'police receipt after the reconnect');
    await dongle.waitForAck(press.alertId, 'received');
  });
});
