// Supervision of radio devices and receivers, with the dongle on a
// SerialPortMock cable: a radio sensor is online while it checks in and
// offline (a trouble) once it stops; a receiver whose dongle is not a
// registered device raises its receiver-offline trouble on the port.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockCable } from '../device-sim/mock-cable.ts';
import { SimDongle } from '../device-sim/dongle.ts';
import { deriveRadioKey, type Trouble } from '../protocol/index.ts';
import { startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

const PORT = { path: '/dev/mock-rx9', name: 'rx9' };
const SENSOR = 'ms-home-0001';

let gw: TestGateway;
let cable: MockCable;
let dongle: SimDongle;

const open = async () => (await gw.api('GET', '/api/troubles')).json.items as Trouble[];

beforeAll(async () => {
  cable = new MockCable(PORT.path);
  gw = await startTestGateway(
    { serial: { ports: [PORT], offlineTroubleSec: 1 }, supervision: { classes: { 'motion-sensor': { intervalSec: 1, graceSec: 1 } } } },
    { deps: { serialPort: cable.factory } },
  );
  dongle = new SimDongle(cable, { receiverId: 'rx-not-registered', devices: [{ id: SENSOR, radioKey: deriveRadioKey(gw.deviceSecret(SENSOR)) }] }).start();
  await waitFor(() => cable.opened > 0, 'the gateway to open the mock port');
});

afterAll(async () => {
  await gw?.stop();
});

describe('a radio sensor', () => {
  it('is online while it checks in, and an offline trouble once it stops', async () => {
    dongle.heartbeat(SENSOR);
    await waitFor(async () => (await gw.api('GET', `/api/devices/${SENSOR}`)).json.online, 'online by radio');
    const trouble = await waitFor(async () => (await open()).find((t) => t.kind === 'offline' && t.deviceId === SENSOR), 'the missed check-in');
    expect(trouble.detail).toContain('interval 1 s + grace 1 s');
    expect((await gw.api('GET', `/api/devices/${SENSOR}`)).json).toMatchObject({ online: false, supervision: { state: 'missed' } });
    dongle.heartbeat(SENSOR);
    await waitFor(async () => !(await open()).some((t) => t.kind === 'offline' && t.deviceId === SENSOR), 'the restore');
  });
});

describe('a receiver that is not a registered device', () => {
  it('raises receiver-offline on its port when unplugged, cleared when the port opens again', async () => {
    dongle.boot();
    cable.unplug();
    const trouble = await waitFor(async () => (await open()).find((t) => t.kind === 'receiver-offline'), 'the receiver-offline trouble');
    expect(trouble).toMatchObject({ deviceId: null, siteId: null, severity: 8 });
    expect(trouble.detail).toContain(`serial port ${PORT.name}`);
    cable.plug();
    await waitFor(async () => !(await open()).some((t) => t.kind === 'receiver-offline'), 'the restore');
  });
});
