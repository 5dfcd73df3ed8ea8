// An in-memory TroubleSource and PresenceSource for tests of their consumers
// (the live feed, the dashboard), driven by the test instead of by device
// supervision (issue 6).
import type { Trouble, TroubleChange, TroubleKind } from '../../protocol/index.ts';
import { TROUBLE_SEVERITY } from '../../protocol/index.ts';
import type { PresenceChange, PresenceSource, TroubleSource } from '../../gateway/supervision/trouble-source.ts';

export class FakeSupervision implements TroubleSource, PresenceSource {
  private readonly troubles = new Map<string, Trouble>();
  private readonly listeners = new Set<(change: TroubleChange) => void>();
  private readonly presenceListeners = new Set<(change: PresenceChange) => void>();
  private next = 0;

  open(): Trouble[] {
    return [...this.troubles.values()].sort((a, b) => b.severity - a.severity || a.raisedAt.localeCompare(b.raisedAt));
  }

  on(listener: (change: TroubleChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onPresence(listener: (change: PresenceChange) => void): () => void {
    this.presenceListeners.add(listener);
    return () => this.presenceListeners.delete(listener);
  }

  listenerCount(): number {
    return this.listeners.size + this.presenceListeners.size;
  }

  raise(kind: TroubleKind, deviceId: string | null, siteId: string | null, detail = `${kind} (test)`): Trouble {
    const trouble: Trouble = {
      id: `tr-test-${++this.next}`, kind, severity: TROUBLE_SEVERITY[kind], deviceId, siteId, detail,
      raisedAt: new Date().toISOString(), clearedAt: null,
    };
    this.troubles.set(trouble.id, trouble);
    for (const l of this.listeners) l({ kind: 'raised', trouble });
    return trouble;
  }

  clear(id: string): void {
    const open = this.troubles.get(id);
    if (!open) return;
    this.troubles.delete(id);
    const trouble = { ...open, clearedAt: new Date().toISOString() };
    for (const l of this.listeners) l({ kind: 'cleared', trouble });
  }

  presence(deviceId: string, online: boolean): void {
    for (const l of this.presenceListeners) l({ deviceId, online, lastSeen: Date.now() });
  }
}
