// Answers /api/latency: p50/p95/p99 of every stage over a window, overall and
// optionally per site kind or district. From InfluxDB (InfluxQL PERCENTILE)
// when there is one and it answers in time; otherwise from the in-memory
// window, saying so in `source`.
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { LogThrottle } from '../log-throttle.ts';
import type { InfluxClient, InfluxQueryResult } from './influx-client.ts';
import { STAGES, type Stage } from './latency-recorder.ts';
import { PERCENTILES, type GroupBy, type GroupSummary, type LatencyWindow, type Percentiles, type StageSummary } from './latency-window.ts';

export const LATENCY_MEASUREMENT = 'alert_latency';

export interface LatencyRequest {
  windowMs: number;
  by: GroupBy | null;
}

export interface LatencySummary extends StageSummary {
  source: 'influx' | 'memory';
  windowMs: number;
  by: GroupBy | null;
  groups?: GroupSummary[];
  /** Why the answer is from memory although an InfluxDB is configured. */
  influxError?: string;
}

export interface LatencyQueryDeps {
  influx: InfluxClient | null;
  window: LatencyWindow;
  clock: Clock;
  log: Logger;
}

/** Only validated numbers and fixed names go into the statement: nothing from the request is pasted in as text. */
export function latencyInfluxQl(client: Pick<InfluxClient, 'retentionPolicy'>, { windowMs, by }: LatencyRequest): string {
  const columns = [
    'COUNT("total_ms") AS "count"',
    ...STAGES.flatMap((stage) => PERCENTILES.map((p) => `PERCENTILE("${stage}", ${p}) AS "${stage}_p${p}"`)),
  ].join(', ');
  const select = `SELECT ${columns} FROM "${client.retentionPolicy}"."${LATENCY_MEASUREMENT}" WHERE time > now() - ${Math.trunc(windowMs)}ms`;
  return by ? `${select}; ${select} GROUP BY "${by}"` : select;
}

type Series = NonNullable<InfluxQueryResult['results'][number]['series']>[number];

function summaryOf(series: Series | undefined): StageSummary {
  const row = new Map<string, number | null>();
  series?.columns.forEach((column, i) => row.set(column, (series.values[0]?.[i] as number | null | undefined) ?? null));
  const stages = {} as Record<Stage, Percentiles | null>;
  for (const stage of STAGES) {
    const [p50 = null, p95 = null, p99 = null] = PERCENTILES.map((p) => row.get(`${stage}_p${p}`) ?? null);
    stages[stage] = p50 === null && p95 === null && p99 === null ? null : { p50, p95, p99 };
  }
  return { count: row.get('count') ?? 0, stages };
}

export function parseLatencyResult(result: InfluxQueryResult, by: GroupBy | null): StageSummary & { groups?: GroupSummary[] } {
  const failed = result.results.find((r) => r.error);
  if (failed) throw new Error(`InfluxQL: ${failed.error}`);
  const overall = summaryOf(result.results[0]?.series?.[0]);
  if (!by) return overall;
  const groups = (result.results[1]?.series ?? [])
    .map((s) => ({ key: s.tags?.[by] ?? '', ...summaryOf(s) }))
    .sort((a, b) => a.key.localeCompare(b.key));
  return { ...overall, groups };
}

export class LatencyQuery {
  private readonly throttle: LogThrottle;

  constructor(private readonly deps: LatencyQueryDeps) {
    this.throttle = new LogThrottle(deps.log, 60_000, () => deps.clock.now());
  }

  async summary(req: LatencyRequest): Promise<LatencySummary> {
    const { influx, window, clock } = this.deps;
    const fromMemory = (influxError?: string): LatencySummary => ({
      source: 'memory', windowMs: req.windowMs, by: req.by, ...window.summary(clock.now() - req.windowMs, req.by), ...(influxError ? { influxError } : {}),
    });
    if (!influx) return fromMemory();
    try {
      const result = await influx.query(latencyInfluxQl(influx, req));
      return { source: 'influx', windowMs: req.windowMs, by: req.by, ...parseLatencyResult(result, req.by) };
    } catch (err) {
      const message = (err as Error).message;
      this.throttle.warn('latency-query', { err: message, code: (err as { code?: string }).code }, 'latency query to InfluxDB failed: answering from memory');
      return fromMemory(message);
    }
  }
}
