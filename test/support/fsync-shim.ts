// A slow and watched disk for a child process: fsync-shim.c, compiled here
// with cc and loaded with LD_PRELOAD, delays each fsync and fdatasync and
// logs those made on the child's main thread (its event loop).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FsyncShimOptions {
  /** Added to every fsync and fdatasync. */
  delayMs?: number;
  /** One line per fsync or fdatasync on the main thread is appended here. */
  mainThreadLog?: string;
}

/** The environment that gives a child process the shim (the library is compiled into `dir`). */
export function fsyncShimEnv(dir: string, opts: FsyncShimOptions): Record<string, string> {
  const lib = join(dir, 'fsync-shim.so');
  const built = spawnSync('cc', ['-shared', '-fPIC', '-O2', '-o', lib, fileURLToPath(new URL('./fsync-shim.c', import.meta.url)), '-ldl'], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`the fsync shim needs a C compiler (cc; scripts/install-system-deps.sh installs gcc): ${built.error?.message ?? built.stderr}`);
  return {
    LD_PRELOAD: lib,
    ...(opts.delayMs ? { SAFEHAVEN_FSYNC_DELAY_MS: String(opts.delayMs) } : {}),
    ...(opts.mainThreadLog ? { SAFEHAVEN_FSYNC_MAIN_LOG: opts.mainThreadLog } : {}),
  };
}
