// A real influxd for tests: on free ports, in a throwaway directory, run by
// the same ManagedInfluxd the gateway uses. Missing influxd fails the test
// with the command that installs it; it is never skipped.
import pino from 'pino';
import { findOnPath, INSTALL_HINT, ManagedInfluxd } from '../../gateway/metrics/managed-influxd.ts';

export { isAlive } from '../../gateway/metrics/managed-influxd.ts';

export function requireInfluxd(): string {
  const binary = findOnPath('influxd');
  if (!binary) throw new Error(`influxd is not installed; these tests need a real InfluxDB 1.x. Install it with: ${INSTALL_HINT}`);
  return binary;
}

export async function startInfluxd(dir: string): Promise<ManagedInfluxd> {
  const influxd = new ManagedInfluxd({ binary: requireInfluxd(), dir, httpPort: 0, rpcPort: 0, log: pino({ level: 'silent' }), stopTimeoutMs: 3000 });
  await influxd.start();
  await influxd.ready();
  return influxd;
}

export type Row = Record<string, string | number | null> & { tags?: Record<string, string> };

/** Rows of one InfluxQL statement, straight from the HTTP API (not through the code under test). */
export async function influxRows(baseUrl: string, q: string, db = 'safehaven'): Promise<Row[]> {
  const res = await fetch(`${baseUrl}/query?db=${db}&q=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { results: Array<{ error?: string; series?: Array<{ tags?: Record<string, string>; columns: string[]; values: unknown[][] }> }> };
  const result = body.results[0]!;
  if (result.error) throw new Error(`InfluxQL: ${result.error}`);
  return (result.series ?? []).flatMap((s) => s.values.map((v) => ({ ...Object.fromEntries(s.columns.map((c, i) => [c, v[i]])), ...(s.tags ? { tags: s.tags } : {}) }) as Row));
}
