// Counters for everything the gateway refuses, drops or retries, so that bad
// input and overload are visible (in /healthz and /metrics), not just logged.

export type Labels = Record<string, string>;

function key(name: string, labels?: Labels): string {
  if (!labels) return name;
  const parts = Object.keys(labels).sort().map((k) => `${k}="${labels[k]!.replace(/["\\\n]/g, '_')}"`);
  return `${name}{${parts.join(',')}}`;
}

export class Counters {
  private readonly values = new Map<string, number>();

  inc(name: string, labels?: Labels, by = 1): void {
    const k = key(name, labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  /** `inc(name, labels, by)` with the key built once, for counters bumped on every message. */
  counter(name: string, labels?: Labels): (by?: number) => void {
    const k = key(name, labels);
    return (by = 1) => {
      this.values.set(k, (this.values.get(k) ?? 0) + by);
    };
  }

  get(name: string, labels?: Labels): number {
    return this.values.get(key(name, labels)) ?? 0;
  }

  /** Sum over every label set of a counter. */
  total(name: string): number {
    let sum = 0;
    for (const [k, v] of this.values) if (k === name || k.startsWith(`${name}{`)) sum += v;
    return sum;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values].sort(([a], [b]) => a.localeCompare(b)));
  }
}
