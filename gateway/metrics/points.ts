// Samples as InfluxDB points. Timestamps are nanoseconds: a point's identity
// in InfluxDB is (measurement, tags, time), so two alerts of the same kind
// pressed in the same millisecond need different nanoseconds, or the second
// would overwrite the first.
import type { InfluxPoint } from './influx-client.ts';
import type { LatencySample } from './latency-recorder.ts';
import { LATENCY_MEASUREMENT } from './latency-query.ts';

/** Epoch ms plus a sub-millisecond offset (0–999,999 ns) as the decimal string InfluxDB takes. */
export function nanos(ms: number, offsetNs = 0): string {
  return `${Math.trunc(ms)}${String(offsetNs % 1_000_000).padStart(6, '0')}`;
}

/** Derived from the alert id, so a point written twice for one alert is the same point, not two. */
function alertOffsetNs(alertId: string): number {
  return parseInt(alertId.slice(3, 8), 16) % 1_000_000;
}

export function latencyPoint(sample: LatencySample): InfluxPoint {
  const fields: Record<string, number | string> = { ...sample.stages, alert_id: sample.alertId };
  if (sample.attempts !== null) fields.attempts = sample.attempts;
  return { measurement: LATENCY_MEASUREMENT, tags: { ...sample.tags }, fields, timestamp: nanos(sample.at, alertOffsetNs(sample.alertId)) };
}
