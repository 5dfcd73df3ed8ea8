/** Wall-clock time, injectable so tests can pin "now". */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
