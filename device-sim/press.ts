// One button press, as a real device does it: connect with its credentials,
// subscribe to its ack topic, publish the event at QoS 1, report each ack
// state until the police have acknowledged (or a deadline passes).
import mqtt from 'mqtt';
import { AckPayload, parseJsonPayload, topics, type AlertState, type EventType } from '../protocol/index.ts';

export interface PressOptions {
  url: string;
  deviceId: string;
  secret: string;
  type: EventType;
  seq: number;
  /** Stop waiting for acks after this long. */
  waitMs: number;
  /** The state that ends the wait. */
  until: AlertState;
  onAck?: (ack: AckPayload, msSincePress: number) => void;
}

export interface PressResult {
  pubackMs: number;
  acks: Array<AckPayload & { ms: number }>;
  reached: boolean;
}

export class PressError extends Error {
  constructor(readonly code: 'CONNECT_REFUSED' | 'CONNECT_FAILED' | 'PUBLISH_FAILED', message: string) {
    super(message);
  }
}

export function press(opts: PressOptions): Promise<PressResult> {
  const client = mqtt.connect(opts.url, {
    clientId: opts.deviceId, username: opts.deviceId, password: opts.secret, clean: true, reconnectPeriod: 0, connectTimeout: 5000,
  });
  const acks: PressResult['acks'] = [];
  return new Promise<PressResult>((resolve, reject) => {
    let pressedAt = 0;
    let pubackMs = -1;
    const finish = (reached: boolean) => {
      clearTimeout(deadline);
      client.end(true);
      resolve({ pubackMs, acks, reached });
    };
    const deadline = setTimeout(() => finish(false), opts.waitMs);
    client.on('error', (err) => {
      clearTimeout(deadline);
      client.end(true);
      const refused = /Not authorized|Bad username/i.test(err.message);
      reject(new PressError(refused ? 'CONNECT_REFUSED' : 'CONNECT_FAILED', err.message));
    });
    client.on('message', (topic, payload) => {
      if (topic !== topics.ack(opts.deviceId)) return;
      const parsed = parseJsonPayload(AckPayload, payload);
      if (!parsed.ok || parsed.value.seq !== opts.seq) return;
      const ms = Date.now() - pressedAt;
      acks.push({ ...parsed.value, ms });
      opts.onAck?.(parsed.value, ms);
      if (parsed.value.state === opts.until) finish(true);
    });
    client.on('connect', () => {
      client.subscribe(topics.ack(opts.deviceId), { qos: 1 }, (err) => {
        if (err) return reject(new PressError('PUBLISH_FAILED', err.message));
        pressedAt = Date.now();
        const event = { seq: opts.seq, ts: pressedAt, type: opts.type };
        client.publish(topics.event(opts.deviceId), JSON.stringify(event), { qos: 1 }, (pubErr) => {
          if (pubErr) return reject(new PressError('PUBLISH_FAILED', pubErr.message));
          pubackMs = Date.now() - pressedAt;
        });
      });
    });
  });
}
