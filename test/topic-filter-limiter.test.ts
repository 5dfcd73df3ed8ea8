import { describe, expect, it } from 'vitest';
import { AuthLimiter } from '../gateway/broker/auth-limiter.ts';
import { filterCovers, filterProblem, filtersOverlap, topicMatches } from '../gateway/broker/topic-filter.ts';

describe('MQTT topic filters', () => {
  it.each([
    ['a/b', 'a/b', true], ['a/+', 'a/b', true], ['a/+', 'a/b/c', false], ['a/#', 'a', true], ['a/#', 'a/b/c', true],
    ['#', 'a/b', true], ['#', '$SYS/x', false], ['+/x', '$SYS/x', false], ['$SYS/#', '$SYS/x', true], ['a/b', 'a/b/c', false],
  ])('%s matches %s: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });

  it.each([
    ['a/#', 'a/+/c', true], ['a/+', 'a/b', true], ['a/+', 'a/#', false], ['a/b', 'a/+', false], ['#', '$SYS/#', false],
    ['a/+/c', 'a/+/c', true], ['a/#', 'a', true], ['safehaven/v1/alerts/#', 'safehaven/v1/#', false],
  ])('%s covers %s: %s', (outer, inner, expected) => {
    expect(filterCovers(outer, inner)).toBe(expected);
  });

  it.each([
    ['a/b', 'a/b', true], ['a/b', 'a/c', false], ['a/+', '+/b', true], ['a/+/c', 'a/b', false], ['a/#', 'a', true],
    ['#', 'safehaven/v1/dev/+/heartbeat', true], ['safehaven/v1/dev/+/+', 'safehaven/v1/dev/+/heartbeat', true],
    ['safehaven/v1/alerts/#', 'safehaven/v1/dev/+/heartbeat', false], ['safehaven/v1/dev/+/event', 'safehaven/v1/dev/+/heartbeat', false],
    ['+/+/+/+/+', 'safehaven/v1/dev/+/heartbeat', true], ['+/+/+/+', 'safehaven/v1/dev/+/heartbeat', false],
    ['#', '$SYS/x', false], ['+/x', '$SYS/x', false], ['$SYS/#', '$SYS/x', true],
  ])('%s overlaps %s: %s', (a, b, expected) => {
    expect(filtersOverlap(a, b)).toBe(expected);
    expect(filtersOverlap(b, a)).toBe(expected);
  });

  it.each([
    ['safehaven/v1/alerts/#', true], ['safehaven/v1/alerts/+', true], ['safehaven/v1/alerts/al-0123', true], ['safehaven/v1/#', true],
    ['#', true], ['+/+/alerts/+', true], ['safehaven/v1/dev/#', false], ['safehaven/v1/alerts', false], ['safehaven/v1/alerts/+/x', false],
  ])('%s reaches the integrator alert topics: %s', (filter, expected) => {
    expect(filtersOverlap(filter, 'safehaven/v1/alerts/+')).toBe(expected);
  });

  it.each(['a/#/b', 'a/b#', 'a+/b', '', 'nul\u0000'])('refuses the invalid filter %j', (filter) => {
    expect(filterProblem(filter)).not.toBeNull();
  });
});

describe('AuthLimiter', () => {
  it('limits an address and a username after the limit within a minute, and forgets after it', () => {
    let now = 0;
    const limiter = new AuthLimiter(2, { now: () => now });
    limiter.failure('10.0.0.1', 'pb-1');
    expect(limiter.limited('10.0.0.1', 'pb-1')).toBeNull();
    limiter.failure('10.0.0.1', 'pb-1');
    expect(limiter.limited('10.0.0.1', 'pb-1')).toBe('address');
    expect(limiter.limited('10.0.0.2', 'pb-1')).toBe('username');
    expect(limiter.report().addresses[0]).toEqual({ key: '10.0.0.1', failures: 2, limited: true });
    now += 60_000;
    expect(limiter.limited('10.0.0.1', 'pb-1')).toBeNull();
  });

  it('gives a username under attack one full check every two seconds', () => {
    let now = 0;
    const limiter = new AuthLimiter(1, { now: () => now });
    limiter.failure(undefined, 'pb-1');
    expect(limiter.takeSlowCheck('pb-1')).toBe(true);
    expect(limiter.takeSlowCheck('pb-1')).toBe(false);
    now += 2000;
    expect(limiter.takeSlowCheck('pb-1')).toBe(true);
  });
});
