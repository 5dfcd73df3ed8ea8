// The baseline's other half: a minimal mqtt.js subscriber that forwards each
// device event from a mosquitto broker to the police by HTTP POST, as a quick
// integration would be written: no store, no retries, no acks to the device.
//
//   node --import tsx bench/baseline-forwarder.ts <mqtt-url> <police-url>
//
// Prints "ready" on stdout once subscribed.
import mqtt from 'mqtt';
import { Agent, request } from 'undici';
import { deriveAlertId, parseDeviceTopic, TOPIC_ROOT } from '../protocol/index.ts';

const [mqttUrl, policeUrl] = process.argv.slice(2);
if (!mqttUrl || !policeUrl) {
  process.stderr.write('usage: baseline-forwarder <mqtt-url> <police-url>\n');
  process.exit(2);
}
const agent = new Agent({ connections: 32, keepAliveTimeout: 30_000, pipelining: 1 });
let failures = 0;
const client = mqtt.connect(mqttUrl, { clientId: 'baseline-forwarder', clean: true, reconnectPeriod: 1000 });
client.on('connect', () => {
  // Set on the socket mqtt.js opened, as the gateway does on its side (see protocol/README.md on Nagle).
  (client.stream as unknown as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  client.subscribe(`${TOPIC_ROOT}/dev/+/event`, { qos: 1 }, (err) => {
    if (err) throw err;
    process.stdout.write('ready\n');
  });
});
client.on('message', (topic, payload) => {
  const parsed = parseDeviceTopic(topic);
  if (!parsed) return;
  const { seq } = JSON.parse(payload.toString('utf8')) as { seq: number };
  const alertId = deriveAlertId(parsed.deviceId, seq);
  const body = JSON.stringify({ alertId, deviceId: parsed.deviceId, event: JSON.parse(payload.toString('utf8')) });
  request(policeUrl, {
    method: 'POST', dispatcher: agent, body, headersTimeout: 5000, bodyTimeout: 5000,
    headers: { 'content-type': 'application/json', 'idempotency-key': alertId },
  }).then((res) => res.body.dump(), () => {
    failures++;
  });
});
process.on('SIGTERM', () => {
  process.stderr.write(`forwarder: ${failures} failed POSTs\n`);
  client.end(true, () => process.exit(0));
});
