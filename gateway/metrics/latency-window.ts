// The most recent latency samples in memory: what /api/latency answers from
// when there is no InfluxDB, or it does not answer. Bounded: the oldest
// sample makes room for the newest.
import { STAGES, type LatencySample, type Stage } from './latency-recorder.ts';
import { RingBuffer } from './ring-buffer.ts';

export const PERCENTILES = [50, 95, 99] as const;
export type Percentiles = Record<`p${(typeof PERCENTILES)[number]}`, number | null>;
export type GroupBy = 'site_kind' | 'district';

export interface StageSummary {
  count: number;
  stages: Record<Stage, Percentiles | null>;
}

export interface GroupSummary extends StageSummary {
  key: string;
}

/**
 * InfluxQL's PERCENTILE: the nearest rank, floor(n·p/100 + 0.5) − 1 of the
 * sorted values (null if that is not an index), so the memory window and
 * InfluxDB give the same answer for the same samples.
 */
export function nearestRank(sorted: readonly number[], p: number): number | null {
  const i = Math.floor((sorted.length * p) / 100 + 0.5) - 1;
  return i >= 0 && i < sorted.length ? sorted[i]! : null;
}

function summarize(samples: readonly LatencySample[]): StageSummary {
  const stages = {} as Record<Stage, Percentiles | null>;
  for (const stage of STAGES) {
    const values = samples.flatMap((s) => (s.stages[stage] === undefined ? [] : [s.stages[stage]])).sort((a, b) => a - b);
    stages[stage] = values.length === 0 ? null : { p50: nearestRank(values, 50), p95: nearestRank(values, 95), p99: nearestRank(values, 99) };
  }
  return { count: samples.filter((s) => s.stages.total_ms !== undefined).length, stages };
}

export class LatencyWindow {
  private readonly samples: RingBuffer<LatencySample>;

  constructor(capacity: number) {
    this.samples = new RingBuffer(capacity);
  }

  add(sample: LatencySample): void {
    this.samples.push(sample);
  }

  /** Samples of alerts pressed at or after `since`, overall and per value of `by`. */
  summary(since: number, by: GroupBy | null): StageSummary & { groups?: GroupSummary[] } {
    const recent = this.samples.toArray().filter((s) => s.at >= since);
    if (!by) return summarize(recent);
    const groups = new Map<string, LatencySample[]>();
    for (const s of recent) {
      const members = groups.get(s.tags[by]);
      if (members) members.push(s);
      else groups.set(s.tags[by], [s]);
    }
    return {
      ...summarize(recent),
      groups: [...groups].sort(([a], [b]) => a.localeCompare(b)).map(([key, members]) => ({ key, ...summarize(members) })),
    };
  }
}
