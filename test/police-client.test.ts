// The police HTTP client against real sockets: POSTs on its worker thread,
// failures classified as the dispatcher expects, and a worker that fails to
// start or dies mid-request never stops delivery — the client carries on in
// the main thread, and a request the dying worker held fails (to be retried
// under its Idempotency-Key) instead of hanging.
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { PoliceRequestError, startPoliceClient, type PoliceHttpClient } from '../gateway/dispatch/police-client.ts';
import { cleanupsAfterEach, startScriptedEndpoint } from './support/scripted-endpoint.ts';

const log = pino({ level: 'silent' });
const cleanups = cleanupsAfterEach();

/** An endpoint that answers 201 with a case id (unless told to hang), and the bodies it was sent. */
async function endpoint() {
  const police = await startScriptedEndpoint(cleanups, { status: 201, body: '{"caseId":"C-1"}' });
  return { police, url: () => police.url(), bodies: () => police.seen.map((s) => s.body) };
}

async function client(workerUrl?: URL): Promise<PoliceHttpClient> {
  const c = await startPoliceClient({ connectionsPerOrigin: 2, log, workerUrl });
  cleanups.push(() => c.close());
  return c;
}

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url);

describe('the police client', () => {
  it('POSTs from its worker thread and classifies refusals and timeouts', async () => {
    const ep = await endpoint();
    const c = await client();
    expect(c.thread).toBe('worker');

    const answer = await c.post(ep.url(), '{"alertId":"al-1"}', { 'content-type': 'application/json', 'idempotency-key': 'al-1' }, 2000);
    expect(answer).toEqual({ status: 201, body: '{"caseId":"C-1"}' });
    expect(ep.bodies()).toEqual(['{"alertId":"al-1"}']);

    ep.police.play([{ hangMs: 5000 }]);
    const hung = await c.post(ep.url(), '{}', {}, 200).catch((e: unknown) => e);
    expect(hung).toBeInstanceOf(PoliceRequestError);
    expect((hung as PoliceRequestError).code).toBe('TIMEOUT');

    // Port 1: nothing listens there.
    const refused = await c.post('http://127.0.0.1:1/alerts', '{}', {}, 2000).catch((e: unknown) => e);
    expect((refused as PoliceRequestError).code).toBe('CONNECTION');
  });

  it('fails the request a dying worker held and carries on in the main thread', async () => {
    const ep = await endpoint();
    const c = await client(fixture('police-worker-dies.mjs'));
    expect(c.thread).toBe('worker');

    const lost = await c.post(ep.url(), '{"alertId":"al-2"}', {}, 2000).catch((e: unknown) => e);
    // Our client's failure, not the endpoint's: retried without counting against its breaker.
    expect((lost as PoliceRequestError).code).toBe('CLIENT_DOWN');
    expect(c.thread).toBe('main');

    const answer = await c.post(ep.url(), '{"alertId":"al-2"}', {}, 2000);
    expect(answer.status).toBe(201);
    expect(ep.bodies()).toEqual(['{"alertId":"al-2"}']);
  });

  it('ends a worker that stops answering and carries on in the main thread', async () => {
    const ep = await endpoint();
    const c = await client(fixture('police-worker-hangs.mjs'));
    // Past its own 100 ms and the 2 s grace: the request fails as ours, the worker is ended and replaced.
    const stuck = await c.post(ep.url(), '{}', {}, 100).catch((e: unknown) => e);
    expect((stuck as PoliceRequestError).code).toBe('CLIENT_DOWN');
    await vi.waitFor(() => expect(c.thread).toBe('main'));
    expect((await c.post(ep.url(), '{}', {}, 2000)).status).toBe(201);
  });

  it('runs in the main thread when its worker throws or quits before it is ready', async () => {
    const ep = await endpoint();
    for (const name of ['police-worker-broken.mjs', 'police-worker-quits.mjs']) {
      const c = await client(fixture(name));
      expect(c.thread).toBe('main');
      expect((await c.post(ep.url(), '{}', {}, 2000)).status).toBe(201);
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
