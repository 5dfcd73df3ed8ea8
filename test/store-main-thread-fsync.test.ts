// The store never makes the event loop wait for the disk. Checked where it
// happens, at the system call: the real store (DurableStore, real SQLite, its
// checkpoint worker) runs in a child process with an LD_PRELOAD shim that logs
// every fsync and fdatasync called on the main thread. Sparse writes let the
// checkpoints catch up between them, the case in which SQLite restarts the
// WAL in the next write and fsyncs its header (session 14's code made 22 such
// calls on the main thread in this run), and a small restart threshold makes
// the checkpoint worker restart the WAL several times.
import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { REPO_ROOT } from './support/gateway-process.ts';

it('makes no fsync or fdatasync on the main thread while it writes, checkpoints and restarts its WAL', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/store-slow-disk.ts', '--fsync-ms', '0', '--writes', '20', '--rate', '4', '--restart-frames', '16'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code, err).toBe(0);
  const result = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
  expect(result.writes).toBe(20);
  expect(result.main_thread_syncs).toBe(0);
  expect(result.wal_restarts).toBeGreaterThanOrEqual(2);
}, 60_000);
