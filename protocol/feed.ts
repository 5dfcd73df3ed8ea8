// The dashboard's live feed: `GET /api/feed`, a text/event-stream (SSE framing)
// authenticated like the rest of the API with `Authorization: Bearer`. Tokens
// never go into URLs (they end up in logs and browser history), so a browser
// reads it with fetch() and a stream reader rather than EventSource, which
// cannot send headers. Types only: the dashboard bundle imports this file.
import type { Trouble, TroubleChange } from './troubles.ts';

export const FEED_PATH = '/api/feed';

/** What `presence` carries: an online/offline transition. */
export interface FeedPresence {
  deviceId: string;
  online: boolean;
  lastSeen: string | null;
}

/**
 * Event name → data, for an alert shaped `A` (the API's alert view for the
 * client's role). `snapshot` comes right after `hello` on every connect, so a
 * (re)connected client replaces its state with it and then applies changes.
 */
export interface FeedEvents<A> {
  hello: { name: string; role: string; serverTime: string };
  snapshot: { alerts: A[]; troubles: Trouble[]; health: Record<string, unknown> };
  /** `change` is the alert bus kind: received, state, delivered, acked, resolved, repeat, overdue, reminder, police-status. */
  alert: { change: string; alert: A };
  trouble: TroubleChange;
  presence: FeedPresence;
  health: Record<string, unknown>;
}

export type FeedEventName = keyof FeedEvents<unknown>;
