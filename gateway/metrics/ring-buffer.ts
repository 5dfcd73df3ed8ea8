// A fixed-capacity FIFO that overwrites its oldest item when full. Pushing is
// O(1) whatever the fill, so a metrics buffer costs the alert path the same
// when InfluxDB has been down for an hour as when it is up.

export class RingBuffer<T> {
  private readonly items: Array<T | undefined>;
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Appends; returns true if the oldest item had to be overwritten to make room. */
  push(item: T): boolean {
    const full = this.count === this.capacity;
    this.items[(this.head + this.count) % this.capacity] = item;
    if (full) this.head = (this.head + 1) % this.capacity;
    else this.count++;
    return full;
  }

  /** The oldest `n` items, left in place (a failed write must not lose them). */
  peek(n: number): T[] {
    const out: T[] = [];
    for (let i = 0; i < Math.min(n, this.count); i++) out.push(this.items[(this.head + i) % this.capacity]!);
    return out;
  }

  /** Removes the oldest `n` items. */
  discard(n: number): void {
    const k = Math.min(n, this.count);
    for (let i = 0; i < k; i++) this.items[(this.head + i) % this.capacity] = undefined;
    this.head = (this.head + k) % this.capacity;
    this.count -= k;
  }

  /** Oldest first. */
  toArray(): T[] {
    return this.peek(this.count);
  }
}
