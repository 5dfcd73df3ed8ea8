// The timer wheel behind supervision, as logic: items expire once, never
// before their deadline and at most one slot after it; a later deadline is
// picked up lazily, an earlier one at once; removed items never expire.
import { describe, expect, it } from 'vitest';
import { DeadlineWheel, type WheelItem } from '../gateway/supervision/deadline-wheel.ts';

const item = (deadline: number): WheelItem & { name: string } => ({ deadline, slot: -1, name: String(deadline) });

function expireAll<T extends WheelItem>(wheel: DeadlineWheel<T>, upTo: number): T[] {
  const out: T[] = [];
  wheel.expire(upTo, (i) => out.push(i));
  return out;
}

describe('DeadlineWheel', () => {
  it('expires items whose deadline passed, whole slots only, each once', () => {
    const wheel = new DeadlineWheel<ReturnType<typeof item>>(100, 1000);
    const a = item(1150);
    const b = item(1420);
    wheel.schedule(a);
    wheel.schedule(b);
    expect(wheel.size).toBe(2);
    expect(expireAll(wheel, 1150)).toEqual([]); // slot 1100-1199 is not over yet
    expect(expireAll(wheel, 1199)).toEqual([a]);
    expect(expireAll(wheel, 1300)).toEqual([]);
    expect(expireAll(wheel, 5000)).toEqual([b]);
    expect(expireAll(wheel, 9000)).toEqual([]);
    expect(wheel.size).toBe(0);
  });

  it('finds a deadline moved later in its old slot and keeps it until the new one', () => {
    const wheel = new DeadlineWheel<ReturnType<typeof item>>(100, 0);
    const a = item(150);
    wheel.schedule(a);
    a.deadline = 950; // a heartbeat: no wheel call
    expect(expireAll(wheel, 899)).toEqual([]);
    expect(a.slot).toBe(9);
    expect(expireAll(wheel, 999)).toEqual([a]);
  });

  it('moves an earlier deadline at once, and never expires a removed item', () => {
    const wheel = new DeadlineWheel<ReturnType<typeof item>>(100, 0);
    const a = item(5000);
    const b = item(300);
    wheel.schedule(a);
    wheel.schedule(b);
    a.deadline = 200;
    wheel.schedule(a);
    wheel.remove(b);
    expect(expireAll(wheel, 10_000)).toEqual([a]);
    expect(wheel.size).toBe(0);
  });

  it('never schedules into a slot already expired, and skips a long gap by its filled slots', () => {
    const wheel = new DeadlineWheel<ReturnType<typeof item>>(100, 0);
    expireAll(wheel, 999);
    const late = item(10);
    wheel.schedule(late);
    expect(late.slot).toBe(10);
    const far = item(86_400_000 * 3);
    wheel.schedule(far);
    expect(expireAll(wheel, 86_400_000 * 4)).toEqual([late, far]);
  });
});
