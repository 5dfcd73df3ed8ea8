// The broker's listeners over real sockets, in front of a real (hook-less)
// aedes: MQTT over TCP, TLS, ws:// and wss://, with a CA made for this run.
import { Aedes } from 'aedes';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { EventEmitter, once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  listenTcp, listenTls, listenWebSocket, TlsFilesError,
  type ListenerHandle, type ListenOptions, type OnListenerError, type OnStream, type StreamMeta, type Transport,
} from '../gateway/broker/listeners.ts';
import { makeTestCa, type TestCa } from './support/test-ca.ts';

let ca: TestCa;
let aedes: Aedes;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  ca = await makeTestCa();
  aedes = await Aedes.createBroker();
});

afterAll(async () => {
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
  ca.cleanup();
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type ListenerError = Parameters<OnListenerError>;

/** What a listener handed over or reported, with a way to wait for it. */
class Recorder {
  readonly streams: Array<{ meta: StreamMeta; req: IncomingMessage | undefined }> = [];
  readonly errors: Array<{ err: ListenerError[0]; meta: ListenerError[1] }> = [];
  private readonly changed = new EventEmitter();

  readonly onStream: OnStream = (stream, meta, req) => {
    this.streams.push({ meta, req });
    this.changed.emit('change');
    aedes.handle(stream, req);
  };

  readonly onError: OnListenerError = (err, meta) => {
    this.errors.push({ err, meta });
    this.changed.emit('change');
  };

  async until(condition: () => boolean): Promise<void> {
    while (!condition()) await once(this.changed, 'change');
  }
}

function base(rec: Recorder): ListenOptions {
  return { host: '127.0.0.1', port: 0, onError: rec.onError };
}

async function started(listening: Promise<ListenerHandle>): Promise<ListenerHandle> {
  const handle = await listening;
  cleanups.push(() => handle.close());
  return handle;
}

async function connectMqtt(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...opts }, false);
  cleanups.push(() => client.endAsync(true));
  return client;
}

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.once('close', () => resolve()));
}

/** A TCP connection that sends `bytes` and then nothing. */
async function silentSocket(port: number, bytes = ''): Promise<Socket> {
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => {}); // the listener's reset is what these tests expect
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect');
  if (bytes) socket.write(bytes);
  return socket;
}

const trusted = (): IClientOptions => ({ ca: ca.ca.certPem, rejectUnauthorized: true });
const serverTls = () => ({ cert: ca.server.cert, key: ca.server.key });

const transports: Record<Transport, { listen(rec: Recorder): Promise<ListenerHandle>; url(port: number): string; client(): IClientOptions }> = {
  tcp: { listen: (rec) => listenTcp(base(rec), rec.onStream), url: (p) => `mqtt://127.0.0.1:${p}`, client: () => ({}) },
  tls: {
    listen: (rec) => listenTls({ ...base(rec), ...serverTls() }, rec.onStream),
    url: (p) => `mqtts://127.0.0.1:${p}`,
    client: trusted,
  },
  ws: { listen: (rec) => listenWebSocket(base(rec), rec.onStream), url: (p) => `ws://127.0.0.1:${p}/mqtt`, client: () => ({}) },
  wss: {
    listen: (rec) => listenWebSocket({ ...base(rec), tls: serverTls() }, rec.onStream),
    url: (p) => `wss://127.0.0.1:${p}/mqtt`,
    client: trusted,
  },
};
const kinds = Object.keys(transports) as Transport[];

describe.each(kinds)('%s listener', (kind) => {
  const t = transports[kind];

  it('carries a QoS 1 publish to aedes and back its PUBACK', async () => {
    const rec = new Recorder();
    const handle = await started(t.listen(rec));
    expect(handle.kind).toBe(kind);
    const client = await connectMqtt(t.url(handle.port()), t.client());

    const puback = await client.publishAsync('listeners/test', 'hello', { qos: 1 });

    expect(puback).toMatchObject({ cmd: 'publish', qos: 1 });
    expect(rec.streams.map((s) => s.meta)).toEqual([{ remoteAddress: '127.0.0.1', transport: kind }]);
    expect(rec.errors).toEqual([]);
  });

  it('close() resolves with a client connected and a silent socket open, and ends both', async () => {
    const rec = new Recorder();
    const handle = await started(t.listen(rec));
    const client = await connectMqtt(t.url(handle.port()), t.client());
    const silent = await silentSocket(handle.port());
    const ended = Promise.all([closed(client), once(silent, 'close')]);

    const closing = handle.close();
    expect(handle.close()).toBe(closing);
    await closing;

    await ended;
    expect(client.connected).toBe(false);
    // The silent socket's cut-off handshake is shutdown, not a client failure.
    expect(rec.errors).toEqual([]);
  });
});

describe('TLS', () => {
  it('refuses a client that does not trust the CA, and reports the failed handshake', async () => {
    const rec = new Recorder();
    const handle = await started(transports.tls.listen(rec));

    await expect(connectMqtt(transports.tls.url(handle.port()), { rejectUnauthorized: true }))
      .rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });

    await rec.until(() => rec.errors.length > 0);
    expect(rec.errors[0]!.meta.transport).toBe('tls');
    expect(rec.streams).toEqual([]);
  });

  it.each([
    ['tls', (rec: Recorder) => listenTls({ ...base(rec), ...serverTls(), handshakeTimeoutMs: 200 }, rec.onStream)],
    ['wss', (rec: Recorder) => listenWebSocket({ ...base(rec), tls: serverTls(), handshakeTimeoutMs: 200 }, rec.onStream)],
  ] as const)('%s: closes a connection whose handshake stalls, after the handshake timeout', async (transport, listen) => {
    const rec = new Recorder();
    const handle = await started(listen(rec));
    // A TLS handshake record header announcing 512 bytes that never come.
    const stalled = await silentSocket(handle.port(), '\x16\x03\x01\x02\x00');

    await once(stalled, 'close');

    await rec.until(() => rec.errors.length > 0);
    expect(rec.errors).toMatchObject([{ err: { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }, meta: { transport, remoteAddress: '127.0.0.1' } }]);
    expect(rec.streams).toEqual([]);
  });

  it('with requestCert, takes a client certificate from the CA and refuses a client without one', async () => {
    const rec = new Recorder();
    const handle = await started(listenTls({ ...base(rec), ...serverTls(), ca: ca.ca.cert, requestCert: true }, rec.onStream));
    const url = transports.tls.url(handle.port());

    const device = await connectMqtt(url, { ...trusted(), cert: ca.client.certPem, key: ca.client.keyPem });
    await device.publishAsync('listeners/test', 'hello', { qos: 1 });

    await expect(connectMqtt(url, trusted())).rejects.toThrow();
    await rec.until(() => rec.errors.length > 0);
    expect(rec.errors[0]!.meta.transport).toBe('tls');
    expect(rec.streams).toHaveLength(1);
  });

  it('names a missing certificate file', async () => {
    const rec = new Recorder();
    const missing = `${ca.dir}/no-such-cert.pem`;

    const failure = listenTls({ ...base(rec), cert: missing, key: ca.server.key }, rec.onStream);

    await expect(failure).rejects.toBeInstanceOf(TlsFilesError);
    await expect(failure).rejects.toMatchObject({ code: 'TLS_FILES', files: [missing], message: expect.stringContaining(missing) });
  });

  it('refuses requestCert without a ca to check client certificates against', async () => {
    const rec = new Recorder();

    await expect(listenTls({ ...base(rec), ...serverTls(), requestCert: true }, rec.onStream)).rejects.toMatchObject({ code: 'TLS_FILES' });
  });

  it('names the files when the key does not fit the certificate, for wss too', async () => {
    const rec = new Recorder();
    const tls = { cert: ca.server.cert, key: ca.client.key };

    const failure = listenWebSocket({ ...base(rec), tls }, rec.onStream);

    await expect(failure).rejects.toMatchObject({ code: 'TLS_FILES', files: [tls.cert, tls.key] });
  });
});

describe('WebSocket', () => {
  it('passes the upgrade request to onStream and agrees on the mqtt subprotocol', async () => {
    const rec = new Recorder();
    const handle = await started(transports.ws.listen(rec));

    await connectMqtt(transports.ws.url(handle.port()));

    const req = rec.streams[0]!.req!;
    expect(req.url).toBe('/mqtt');
    expect(req.headers['sec-websocket-protocol']).toBe('mqtt');
  });

  it('answers plain HTTP with 426 and refuses an upgrade on another path', async () => {
    const rec = new Recorder();
    const handle = await started(transports.ws.listen(rec));

    const res = await fetch(`http://127.0.0.1:${handle.port()}/mqtt`);
    expect(res.status).toBe(426);
    await res.body?.cancel();
    const elsewhere = new WebSocket(`ws://127.0.0.1:${handle.port()}/elsewhere`, 'mqtt');
    const [refusal] = (await once(elsewhere, 'error')) as [Error];
    expect(refusal.message).toBe('Unexpected server response: 400');
    expect(rec.streams).toEqual([]);
  });

  it('closes a connection that does not complete the upgrade in time', async () => {
    const rec = new Recorder();
    const handle = await started(listenWebSocket({ ...base(rec), handshakeTimeoutMs: 200 }, rec.onStream));
    const stalled = await silentSocket(handle.port(), 'GET /mqtt HTTP/1.1\r\n');

    await once(stalled, 'close');

    await rec.until(() => rec.errors.length > 0);
    expect(rec.errors).toMatchObject([{ err: { code: 'WS_UPGRADE_TIMEOUT' }, meta: { transport: 'ws', remoteAddress: '127.0.0.1' } }]);
  });

  it('drops a client whose message exceeds maxPayload', async () => {
    const rec = new Recorder();
    const handle = await started(listenWebSocket({ ...base(rec), maxPayload: 1024 }, rec.onStream));
    const client = await connectMqtt(transports.ws.url(handle.port()));
    await client.publishAsync('listeners/test', 'small', { qos: 1 });
    const dropped = closed(client);

    client.publish('listeners/test', Buffer.alloc(4096), { qos: 1 });

    await dropped;
  });
});

describe('TCP', () => {
  it('drops connections beyond maxConnections', async () => {
    const rec = new Recorder();
    const handle = await started(listenTcp({ ...base(rec), maxConnections: 1 }, rec.onStream));
    const first = await silentSocket(handle.port());
    await rec.until(() => rec.streams.length === 1);

    const second = await silentSocket(handle.port());
    await once(second, 'close');

    expect(first.readyState).toBe('open');
    expect(rec.streams).toHaveLength(1);
  });
});
