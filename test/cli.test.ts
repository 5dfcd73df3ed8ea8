// The CLI as installers run it.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { PtyCable } from '../device-sim/pty.ts';
import { ServiceAccounts } from '../gateway/broker/service-accounts.ts';
import { createLineSplitter, deriveAlertId, deriveRadioKey, formatAck, parseLine, verifyFrameMac, type SerialFrame } from '../protocol/index.ts';
import { waitFor } from './support/harness.ts';

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

it('sim dongle boots, presses signed with the radio key, and prints the ACK lines it reads back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'safehaven-cli-dongle-'));
  // This test plays the gateway, on the other end of the pty pair.
  const cable = new PtyCable(join(dir, 'dongle'), join(dir, 'gateway'));
  await cable.plug();
  const frames: SerialFrame[] = [];
  const splitter = createLineSplitter();
  cable.onData((bytes) => {
    for (const out of splitter.push(bytes)) {
      const parsed = 'line' in out ? parseLine(out.line) : null;
      if (parsed?.ok) frames.push(parsed.frame);
    }
  });
  const cli = spawn(process.execPath, ['--import', 'tsx', 'gateway/cli/safehaven.ts', 'sim', 'dongle', '--path', cable.gatewayPath,
    '--devices', 'pb-cli-1', '--secret', 's3cret-for-test', '--press', 'pb-cli-1', '--receiver', 'rx-cli'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  cli.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    const press = await waitFor(() => frames.find((f) => f.kind === 'EVT'), 'the press');
    expect(frames.slice(0, 2).map((f) => f.kind)).toEqual(['BOOT', 'RHL']);
    expect(frames[0]).toMatchObject({ receiverId: 'rx-cli' });
    if (press.kind !== 'EVT') throw new Error('not an EVT');
    expect(verifyFrameMac(press, deriveRadioKey('s3cret-for-test'))).toBe(true);
    const alertId = deriveAlertId('pb-cli-1', press.seq);
    cable.write(Buffer.from(formatAck({ deviceId: 'pb-cli-1', seq: press.seq, alertId, state: 'received' })));
    await waitFor(() => stderr.includes(`ACK received     pb-cli-1 seq ${press.seq} alert ${alertId}`), 'the ACK printed');
  } finally {
    const exited = new Promise((resolve) => cli.once('exit', resolve));
    cli.kill('SIGTERM');
    expect(await exited).toBe(0);
    await cable.unplug();
    rmSync(dir, { recursive: true, force: true });
  }
});

it('hash-password prints a scrypt hash of the password on stdin that the service-account check accepts', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/cli/safehaven.ts', 'hash-password']);
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stdin.end('cctv-centre-password-1\n');
  const code = await new Promise((resolve) => child.once('exit', resolve));
  expect(code).toBe(0);
  const hash = out.trim();
  expect(hash).toMatch(/^scrypt\$14\$8\$1\$/);
  const accounts = new ServiceAccounts([{ username: 'cctv', password: hash, publish: [], subscribe: [], deny: [] }]);
  expect(await accounts.authenticate('cctv', 'cctv-centre-password-1')).not.toBeNull();
  expect(await accounts.authenticate('cctv', 'cctv-centre-password-2')).toBeNull();
});

it('sim refuses an unknown scenario or a bad count with a message naming the option', async () => {
  for (const [args, option] of [[['sim', '--scenario', 'meltdown'], '--scenario'], [['sim', '--devices', '0'], '--devices'], [['sim', '--loss', '2'], '--loss']] as const) {
    const err = await run([...args]).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(err?.code, args.join(' ')).toBe(2);
    expect(err?.stderr).toContain(option);
  }
});
