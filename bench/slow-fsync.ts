// A slow disk for benchmarks: bench/slow-fsync.c, compiled here and loaded
// into a child process with LD_PRELOAD, makes each of its fsync and fdatasync
// calls wait `ms` longer.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The environment that gives a child process the slow disk (the library is compiled into `dir`). */
export function slowFsyncEnv(dir: string, ms: number): Record<string, string> {
  const lib = join(dir, 'slow-fsync.so');
  const built = spawnSync('cc', ['-shared', '-fPIC', '-O2', '-o', lib, fileURLToPath(new URL('./slow-fsync.c', import.meta.url)), '-ldl'], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`a slow disk needs a C compiler (cc): ${built.error?.message ?? built.stderr}`);
  return { LD_PRELOAD: lib, SAFEHAVEN_BENCH_SLOW_FSYNC_MS: String(ms) };
}
