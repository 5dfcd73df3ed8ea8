// The real gateway as a child process (`node --import tsx gateway/main.ts`),
// configured by env vars exactly as an operator runs it. For tests that must
// kill it (SIGKILL mid-burst), signal it (SIGTERM/SIGINT) or start it as
// another user, and for the benchmarks.
//
// Every child is tracked: `killAllGateways()` (call it from afterEach/afterAll)
// SIGKILLs whatever is still alive, each child has a hard deadline after which
// it is SIGKILLed, and the test process SIGKILLs leftovers when it exits, so
// no test can leave a gateway running or hang waiting for one.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { GatewayInfo } from '../../gateway/gateway.ts';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** One pino line from the gateway's stdout (a line that is not JSON is kept as `{ msg: line, raw: true }`). */
export type GatewayLogLine = Record<string, unknown> & { level?: number; msg?: string; raw?: true };

/** What the `"ready": true` log line carries. */
export type GatewayReady = GatewayInfo;

export interface GatewayExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface GatewayProcessOptions {
  /** SAFEHAVEN_DATA_DIR; reused across restarts to test recovery. */
  dataDir: string;
  /** SAFEHAVEN_MQTT_PORT, default 0 (any free port). */
  mqttPort?: number;
  /** SAFEHAVEN_HTTP_PORT, default 0. */
  httpPort?: number;
  /** More SAFEHAVEN_* variables; these win over the defaults set here. */
  env?: Record<string, string>;
  /** Pass the test process's env through (default true; PATH etc.). SAFEHAVEN_* from it are dropped either way. */
  inheritEnv?: boolean;
  /** SIGKILL the child after this long whatever happens (default 120 s). */
  hardTimeoutMs?: number;
  /** Run as another user (root only): e.g. `asUser(NOBODY)`. */
  user?: { uid: number; gid: number; home: string };
  /** Extra node flags before the script (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  nodeArgs?: string[];
  /** Echo the child's output to the test's stderr (debugging). */
  echo?: boolean;
  /** Which parsed log lines to keep (default all); a benchmark keeps only warnings and the ready line. */
  keep?: (line: GatewayLogLine) => boolean;
}

/** Raw output kept per stream: the tail, for failure messages; parsed lines are kept separately. */
const MAX_RAW_CHARS = 2 * 1024 * 1024;

/** Small defaults that keep a child cheap on a 2-core machine; override through `env`. */
const DEFAULT_ENV: Record<string, string> = {
  SAFEHAVEN_LOG_LEVEL: 'info',
  SAFEHAVEN_MQTT_HOST: '127.0.0.1',
  SAFEHAVEN_HTTP_HOST: '127.0.0.1',
  SAFEHAVEN_DEMO_STORES: '4',
  SAFEHAVEN_DEMO_HOMES: '0',
  // A managed influxd per child would cost seconds and RAM; the metrics tests start their own.
  SAFEHAVEN_INFLUX_MANAGED: 'false',
};

const live = new Set<GatewayProcess>();
let exitHookInstalled = false;

export class GatewayProcess {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  readonly pid: number;
  /** Resolves (never rejects) when the child has exited, with its code or signal. */
  readonly exited: Promise<GatewayExit>;
  private exitInfo: GatewayExit | null = null;
  private stdoutText = '';
  private stderrText = '';
  private partial = '';
  private readonly lines: GatewayLogLine[] = [];
  private readonly lineWaiters = new Set<() => void>();
  private readonly hardTimer: NodeJS.Timeout;
  private readyInfo: GatewayReady | null = null;

  constructor(readonly opts: GatewayProcessOptions) {
    const inherited = opts.inheritEnv === false ? { PATH: process.env.PATH ?? '' } : withoutSafehavenVars(process.env);
    const env: Record<string, string> = {
      ...inherited,
      ...DEFAULT_ENV,
      SAFEHAVEN_DATA_DIR: opts.dataDir,
      SAFEHAVEN_MQTT_PORT: String(opts.mqttPort ?? 0),
      SAFEHAVEN_HTTP_PORT: String(opts.httpPort ?? 0),
      ...(opts.user ? { HOME: opts.user.home, TMPDIR: opts.user.home } : {}),
      ...opts.env,
    };
    this.child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', 'gateway/main.ts'], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}),
    });
    if (this.child.pid === undefined) throw new Error('could not spawn the gateway');
    this.pid = this.child.pid;
    this.child.stdout.on('data', (chunk: Buffer) => this.onStdout(chunk.toString('utf8')));
    this.child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.stderrText = capped(this.stderrText + text);
      if (opts.echo) process.stderr.write(`[gw ${this.pid} err] ${text}`);
    });
    this.exited = new Promise<GatewayExit>((resolveExit) => {
      // 'close' (not 'exit'): every byte of stdout/stderr has been read by then.
      this.child.once('close', (code, signal) => {
        this.onStdout('\n');
        this.exitInfo = { code, signal };
        clearTimeout(this.hardTimer);
        live.delete(this);
        this.wake();
        resolveExit(this.exitInfo);
      });
      this.child.once('error', (err) => {
        this.stderrText += `spawn error: ${err.message}\n`;
      });
    });
    this.hardTimer = setTimeout(() => {
      this.stderrText += `\n[gateway-process] hard timeout of ${opts.hardTimeoutMs ?? 120_000} ms: SIGKILL\n`;
      this.kill('SIGKILL');
    }, opts.hardTimeoutMs ?? 120_000);
    this.hardTimer.unref();
    live.add(this);
    installExitHook();
  }

  /** True until the child has exited. */
  get alive(): boolean {
    return this.exitInfo === null;
  }

  get exit(): GatewayExit | null {
    return this.exitInfo;
  }

  /** Every JSON log line so far. */
  logs(): readonly GatewayLogLine[] {
    return this.lines;
  }

  findLog(predicate: (line: GatewayLogLine) => boolean): GatewayLogLine | undefined {
    return this.lines.find(predicate);
  }

  output(): { stdout: string; stderr: string } {
    return { stdout: this.stdoutText, stderr: this.stderrText };
  }

  /** The last lines of both streams, for assertion messages. */
  tail(lines = 30): string {
    const last = (text: string) => text.split('\n').slice(-lines).join('\n');
    return `--- gateway ${this.pid} stdout (tail) ---\n${last(this.stdoutText)}\n--- stderr (tail) ---\n${last(this.stderrText)}`;
  }

  /**
   * Resolves with the first log line matching `predicate`; rejects if the child
   * exits first or after `timeoutMs`.
   */
  async waitForLog(predicate: (line: GatewayLogLine) => boolean, what: string, timeoutMs = 30_000): Promise<GatewayLogLine> {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.lines.length; seen++) if (predicate(this.lines[seen]!)) return this.lines[seen]!;
      if (!this.alive) throw new Error(`gateway exited (${JSON.stringify(this.exitInfo)}) before ${what}\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.tail()}`);
      await new Promise<void>((wake) => {
        const t = setTimeout(done, Math.min(left, 1000));
        function done() {
          clearTimeout(t);
          wake();
        }
        this.lineWaiters.add(done);
      });
    }
  }

  /** Waits for the `"ready": true` line (the gateway is listening on both ports). */
  async ready(timeoutMs = 60_000): Promise<GatewayReady> {
    if (this.readyInfo) return this.readyInfo;
    const line = await this.waitForLog((l) => l.ready === true, 'the "ready" log line', timeoutMs);
    this.readyInfo = line as unknown as GatewayReady;
    return this.readyInfo;
  }

  get mqttUrl(): string {
    return `mqtt://127.0.0.1:${this.requireReady().mqttPort}`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.requireReady().httpPort}`;
  }

  /** GET /healthz (unauthenticated). */
  async health(): Promise<{ status: number; json: any }> {
    const res = await fetch(`${this.httpUrl}/healthz`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, json: await res.json() };
  }

  /** Sends a signal; a no-op once the child has exited. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.alive) this.child.kill(signal);
  }

  /**
   * SIGTERM and wait for the exit; SIGKILL if it has not exited after
   * `graceMs`. Resolves with how it exited.
   */
  async stop(graceMs = 20_000): Promise<GatewayExit> {
    if (!this.alive) return this.exitInfo!;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resident set size of the child in KiB, from /proc (Linux); null once it has exited. */
  rssKiB(): number | null {
    return readRssKiB(this.pid);
  }

  private requireReady(): GatewayReady {
    if (!this.readyInfo) throw new Error('gateway not ready yet: await ready() first');
    return this.readyInfo;
  }

  private onStdout(text: string): void {
    this.stdoutText = capped(this.stdoutText + text);
    if (this.opts.echo && text.trim()) process.stderr.write(`[gw ${this.pid}] ${text}`);
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) {
      if (!raw.trim()) continue;
      let line: GatewayLogLine;
      try {
        line = JSON.parse(raw) as GatewayLogLine;
      } catch {
        line = { msg: raw, raw: true };
      }
      if (!this.opts.keep || line.ready === true || this.opts.keep(line)) this.lines.push(line);
    }
    if (parts.length > 0) this.wake();
  }

  private wake(): void {
    for (const w of [...this.lineWaiters]) w();
    this.lineWaiters.clear();
  }
}

/** Starts a gateway child process (does not wait for it to be ready). */
export function startGateway(opts: GatewayProcessOptions): GatewayProcess {
  return new GatewayProcess(opts);
}

/** SIGKILLs every gateway child still alive and waits for them to go. For afterEach/afterAll. */
export async function killAllGateways(): Promise<void> {
  const all = [...live];
  for (const gw of all) gw.kill('SIGKILL');
  await Promise.all(all.map((gw) => gw.exited));
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const gw of live) {
      try {
        gw.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

function capped(text: string): string {
  return text.length > MAX_RAW_CHARS ? text.slice(-MAX_RAW_CHARS / 2) : text;
}

function withoutSafehavenVars(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.startsWith('SAFEHAVEN_')) out[k] = v;
  return out;
}

/** VmRSS of a process in KiB (Linux /proc), or null if it is gone. */
export function readRssKiB(pid: number): number | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) : null;
}

/** A fresh temp data dir (removed by `removeDir`). */
export function tempDataDir(prefix = 'safehaven-proc-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * A TCP port that is free now on 127.0.0.1, chosen below the kernel's
 * ephemeral range (32768+ on Linux), so that a restart can bind the same port
 * again without an outgoing connection having taken it meanwhile.
 */
export async function freePortOutsideEphemeralRange(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
  throw new Error('no free port found in 20000..31999');
}

/** A port free now, from the kernel (ephemeral range). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const server = createServer();
    server.once('error', () => ok(false));
    server.listen(port, '127.0.0.1', () => server.close(() => ok(true)));
  });
}

/** uid/gid of `nobody` on Debian. */
export const NOBODY = { uid: 65534, gid: 65534 } as const;

export const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * Spawn options to run the gateway as an unprivileged user (root can write
 * through any file mode, so permission tests need this). Creates a HOME/TMPDIR
 * the user owns (tsx keeps its cache under TMPDIR); the repo, node_modules and
 * node itself must be readable by the user (they are on a default checkout).
 */
export function asUser(ids: { uid: number; gid: number } = NOBODY): { uid: number; gid: number; home: string } {
  const home = mkdtempSync(join(tmpdir(), 'safehaven-user-home-'));
  chmodSync(home, 0o700);
  chownSync(home, ids.uid, ids.gid);
  return { ...ids, home };
}
