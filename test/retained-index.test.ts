// Retained messages found by exact topic, wildcard filters still served by a scan.
import { expect, it } from 'vitest';
import { indexedMemoryPersistence } from '../gateway/broker/retained-index.ts';

const packet = (topic: string, payload: string) => ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true });

async function topicsOf(stream: NodeJS.ReadableStream): Promise<string[]> {
  const out: string[] = [];
  for await (const p of stream as AsyncIterable<{ topic: string; payload: Buffer }>) out.push(`${p.topic}=${p.payload.toString()}`);
  return out;
}

it('answers exact filters by lookup and wildcard filters by matching; an empty payload clears; the latest wins', async () => {
  const store = indexedMemoryPersistence();
  await store.storeRetained(packet('safehaven/v1/dev/a/config', '{"heartbeatSec":60}'));
  await store.storeRetained(packet('safehaven/v1/dev/b/config', '{"heartbeatSec":30}'));
  await store.storeRetained(packet('safehaven/v1/dev/b/config', '{"heartbeatSec":20}'));
  await store.storeRetained(packet('safehaven/v1/dev/a/status', '"online"'));
  await new Promise<void>((resolve) => store.storeRetained(packet('safehaven/v1/dev/c/status', '"online"'), () => resolve()));
  await store.storeRetained(packet('safehaven/v1/dev/c/status', ''));

  expect(await topicsOf(store.createRetainedStreamCombi(['safehaven/v1/dev/b/config', 'safehaven/v1/dev/x/config'])))
    .toEqual(['safehaven/v1/dev/b/config={"heartbeatSec":20}']);
  expect((await topicsOf(store.createRetainedStream('safehaven/v1/dev/+/status')))).toEqual(['safehaven/v1/dev/a/status="online"']);
  expect((await topicsOf(store.createRetainedStream('safehaven/#'))).sort()).toEqual([
    'safehaven/v1/dev/a/config={"heartbeatSec":60}', 'safehaven/v1/dev/a/status="online"', 'safehaven/v1/dev/b/config={"heartbeatSec":20}',
  ]);
});

it('keeps one copy of a payload many devices retain alike, never a view of the buffer it came in', async () => {
  const store = indexedMemoryPersistence();
  const chunk = Buffer.from('xx"online"yy');
  const fromSocket = chunk.subarray(2, 10);
  await store.storeRetained(packet('safehaven/v1/dev/a/status', '"online"'));
  await store.storeRetained({ ...packet('safehaven/v1/dev/b/status', ''), payload: fromSocket });
  chunk.fill(0x20);
  const found: Buffer[] = [];
  for await (const p of store.createRetainedStreamCombi(['safehaven/v1/dev/a/status', 'safehaven/v1/dev/b/status']) as AsyncIterable<{ payload: Buffer; qos: number; cmd: string }>) {
    expect(p).toMatchObject({ cmd: 'publish', qos: 1 });
    found.push(p.payload);
  }
  expect(found.map((b) => b.toString())).toEqual(['"online"', '"online"']);
  expect(found[0]).toBe(found[1]);
});
