// The gateway's optional transports, configured as a user would: MQTT over
// TLS, MQTT over secure WebSocket, and the API over HTTPS, with a CA made by
// openssl for this run. A press over each reaches the police.
import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveAlertId, topics } from '../protocol/index.ts';
import { connectDevice, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';
import { makeTestCa, type TestCa } from './support/test-ca.ts';

let ca: TestCa;
let gw: TestGateway;

beforeAll(async () => {
  ca = await makeTestCa();
  const files = { cert: ca.server.cert, key: ca.server.key };
  gw = await startTestGateway({
    mqtt: { host: '127.0.0.1', port: 0, tls: { ...files, port: 0 }, ws: { port: 0, tls: true } },
    http: { host: '127.0.0.1', port: 0, tls: files },
  });
});

afterAll(async () => {
  await gw?.stop();
  ca?.cleanup();
});

const listener = (kind: string) => gw.info.mqttListeners.find((l) => l.kind === kind)!.port;

describe('TLS transports', () => {
  it('takes a press over mqtts:// from a device that trusts the CA', async () => {
    const id = 'pb-store-0001';
    const d = await connectDevice(`mqtts://localhost:${listener('tls')}`, id, gw.deviceSecret(id), { ca: readFileSync(ca.ca.cert) });
    await publish(d, topics.event(id), JSON.stringify({ seq: 1, ts: Date.now(), type: 'panic' }));
    await waitFor(() => gw.police.received().some((a) => a.idempotencyKey === deriveAlertId(id, 1)), 'police receipt');
    await d.endAsync();
  });

  it('takes a press over wss:// on the configured path', async () => {
    const id = 'pb-store-0002';
    const d = await connectDevice(`wss://localhost:${listener('wss')}/mqtt`, id, gw.deviceSecret(id), { ca: readFileSync(ca.ca.cert) });
    await publish(d, topics.event(id), JSON.stringify({ seq: 1, ts: Date.now(), type: 'panic' }));
    await waitFor(() => gw.police.received().some((a) => a.idempotencyKey === deriveAlertId(id, 1)), 'police receipt');
    await d.endAsync();
  });

  it('cuts an oversized packet at its header over mqtts:// and wss:// alike, and counts it', async () => {
    for (const [n, url] of [[1, `mqtts://localhost:${listener('tls')}`], [2, `wss://localhost:${listener('wss')}/mqtt`]] as const) {
      const id = `pb-store-000${n}`;
      const d = await connectDevice(url, id, gw.deviceSecret(id), { ca: readFileSync(ca.ca.cert) });
      const gone = new Promise<void>((resolve) => d.once('close', () => resolve()));
      const before = gw.gateway.counters.total('mqtt_oversized_packets_total');
      // A PUBLISH header declaring 8 MiB and no body.
      d.stream.write(Buffer.from([0x32, 0x80, 0x80, 0x80, 0x04]));
      await gone;
      expect(gw.gateway.counters.total('mqtt_oversized_packets_total')).toBe(before + 1);
      d.end(true);
    }
  });

  it('refuses an mqtts client that does not trust the server certificate, and serves the API over HTTPS only', async () => {
    await expect(connectDevice(`mqtts://localhost:${listener('tls')}`, 'pb-store-0003', gw.deviceSecret('pb-store-0003'))).rejects.toThrow(/certificate/);
    expect(gw.info.httpUrl.startsWith('https://')).toBe(true);
    const dispatcher = new Agent({ connect: { ca: readFileSync(ca.ca.cert) } });
    const res = await undiciFetch(`https://localhost:${gw.info.httpPort}/healthz`, { dispatcher });
    expect(res.status).toBe(200);
    await expect(fetch(`http://localhost:${gw.info.httpPort}/healthz`)).rejects.toThrow();
    await dispatcher.close();
  });
});
