// The seam between whatever raises trouble entries (supervision, battery and
// tamper checks, the serial bridge, flood limits) and whoever shows them (the
// live dashboard feed, GET /api/troubles). Consumers depend on this interface
// only, so either side can be built and tested alone.
import type { Trouble, TroubleChange } from '../../protocol/index.ts';

export interface TroubleSource {
  /** Open troubles, most severe first, then oldest first. */
  open(): Trouble[];
  /** Subscribes to raises and clears; returns the unsubscribe function. */
  on(listener: (change: TroubleChange) => void): () => void;
}
