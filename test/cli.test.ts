// The CLI as installers run it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { deriveRadioKey, parseLine, verifyFrameMac } from '../protocol/index.ts';

const run = (args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'gateway/cli/safehaven.ts', ...args]);

it('frame prints one device-event line, signed with the secret\'s radio key, that the gateway parser accepts', async () => {
  const { stdout } = await run(['frame', '--device', 'pb-store-0001', '--secret', 's3cret-for-test', '--seq', '42', '--type', 'panic', '--rssi=-61', '--battery', '87']);
  expect(stdout.endsWith('\r\n')).toBe(true);
  const parsed = parseLine(stdout.trimEnd());
  expect(parsed.ok).toBe(true);
  if (!parsed.ok || parsed.frame.kind !== 'EVT') throw new Error('not an EVT frame');
  expect(parsed.frame).toMatchObject({ deviceId: 'pb-store-0001', seq: 42, type: 'panic', rssi: -61, battery: 87 });
  expect(verifyFrameMac(parsed.frame, deriveRadioKey('s3cret-for-test'))).toBe(true);
  expect(verifyFrameMac(parsed.frame, deriveRadioKey('another-secret'))).toBe(false);
});

it('frame refuses a bad argument with a message naming it', async () => {
  const err = await run(['frame', '--device', 'pb-1', '--secret', 's', '--seq', 'x', '--type', 'panic']).then(() => null, (e: { code: number; stderr: string }) => e);
  expect(err?.code).toBe(2);
  expect(err?.stderr).toMatch(/--seq/);
});
