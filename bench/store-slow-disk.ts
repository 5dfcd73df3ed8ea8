// What a slow disk (an SD card, a disk shared with a backup) does to the
// gateway's event loop: writes through the real store (DurableStore: commit
// queue, WAL flusher on the thread pool, checkpoint worker) at a quiet
// night's pace, in a child process whose every fsync and fdatasync waits
// --fsync-ms longer (test/support/fsync-shim.c, LD_PRELOAD). The store may be slow to
// acknowledge; it must never stall the event loop, which carries every other
// device and every police POST. Prints the loop's delay percentiles and its
// longest stall, the fsyncs made on the main thread (the shim logs them),
// the acknowledgement latency, and the store's WAL restarts.
//
//   npm run bench:slow-disk [-- --fsync-ms 300 --rate 1 --sec 30 (or --writes N) --write-kb 16 --restart-frames 32]
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { nearestRank } from '../gateway/metrics/latency-window.ts';
import { Counters } from '../gateway/metrics/counters.ts';
import { DurableStore } from '../gateway/store/durable-store.ts';
import { fsyncShimEnv } from '../test/support/fsync-shim.ts';
import { removeDir, tempDataDir } from '../test/support/gateway-process.ts';

const { values: args } = parseArgs({
  options: {
    'fsync-ms': { type: 'string', default: '300' },
    /** Writes a second: a quiet night is a few (presence chunks, the odd alert), so checkpoints catch up between them. */
    rate: { type: 'string', default: '1' },
    sec: { type: 'string', default: '30' },
    /** A number of writes instead of --sec (at --rate, however late the timers run). */
    writes: { type: 'string' },
    /** Bytes per write, in KiB: 16 is four pages. */
    'write-kb': { type: 'string', default: '16' },
    /** The store restarts its WAL past this many frames (the gateway: 4,096); small, so that a short run restarts it several times. */
    'restart-frames': { type: 'string', default: '32' },
    child: { type: 'boolean', default: false },
  },
  strict: true,
});
const FSYNC_MS = Number(args['fsync-ms']);
const RATE = Number(args.rate);
const SEC = Number(args.sec);
if (!(Number.isInteger(FSYNC_MS) && FSYNC_MS >= 0 && FSYNC_MS <= 5000)) throw new Error('--fsync-ms must be a whole number from 0 to 5000');
if (!(RATE > 0 && RATE <= 1000)) throw new Error('--rate must be above 0 and at most 1000');
if (!(Number.isInteger(SEC) && SEC >= 2 && SEC <= 600)) throw new Error('--sec must be a whole number from 2 to 600');
const WRITES = args.writes === undefined ? null : Number(args.writes);
if (WRITES !== null && !(Number.isInteger(WRITES) && WRITES >= 1)) throw new Error('--writes must be a whole number of at least 1');
const WRITE_KB = Number(args['write-kb']);
const RESTART_FRAMES = Number(args['restart-frames']);
if (!(Number.isInteger(WRITE_KB) && WRITE_KB >= 1 && WRITE_KB <= 1024)) throw new Error('--write-kb must be a whole number from 1 to 1024');
if (!(Number.isInteger(RESTART_FRAMES) && RESTART_FRAMES >= 8)) throw new Error('--restart-frames must be a whole number of at least 8');

const round = (n: number) => Math.round(n * 10) / 10;
/** A gap this long between 1 ms ticks is a stall every device and police POST would feel. */
const STALL_MS = 50;

async function child(): Promise<void> {
  const dataDir = tempDataDir('safehaven-bench-slow-disk-');
  const store = new DurableStore({ dataDir, synchronous: 'full', checkpointIntervalMs: 250, restartWalFrames: RESTART_FRAMES }, new Counters(), pino({ level: 'warn' }));
  const { db, commits } = store.start();
  // Opening the store syncs on this thread (a new WAL's header); from here on nothing may.
  const mainLog = process.env.SAFEHAVEN_FSYNC_MAIN_LOG!;
  const mainSyncs = () => (existsSync(mainLog) ? readFileSync(mainLog, 'utf8').split('\n').filter(Boolean).length : 0);
  const mainSyncsAtStart = mainSyncs();
  const insert = db.prepare("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, 'bench', 'write', ?, ?)");
  const detail = JSON.stringify({ note: 'x'.repeat(WRITE_KB * 1024) });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const acks: number[] = [];
  let longestStall = 0;
  let stalls = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    longestStall = Math.max(longestStall, now - last);
    if (now - last > STALL_MS) stalls++;
    last = now;
  }, 1);
  loop.enable();
  const writes: Array<Promise<void>> = [];
  const start = performance.now();
  for (let i = 0; WRITES === null ? performance.now() - start < SEC * 1000 : i < WRITES; i++) {
    const at = performance.now();
    writes.push(commits.write(() => insert.run(Date.now(), `w${i}`, detail)).then(() => void acks.push(performance.now() - at)));
    await new Promise((resolve) => setTimeout(resolve, 1000 / RATE));
  }
  await Promise.all(writes);
  const mainThreadSyncs = mainSyncs() - mainSyncsAtStart;
  loop.disable();
  clearInterval(ticker);
  const status = store.status();
  await store.stop();
  removeDir(dataDir);
  acks.sort((a, b) => a - b);
  const ms = (ns: number) => round(ns / 1e6);
  process.stdout.write(`${JSON.stringify({
    bench: 'store-slow-disk', fsync_ms: FSYNC_MS, rate_per_s: RATE, sec: SEC, writes: writes.length,
    loop_delay_p50_ms: ms(loop.percentile(50)), loop_delay_p99_ms: ms(loop.percentile(99)), loop_delay_max_ms: ms(loop.max), longest_stall_ms: round(longestStall), stalls_over_50ms: stalls, main_thread_syncs: mainThreadSyncs,
    ack_p50_ms: round(nearestRank(acks, 50) ?? NaN), ack_p99_ms: round(nearestRank(acks, 99) ?? NaN),
    wal_flushes: status.walFlushes, checkpoints: status.checkpoint.checkpoints, wal_restarts: status.checkpoint.restarts ?? null, wal_restart_failures: status.checkpoint.restartFailures ?? null, wal_frames_at_end: status.checkpoint.walFrames,
    write_holds: status.checkpoint.holds, longest_hold_ms: status.checkpoint.longestHoldMs ?? null,
  })}\n`);
}

async function parent(): Promise<void> {
  const libDir = tempDataDir('safehaven-bench-slow-fsync-');
  try {
    process.stderr.write(`store on a slow disk: every fsync and fdatasync waits ${FSYNC_MS} ms more; ${RATE} writes/s of ${WRITE_KB} KiB, ${WRITES === null ? `for ${SEC} s` : `${WRITES} of them`}, WAL restarted past ${RESTART_FRAMES} frames…\n`);
    const run = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1), '--child'], {
      env: { ...process.env, ...fsyncShimEnv(libDir, { delayMs: FSYNC_MS, mainThreadLog: join(libDir, 'main-thread-syncs.log') }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    run.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    const code = await new Promise<number | null>((resolve) => run.on('close', resolve));
    if (code !== 0) throw new Error(`the store run exited with ${code}`);
    const result = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
    process.stderr.write([
      `  event-loop delay p50 / p99 / max   ${result.loop_delay_p50_ms} / ${result.loop_delay_p99_ms} / ${result.loop_delay_max_ms} ms (gaps between 1 ms ticks: longest ${result.longest_stall_ms} ms, ${result.stalls_over_50ms} over ${STALL_MS} ms)`,
      `  fsync / fdatasync on the main thread ${result.main_thread_syncs} (each one stalls the event loop for as long as the disk takes)`,
      `  acknowledgement p50 / p99          ${result.ack_p50_ms} / ${result.ack_p99_ms} ms (waits for the WAL flush: the slow disk shows here, and only here)`,
      `  store                              ${result.writes} writes, ${result.wal_flushes} WAL flushes, ${result.checkpoints} checkpoints, ${result.wal_restarts} WAL restarts by the checkpoint worker (${result.wal_restart_failures} failed), writes held ${result.write_holds} times (longest ${result.longest_hold_ms} ms), WAL at ${result.wal_frames_at_end} frames at the end`,
      '',
    ].join('\n'));
    process.stdout.write(out.trim().split('\n').pop() + '\n');
  } finally {
    removeDir(libDir);
  }
}

await (args.child ? child() : parent());
