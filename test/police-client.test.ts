// The police HTTP client against real sockets: POSTs on its worker thread,
// failures classified as the dispatcher expects, and a worker that fails to
// start or dies mid-request never stops delivery — the client carries on in
// the main thread, and a request the dying worker held fails (to be retried
// under its Idempotency-Key) instead of hanging.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PoliceRequestError, startPoliceClient, type PoliceHttpClient } from '../gateway/dispatch/police-client.ts';

const log = pino({ level: 'silent' });
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An endpoint that answers 201 with a case id, or never answers for paths under /hang. */
async function endpoint(): Promise<{ url: (path: string) => string; bodies: string[] }> {
  const bodies: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString());
      if (req.url?.startsWith('/hang')) return;
      res.writeHead(201, { 'content-type': 'application/json' }).end('{"caseId":"C-1"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const port = (server.address() as AddressInfo).port;
  return { url: (path) => `http://127.0.0.1:${port}${path}`, bodies };
}

async function client(workerUrl?: URL): Promise<PoliceHttpClient> {
  const c = await startPoliceClient({ connectionsPerOrigin: 2, log, workerUrl });
  cleanups.push(() => c.close());
  return c;
}

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);

describe('the police client', () => {
  it('POSTs from its worker thread and classifies refusals and timeouts', async () => {
    const police = await endpoint();
    const c = await client();
    expect(c.thread).toBe('worker');

    const answer = await c.post(police.url('/alerts'), '{"alertId":"al-1"}', { 'content-type': 'application/json', 'idempotency-key': 'al-1' }, 2000);
    expect(answer).toEqual({ status: 201, body: '{"caseId":"C-1"}' });
    expect(police.bodies).toEqual(['{"alertId":"al-1"}']);

    const hung = await c.post(police.url('/hang'), '{}', {}, 200).catch((e: unknown) => e);
    expect(hung).toBeInstanceOf(PoliceRequestError);
    expect((hung as PoliceRequestError).code).toBe('TIMEOUT');

    // Port 1: nothing listens there.
    const refused = await c.post('http://127.0.0.1:1/alerts', '{}', {}, 2000).catch((e: unknown) => e);
    expect((refused as PoliceRequestError).code).toBe('CONNECTION');
  });

  it('fails the request a dying worker held and carries on in the main thread', async () => {
    const police = await endpoint();
    const c = await client(fixture('police-worker-dies.mjs'));
    expect(c.thread).toBe('worker');

    const lost = await c.post(police.url('/alerts'), '{"alertId":"al-2"}', {}, 2000).catch((e: unknown) => e);
    // Our client's failure, not the endpoint's: retried without counting against its breaker.
    expect((lost as PoliceRequestError).code).toBe('CLIENT_DOWN');
    expect(c.thread).toBe('main');

    const answer = await c.post(police.url('/alerts'), '{"alertId":"al-2"}', {}, 2000);
    expect(answer.status).toBe(201);
    expect(police.bodies).toEqual(['{"alertId":"al-2"}']);
  });

  it('ends a worker that stops answering and carries on in the main thread', async () => {
    const police = await endpoint();
    const c = await client(fixture('police-worker-hangs.mjs'));
    // Past its own 100 ms and the 2 s grace: the request fails as ours, the worker is ended and replaced.
    const stuck = await c.post(police.url('/alerts'), '{}', {}, 100).catch((e: unknown) => e);
    expect((stuck as PoliceRequestError).code).toBe('CLIENT_DOWN');
    await vi.waitFor(() => expect(c.thread).toBe('main'));
    expect((await c.post(police.url('/alerts'), '{}', {}, 2000)).status).toBe(201);
  });

  it('runs in the main thread when its worker throws or quits before it is ready', async () => {
    const police = await endpoint();
    for (const name of ['police-worker-broken.mjs', 'police-worker-quits.mjs']) {
      const c = await client(fixture(name));
      expect(c.thread).toBe('main');
      expect((await c.post(police.url('/alerts'), '{}', {}, 2000)).status).toBe(201);
    }
  });

  it('closes twice without hanging and refuses a POST after close at once', async () => {
    const c = await startPoliceClient({ connectionsPerOrigin: 1, log });
    await c.close();
    await c.close();
    const refused = await c.post('http://127.0.0.1:1/alerts', '{}', {}, 60_000).catch((e: unknown) => e);
    expect((refused as PoliceRequestError).code).toBe('CLIENT_DOWN');
  });
});
