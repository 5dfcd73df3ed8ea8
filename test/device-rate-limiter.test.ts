// The per-device message limit on a fake clock: over the limit once per
// minute is flooding, a whole calm minute clears it.
import { expect, it } from 'vitest';
import { DeviceRateLimiter } from '../gateway/broker/device-rate-limiter.ts';

it('flags a device once when it goes over its limit, and calms it after a whole minute under it', () => {
  let now = 0;
  const events: string[] = [];
  const limiter = new DeviceRateLimiter(3, { now: () => now }, { flooding: (id) => events.push(`flood ${id}`), calm: (id) => events.push(`calm ${id}`) });
  expect([1, 2, 3, 4, 5].map(() => limiter.take('pb-1'))).toEqual([true, true, true, false, false]);
  expect(limiter.take('pb-2')).toBe(true);
  expect(events).toEqual(['flood pb-1']);
  expect(limiter.flooding()).toEqual(['pb-1']);

  now = 60_000; // a new minute, but the last one was over the limit: still flooding
  for (let i = 0; i < 3; i++) limiter.take('pb-1');
  expect(events).toEqual(['flood pb-1']);
  now = 120_000; // the minute just ended stayed within the limit
  expect(limiter.take('pb-1')).toBe(true);
  expect(events).toEqual(['flood pb-1', 'calm pb-1']);
  expect(limiter.flooding()).toEqual([]);
});
