// The seam between whatever raises trouble entries (supervision, battery and
// tamper checks, the serial bridge, flood limits) and whoever shows them (the
// live dashboard feed, GET /api/troubles). Consumers depend on this interface
// only, so either side can be built and tested alone. Presence changes
// (online/offline transitions) cross the same seam.
import type { Trouble, TroubleChange } from '../../protocol/index.ts';

export interface TroubleSource {
  /** Open troubles, most severe first, then oldest first. */
  open(): Trouble[];
  /** Subscribes to raises and clears; returns the unsubscribe function. */
  on(listener: (change: TroubleChange) => void): () => void;
}

/** A device's presence as supervision sees it (the dashboard's device health panel). */
export interface PresenceChange {
  deviceId: string;
  online: boolean;
  /** Epoch ms of the last message heard from the device, any channel. */
  lastSeen: number | null;
}

export interface PresenceSource {
  /** Subscribes to online/offline transitions (not to every heartbeat); returns the unsubscribe function. */
  onPresence(listener: (change: PresenceChange) => void): () => void;
}
