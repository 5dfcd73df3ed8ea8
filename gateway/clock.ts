/** Wall-clock time, injectable so tests can pin "now". */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** An epoch-ms time as the API, logs and health reports show it; null stays null. */
export const isoTime = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
