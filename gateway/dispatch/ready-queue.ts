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
  /** The live entry of each key; an entry in a lane but not here was dropped. */
  private readonly live = new Map<string, ReadyEntry>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.live.size;
  }

  has(key: string): boolean {
    return this.live.has(key);
  }

  /** False when full: the caller leaves the alert to the outbox. */
  push(entry: ReadyEntry): boolean {
    if (this.live.size >= this.max || this.live.has(entry.key)) return false;
    this.live.set(entry.key, entry);
    this.lane(entry.row.priority).items.push(entry);
    return true;
  }

  shift(): ReadyEntry | undefined {
    for (const lane of this.lanes) {
      while (lane.head < lane.items.length) {
        const entry = lane.items[lane.head]!;
        lane.items[lane.head++] = undefined as unknown as ReadyEntry;
        // Drop the consumed front now and then, so a long burst does not keep a long dead array.
        if (lane.head >= 1024 && lane.head * 2 >= lane.items.length) {
          lane.items.splice(0, lane.head);
          lane.head = 0;
        }
        if (this.live.get(entry.key) !== entry) continue;
        this.live.delete(entry.key);
        return entry;
      }
    }
    return undefined;
  }

  /** Takes an entry out (its alert was resolved while it waited); its place in the lane is skipped. */
  drop(key: string): void {
    this.live.delete(key);
  }

  clear(): void {
    this.lanes.length = 0;
    this.live.clear();
  }

  private lane(priority: number): Lane {
    let at = 0;
    while (at < this.lanes.length && this.lanes[at]!.priority > priority) at++;
    if (this.lanes[at]?.priority !== priority) this.lanes.splice(at, 0, { priority, items: [], head: 0 });
    return this.lanes[at]!;
  }
}
