// Talks to an InfluxDB 1.x with the `influx` client, and nothing else: every
// call has a hard deadline, and the client's own retries and host backoff are
// off, because the writer decides when to try again.
import { InfluxDB, type IPoint } from 'influx';

/** One line-protocol point; `timestamp` is epoch nanoseconds as a string (ms * 1e6 overflows a double). */
export interface InfluxPoint {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, number | string>;
  timestamp: string;
}

export type InfluxErrorCode = 'INFLUX_TIMEOUT' | 'INFLUX_REQUEST_FAILED';

export class InfluxError extends Error {
  constructor(readonly code: InfluxErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The raw JSON of /query: one result per statement. */
export interface InfluxQueryResult {
  results: Array<{
    statement_id: number;
    error?: string;
    series?: Array<{ name: string; tags?: Record<string, string>; columns: string[]; values: Array<Array<number | string | null>> }>;
  }>;
}

export interface InfluxClient {
  /** The URL without credentials, for logs, /healthz and the banner. */
  readonly displayUrl: string;
  readonly database: string;
  readonly retentionPolicy: string;
  /** Creates the database and makes our retention policy its default, if either is missing or different. */
  prepare(): Promise<void>;
  write(points: InfluxPoint[]): Promise<void>;
  query(influxql: string): Promise<InfluxQueryResult>;
}

export interface InfluxClientOptions {
  /** http(s)://[user:password@]host:port/database; no path = database `safehaven`. */
  url: string;
  /** InfluxQL duration, e.g. 30d. */
  retention: string;
  timeoutMs: number;
}

export const DEFAULT_DATABASE = 'safehaven';
/** Ours, so that a changed `influx.retention` alters it instead of adding another. */
export const RETENTION_POLICY = 'safehaven_rp';

/** Never disable the host: a disabled host answers "No host available" without trying, for up to 10 s. */
const NO_BACKOFF = { getDelay: () => 0, next() { return this; }, reset() { return this; } };

export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new InfluxError('INFLUX_TIMEOUT', `${what}: no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function requestFailed(what: string) {
  return (err: unknown): never => {
    if (err instanceof InfluxError) throw err;
    throw new InfluxError('INFLUX_REQUEST_FAILED', `${what}: ${(err as Error).message}`, { cause: err });
  };
}

export function createInfluxClient(opts: InfluxClientOptions): InfluxClient {
  const url = new URL(opts.url);
  const database = decodeURIComponent(url.pathname.replace(/^\/+|\/+$/g, '')) || DEFAULT_DATABASE;
  const influx = new InfluxDB({
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    protocol: url.protocol === 'https:' ? 'https' : 'http',
    database,
    ...(url.username ? { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) } : {}),
    pool: { maxRetries: 0, requestTimeout: opts.timeoutMs, backoff: NO_BACKOFF },
  });
  const bounded = <T>(work: () => Promise<T>, what: string) => withDeadline(work().catch(requestFailed(what)), opts.timeoutMs, what);
  const display = new URL(opts.url);
  display.password = '';
  display.username = '';
  display.pathname = `/${database}`;

  return {
    displayUrl: display.toString(),
    database,
    retentionPolicy: RETENTION_POLICY,
    async prepare() {
      await bounded(() => influx.createDatabase(database), 'create database');
      const policy = { database, duration: opts.retention, replication: 1, isDefault: true };
      await bounded(() => influx.createRetentionPolicy(RETENTION_POLICY, policy), 'create retention policy').catch((err: InfluxError) => {
        if (!/already exists/.test(err.message)) throw err;
        return bounded(() => influx.alterRetentionPolicy(RETENTION_POLICY, policy), 'alter retention policy');
      });
    },
    write(points) {
      return bounded(() => influx.writePoints(points as IPoint[], { precision: 'n', retentionPolicy: RETENTION_POLICY }), 'write');
    },
    query(influxql) {
      return bounded(() => influx.queryRaw(influxql, { signal: AbortSignal.timeout(opts.timeoutMs) }) as Promise<InfluxQueryResult>, 'query');
    },
  };
}
