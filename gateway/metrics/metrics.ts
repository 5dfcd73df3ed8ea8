// Latency and health metrics, put together from the config: which InfluxDB
// (the configured one, a managed local influxd, or none), the writer in front
// of it, the stage recorder, the in-memory window and the health sampler.
// Nothing here can hold up the gateway: InfluxDB is never waited for.
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Counters } from './counters.ts';
import { HealthSampler, type HealthSources } from './health-sampler.ts';
import { createInfluxClient, DEFAULT_DATABASE, type InfluxClient } from './influx-client.ts';
import { InfluxWriter, type WriterState } from './influx-writer.ts';
import { LatencyQuery } from './latency-query.ts';
import { LatencyRecorder } from './latency-recorder.ts';
import { LatencyWindow } from './latency-window.ts';
import { findOnPath, INSTALL_HINT, ManagedInfluxd } from './managed-influxd.ts';
import { latencyPoint } from './points.ts';

/** Alerts between commit and police 2xx that are timed at once; more is an outage, and the oldest are let go (counted). */
const IN_FLIGHT_ALERTS = 5000;
/** Recent samples /api/latency can answer from without InfluxDB. */
const MEMORY_SAMPLES = 5000;
/** While InfluxDB fails, retries back off to at most this many flush intervals: its return is noticed within that. */
const RETRY_MAX_FLUSHES = 10;

export interface MetricsDeps {
  clock: Clock;
  counters: Counters;
  log: (module: string) => Logger;
  /** Where influxd is installed, or null; default: looked up on PATH. */
  findInfluxd?: () => string | null;
}

export type InfluxStatus = WriterState | 'disabled' | 'not-installed' | 'failed';

export interface InfluxHealth {
  status: InfluxStatus;
  url: string | null;
  managed: boolean;
  buffered: number;
  dropped: number;
  written: number;
  lastError: string | null;
  lastErrorAt: number | null;
  install?: string;
}

export class Metrics {
  private readonly window = new LatencyWindow(MEMORY_SAMPLES);
  private influx: InfluxClient | null = null;
  private writer: InfluxWriter | null = null;
  private managed: ManagedInfluxd | null = null;
  private sampler: HealthSampler | null = null;
  private off: { status: 'disabled' | 'not-installed' | 'failed'; reason: string } | null = null;

  constructor(private readonly config: Pick<Config, 'dataDir' | 'influx' | 'supervision'>, private readonly deps: MetricsDeps) {}

  /**
   * Chooses the InfluxDB and starts writing to it in the background. Returns
   * the recorder to wire into the alert path and the query behind /api/latency.
   */
  async start(): Promise<{ recorder: LatencyRecorder; query: LatencyQuery }> {
    const { clock, counters } = this.deps;
    const log = this.deps.log('metrics');
    const opts = this.config.influx;
    const url = opts.url ?? (await this.startManaged(log));
    if (url) {
      this.influx = createInfluxClient({ url, retention: opts.retention, timeoutMs: opts.timeoutMs });
      this.writer = new InfluxWriter({ sink: this.influx, clock, counters, log: this.deps.log('influx') }, {
        bufferSize: opts.bufferSize, batchSize: opts.batchSize, flushIntervalMs: opts.flushIntervalMs, retryMaxMs: RETRY_MAX_FLUSHES * opts.flushIntervalMs,
      });
      this.writer.start();
      log.info({ url: this.influx.displayUrl, managed: this.managed !== null }, 'latency metrics go to InfluxDB');
    }
    const writer = this.writer;
    const recorder = new LatencyRecorder({
      clock, counters, log,
      onSample: (sample) => {
        this.window.add(sample);
        writer?.add(latencyPoint(sample));
      },
    }, IN_FLIGHT_ALERTS);
    return { recorder, query: new LatencyQuery({ influx: this.influx, window: this.window, clock, log }) };
  }

  /** The `gateway` and `device_health` series; without an InfluxDB there is nowhere to put them. */
  startHealth(sources: Omit<HealthSources, 'metricsBacklog'>): void {
    const writer = this.writer;
    if (!writer) return;
    this.sampler = new HealthSampler({
      sources: { ...sources, metricsBacklog: () => writer.status() },
      counters: this.deps.counters, clock: this.deps.clock, log: this.deps.log('health-sampler'),
      emit: (points) => points.forEach((p) => writer.add(p)),
    }, { intervalMs: this.config.influx.healthIntervalSec * 1000, heartbeatSec: this.config.supervision.heartbeatSec });
    this.sampler.start();
  }

  /** For /healthz. */
  status(): InfluxHealth {
    const managed = this.managed !== null;
    if (!this.writer || !this.influx) {
      const off = this.off ?? { status: 'disabled', reason: '' };
      return {
        status: off.status, url: null, managed, buffered: 0, dropped: 0, written: 0, lastError: off.status === 'failed' ? off.reason : null, lastErrorAt: null,
        ...(off.status === 'not-installed' ? { install: INSTALL_HINT } : {}),
      };
    }
    const w = this.writer.status();
    return { status: w.state, url: this.influx.displayUrl, managed, buffered: w.buffered, dropped: w.dropped, written: w.written, lastError: w.lastError, lastErrorAt: w.lastErrorAt };
  }

  /** One line for the start-up banner. */
  describe(): string {
    if (this.influx) {
      return this.managed
        ? `${this.influx.displayUrl}   (managed influxd, data in ${join(this.config.dataDir, 'influxdb')})`
        : this.influx.displayUrl;
    }
    return `off: ${this.off?.reason ?? 'not configured'}; /api/latency answers from memory`;
  }

  /** After the alert path has stopped: a last flush (bounded), then the managed influxd. */
  async stop(): Promise<void> {
    this.sampler?.stop();
    await this.writer?.stop(this.config.influx.timeoutMs);
    await this.managed?.stop();
  }

  private async startManaged(log: Logger): Promise<string | null> {
    const { dataDir, influx } = this.config;
    if (!influx.managed) {
      this.off = { status: 'disabled', reason: 'no SAFEHAVEN_INFLUX_URL and influx.managed is false' };
      return null;
    }
    const binary = (this.deps.findInfluxd ?? (() => findOnPath('influxd')))();
    if (!binary) {
      this.off = { status: 'not-installed', reason: `influxd is not installed (install: ${INSTALL_HINT})` };
      log.warn({ install: INSTALL_HINT, code: 'INFLUXD_NOT_INSTALLED' },
        `running WITHOUT InfluxDB: no SAFEHAVEN_INFLUX_URL and no influxd installed, so latency is kept in memory only. Install it with: ${INSTALL_HINT}`);
      return null;
    }
    const managed = new ManagedInfluxd({ binary, dir: join(dataDir, 'influxdb'), httpPort: influx.httpPort, rpcPort: influx.rpcPort, log: this.deps.log('influxd') });
    try {
      await managed.start();
    } catch (err) {
      this.off = { status: 'failed', reason: `could not start influxd: ${(err as Error).message}` };
      log.error({ err, code: 'INFLUXD_START_FAILED' }, 'could not start the managed influxd: running without InfluxDB');
      return null;
    }
    this.managed = managed;
    managed.ready().then(
      () => log.info({ url: managed.url() }, 'managed influxd answers'),
      (err: Error & { code?: string }) => log.error({ err: err.message, code: err.code }, 'managed influxd is not answering: metrics are buffered meanwhile'),
    );
    return `${managed.url()}/${DEFAULT_DATABASE}`;
  }
}
