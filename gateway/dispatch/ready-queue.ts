// New alerts waiting for a free POST slot, held in memory so that a freed slot
// takes the next one at once instead of re-reading the outbox (whose front is
// the rows already in flight). Most severe first, then oldest (arrival order).
// Bounded: an alert that does not fit is left to the outbox scan — the store
// has it either way, so nothing is lost, only served by the slower path.
import type { AlertRecord, OutboxRow } from '../store/alert-repo.ts';

export interface ReadyEntry {
  key: string;
  row: OutboxRow;
  /** The alert as the intake held it when it queued the commit. */
  alert: AlertRecord;
}

interface Lane {
  priority: number;
  items: ReadyEntry[];
  head: number;
}

export class ReadyQueue {
  /** Highest priority first; a handful at most (one per event priority). */
  private readonly lanes: Lane[] = [];
  private readonly keys = new Set<string>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.keys.size;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /** False when full: the caller leaves the alert to the outbox. */
  push(entry: ReadyEntry): boolean {
    if (this.keys.size >= this.max || this.keys.has(entry.key)) return false;
    this.keys.add(entry.key);
    this.lane(entry.row.priority).items.push(entry);
    return true;
  }

  shift(): ReadyEntry | undefined {
    for (const lane of this.lanes) {
      if (lane.head >= lane.items.length) continue;
      const entry = lane.items[lane.head]!;
      lane.items[lane.head++] = undefined as unknown as ReadyEntry;
      // Drop the consumed front now and then, so a long burst does not keep a long dead array.
      if (lane.head >= 1024 && lane.head * 2 >= lane.items.length) {
        lane.items.splice(0, lane.head);
        lane.head = 0;
      }
      this.keys.delete(entry.key);
      return entry;
    }
    return undefined;
  }

  clear(): void {
    this.lanes.length = 0;
    this.keys.clear();
  }

  private lane(priority: number): Lane {
    let at = 0;
    while (at < this.lanes.length && this.lanes[at]!.priority > priority) at++;
    if (this.lanes[at]?.priority !== priority) this.lanes.splice(at, 0, { priority, items: [], head: 0 });
    return this.lanes[at]!;
  }
}
