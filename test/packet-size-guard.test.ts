import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { MqttHeaderScanner } from '../gateway/broker/packet-size-guard.ts';

const publish = (payloadBytes: number) => mqttPacket.generate({
  cmd: 'publish', topic: 'safehaven/v1/dev/pb-1/event', payload: Buffer.alloc(payloadBytes, 0x61), qos: 1, messageId: 7, dup: false, retain: false,
});
const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'pb-1', clean: true, keepalive: 30, username: 'pb-1', password: Buffer.from('s') });

describe('MqttHeaderScanner', () => {
  it('passes a stream of packets under the limit, however it is split into chunks', () => {
    const stream = Buffer.concat([connect, publish(100), publish(2000), publish(0)]);
    for (let cut = 1; cut < stream.length; cut += 7) {
      const scanner = new MqttHeaderScanner(4096);
      expect(scanner.scan(stream.subarray(0, cut))).toEqual({ ok: true });
      expect(scanner.scan(stream.subarray(cut))).toEqual({ ok: true });
    }
  });

  it('refuses a packet over the limit from its header alone, before any of its body', () => {
    const big = publish(8 * 1024 * 1024);
    const scanner = new MqttHeaderScanner(16 * 1024);
    expect(scanner.scan(connect)).toEqual({ ok: true });
    // Type byte and the 4-byte remaining length only.
    expect(scanner.scan(big.subarray(0, 5))).toEqual({ ok: false, declared: big.length - 5 });
  });

  it('refuses a remaining length longer than four bytes', () => {
    expect(new MqttHeaderScanner(1024).scan(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toEqual({ ok: false, declared: null });
  });
});
