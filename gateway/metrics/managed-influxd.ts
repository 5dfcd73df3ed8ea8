// A local influxd run by the gateway when no InfluxDB URL is configured and
// the binary is installed: its own config file, ports and directories under
// <dataDir>/influxdb, so several can run side by side (tests) and none
// touches a system InfluxDB. Stopped with the gateway: SIGTERM, then SIGKILL
// after a bound; one left behind by a killed gateway is stopped on the next start.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

export const INSTALL_HINT = 'sudo bash scripts/install-system-deps.sh   (or: sudo apt-get install influxdb)';

export class InfluxdError extends Error {
  constructor(readonly code: 'INFLUXD_NOT_READY' | 'INFLUXD_EXITED' | 'INFLUXD_SPAWN_FAILED', message: string) {
    super(message);
  }
}

export interface ManagedInfluxdOptions {
  binary: string;
  /** Holds the generated config, meta/, data/, wal/, influxd.log and influxd.pid. */
  dir: string;
  /** 0 = any free port, chosen once and kept across restarts of this instance. */
  httpPort: number;
  rpcPort: number;
  log: Logger;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
}

const HOST = '127.0.0.1';
const KILL_WAIT_MS = 2000;

/** The first executable `name` on PATH, or null. */
export function findOnPath(name: string, pathEnv = process.env.PATH ?? ''): string | null {
  for (const dir of pathEnv.split(':')) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** `port` if nothing listens on it (0 = any free port); rejects with the listen error otherwise. */
function listenable(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, HOST, () => {
      const { port: bound } = server.address() as AddressInfo;
      server.close(() => resolve(bound));
    });
  });
}

export const freePort = (): Promise<number> => listenable(0);

function renderConfig(dir: string, httpPort: number, rpcPort: number): string {
  const path = (sub: string) => JSON.stringify(join(dir, sub));
  return `# Written by SafeHaven each time it starts its managed influxd: edits are overwritten.
# Upstream influxd reads reporting-disabled, Debian's build reads reporting-enabled;
# each ignores the other's key, so both are set: no usage reports leave this machine.
reporting-disabled = true
reporting-enabled = false
bind-address = "${HOST}:${rpcPort}"

[meta]
  dir = ${path('meta')}

[data]
  dir = ${path('data')}
  wal-dir = ${path('wal')}
  query-log-enabled = false

# No _internal database: its writes every 10 s cost CPU and disk on a small gateway box.
[monitor]
  store-enabled = false

[http]
  bind-address = "${HOST}:${httpPort}"
  log-enabled = false

[logging]
  level = "warn"
`;
}

/** The last bytes of influxd's log, for an error message that says why it stopped. */
function logTail(path: string, bytes = 1500): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const size = statSync(path).size;
      const buf = Buffer.alloc(Math.min(bytes, size));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8').trim();
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL if `pid` is not gone within `graceMs`. */
async function terminate(pid: number, gone: (withinMs: number) => Promise<boolean>, graceMs: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await gone(graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await gone(KILL_WAIT_MS);
}

async function polledGone(pid: number, withinMs: number): Promise<boolean> {
  for (let waited = 0; waited < withinMs; waited += 50) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

export class ManagedInfluxd {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private ports: { http: number; rpc: number } | null = null;
  private stopping = false;
  private readonly killOnExit = () => this.child?.kill('SIGKILL');

  constructor(private readonly opts: ManagedInfluxdOptions) {}

  private get paths() {
    const { dir } = this.opts;
    return { config: join(dir, 'influxdb.conf'), log: join(dir, 'influxd.log'), pid: join(dir, 'influxd.pid') };
  }

  /** Writes the config and spawns influxd; returns without waiting for it to answer (see ready()). */
  async start(): Promise<void> {
    if (this.child) return;
    const { dir, binary, log } = this.opts;
    for (const sub of ['meta', 'data', 'wal']) mkdirSync(join(dir, sub), { recursive: true });
    await this.stopLeftover();
    this.ports ??= { http: await this.portFor('http', this.opts.httpPort), rpc: await this.portFor('rpc', this.opts.rpcPort) };
    writeFileSync(this.paths.config, renderConfig(dir, this.ports.http, this.ports.rpc));
    const logFd = openSync(this.paths.log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(binary, ['-config', this.paths.config], { stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    this.stopping = false;
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      this.removePidFile(child.pid);
      process.off('exit', this.killOnExit);
      if (!this.stopping) log.error({ exitCode: code, signal, logTail: logTail(this.paths.log), code: 'INFLUXD_EXITED' }, 'managed influxd exited: latency metrics are buffered until it is back');
      resolve();
    }));
    child.once('error', (err) => log.error({ err, binary, code: 'INFLUXD_SPAWN_FAILED' }, 'could not run influxd'));
    if (child.pid !== undefined) writeFileSync(this.paths.pid, String(child.pid));
    // A gateway that exits without stop() (an uncaught error) must not leave influxd behind.
    process.once('exit', this.killOnExit);
    log.info({ influxdPid: child.pid, url: this.url(), dir, config: this.paths.config }, 'managed influxd started');
  }

  url(): string {
    if (!this.ports) throw new InfluxdError('INFLUXD_NOT_READY', 'managed influxd has not been started');
    return `http://${HOST}:${this.ports.http}`;
  }

  pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Resolves once /ping answers; rejects if influxd exits first or does not answer within the bound. */
  async ready(): Promise<void> {
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      if (!this.child) throw new InfluxdError('INFLUXD_EXITED', `influxd exited before answering: ${logTail(this.paths.log)}`);
      const ok = await fetch(`${this.url()}/ping`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
      if (ok) return;
      await sleep(100);
    }
    throw new InfluxdError('INFLUXD_NOT_READY', `influxd did not answer ${this.url()}/ping in time; see ${this.paths.log}`);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    this.stopping = true;
    const exited = this.exited;
    const gone = (ms: number) => Promise.race([exited.then(() => true), sleep(ms).then(() => false)]);
    await terminate(child.pid, gone, this.opts.stopTimeoutMs ?? 5000);
  }

  /**
   * The configured port, or a free one if it is taken (by the influxd that
   * the Debian package runs as a service on 8086, say): a metrics database on
   * another port beats none.
   */
  private async portFor(which: 'http' | 'rpc', port: number): Promise<number> {
    try {
      return await listenable(port);
    } catch (err) {
      const other = await freePort();
      this.opts.log.warn({ which, port, instead: other, err: (err as Error).message }, `port ${port} is taken: the managed influxd's ${which} port is ${other} instead`);
      return other;
    }
  }

  /** Only if it still names `pid`: a later start may have written its own. */
  private removePidFile(pid: number | undefined): void {
    try {
      if (readFileSync(this.paths.pid, 'utf8').trim() === String(pid)) rmSync(this.paths.pid, { force: true });
    } catch {
      // already gone
    }
  }

  /** An influxd of ours that a killed gateway left running would hold the ports and the data dir. */
  private async stopLeftover(): Promise<void> {
    let pid: number;
    try {
      pid = Number(readFileSync(this.paths.pid, 'utf8').trim());
    } catch {
      return;
    }
    const cmdline = (() => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (Number.isInteger(pid) && pid > 0 && cmdline.includes(this.paths.config)) {
      this.opts.log.warn({ influxdPid: pid }, 'stopping the influxd a previous run left behind');
      await terminate(pid, (ms) => polledGone(pid, ms), this.opts.stopTimeoutMs ?? 5000);
    }
    rmSync(this.paths.pid, { force: true });
  }
}
