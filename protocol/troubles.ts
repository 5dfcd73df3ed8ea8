// Trouble entries: a device or site that cannot protect anyone right now
// (a button gone silent, a flat battery, a tampered sensor, a receiver dongle
// unplugged, a store whose only panic button is offline). They are not
// emergencies in themselves, so they rank below every alert, but a dispatcher
// must see them: the dashboard shows them in their own section, the live feed
// carries their changes, and a restore clears them.
import { z } from 'zod';
import { DeviceId, SiteId } from './schemas.ts';

export const TROUBLE_KINDS = ['offline', 'low-battery', 'tamper', 'receiver-offline', 'flooding', 'unprotected'] as const;
export const TroubleKind = z.enum(TROUBLE_KINDS);
export type TroubleKind = z.infer<typeof TroubleKind>;

/** Display and routing order: higher first. All below the lowest alert priority (test = 10). */
export const TROUBLE_SEVERITY: Record<TroubleKind, number> = {
  unprotected: 9,
  'receiver-offline': 8,
  offline: 7,
  tamper: 6,
  flooding: 5,
  'low-battery': 4,
};

/** A trouble as the API and the live feed show it. `clearedAt` null = still open. */
export const Trouble = z.strictObject({
  /** Stable per (kind, device or site) occurrence, e.g. `tr-…`. */
  id: z.string().min(1).max(64),
  kind: TroubleKind,
  severity: z.int(),
  /** null for site-level troubles (`unprotected`). */
  deviceId: DeviceId.nullable(),
  siteId: SiteId.nullable(),
  /** Human-readable reason, e.g. "no heartbeat for 95 s (interval 60 s + grace 30 s)". */
  detail: z.string().max(500),
  raisedAt: z.iso.datetime(),
  clearedAt: z.iso.datetime().nullable(),
});
export type Trouble = z.infer<typeof Trouble>;

/** What a trouble source tells its listeners (the live feed, the announcer, metrics). */
export interface TroubleChange {
  kind: 'raised' | 'cleared';
  trouble: Trouble;
}
