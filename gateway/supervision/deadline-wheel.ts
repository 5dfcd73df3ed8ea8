// One timer wheel for every supervised device instead of a timer each:
// deadlines fall into fixed-width slots (a Map of Sets, so a sparse horizon of
// days costs nothing), and one tick expires the slots it has passed. A
// heartbeat only moves an item's deadline later, which costs one field write:
// the item stays in its old slot and is moved on when that slot comes due
// (each item is re-slotted at most once per deadline window, not per
// heartbeat). Only an earlier deadline (a lost connection) moves it at once.

export interface WheelItem {
  /** Epoch ms after which the item has expired. */
  deadline: number;
  /** The slot the item sits in; -1 when not on the wheel. Owned by the wheel. */
  slot: number;
}

export class DeadlineWheel<T extends WheelItem> {
  private readonly slots = new Map<number, Set<T>>();
  /** The last slot expired: nothing is ever put at or before it. */
  private cursor: number;
  private count = 0;

  constructor(private readonly slotMs: number, now: number) {
    this.cursor = Math.floor(now / slotMs) - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Puts the item on the wheel at its deadline, or earlier than where it is; a later deadline needs no call. */
  schedule(item: T): void {
    const slot = Math.max(Math.floor(item.deadline / this.slotMs), this.cursor + 1);
    if (item.slot !== -1 && item.slot <= slot) return;
    this.remove(item);
    let bucket = this.slots.get(slot);
    if (!bucket) this.slots.set(slot, (bucket = new Set()));
    bucket.add(item);
    item.slot = slot;
    this.count++;
  }

  remove(item: T): void {
    if (item.slot === -1) return;
    const bucket = this.slots.get(item.slot);
    if (bucket?.delete(item)) {
      this.count--;
      if (bucket.size === 0) this.slots.delete(item.slot);
    }
    item.slot = -1;
  }

  /**
   * Calls `expired` for every item whose deadline is at or before `upTo`,
   * after taking it off the wheel; items found whose deadline moved later
   * are re-slotted. Only whole slots before `upTo` are expired, so an item
   * is found at most one slot width after its deadline.
   */
  expire(upTo: number, expired: (item: T) => void): void {
    const last = Math.floor((upTo + 1) / this.slotMs) - 1;
    // After a long stall (or a clock jump) walking every empty slot number would be slower than the few filled ones.
    const numbers = last - this.cursor > this.slots.size
      ? [...this.slots.keys()].filter((s) => s <= last).sort((a, b) => a - b)
      : null;
    const visit = (s: number) => {
      this.cursor = s;
      const bucket = this.slots.get(s);
      if (!bucket) return;
      this.slots.delete(s);
      this.count -= bucket.size;
      for (const item of bucket) {
        item.slot = -1;
        if (item.deadline <= upTo) expired(item);
        else this.schedule(item);
      }
    };
    if (numbers) numbers.forEach(visit);
    else for (let s = this.cursor + 1; s <= last; s++) visit(s);
    if (last > this.cursor) this.cursor = last;
  }
}
