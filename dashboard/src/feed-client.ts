// Reads GET /api/feed with fetch and a stream reader (EventSource cannot send
// the Authorization header) and reconnects by itself. Every (re)connect
// starts with `hello` and a `snapshot`, so a gap is healed by the replay.
import { FEED_PATH, type FeedEventName, type FeedEvents } from '../../protocol/feed.ts';
import type { AlertView } from '../../gateway/http/views.ts';

export type FeedStatus = 'connecting' | 'live' | 'reconnecting';
export type FeedHandler = <E extends FeedEventName>(event: E, data: FeedEvents<AlertView>[E]) => void;

/** The gateway sends a keepalive every 15 s; this long without a byte means the link is dead. */
const SILENCE_MS = 40_000;
const RETRY_MS = [500, 1000, 2000, 5000];

export class FeedClient {
  private abort: AbortController | null = null;
  private stopped = false;

  constructor(private readonly token: string, private readonly onEvent: FeedHandler, private readonly onStatus: (s: FeedStatus, why?: string) => void,
    private readonly onUnauthorized: () => void) {}

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    this.onStatus('connecting');
    while (!this.stopped) {
      try {
        await this.once(() => { failures = 0; });
        if (!this.stopped) this.onStatus('reconnecting', 'the feed ended');
      } catch (err) {
        if (this.stopped) return;
        if ((err as { status?: number }).status === 401) return this.onUnauthorized();
        this.onStatus('reconnecting', (err as Error).message);
      }
      // Jittered: after a gateway restart every screen in the city reconnects, and they should not all land in one tick.
      const base = RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)]!;
      await new Promise((r) => setTimeout(r, base / 2 + Math.random() * base));
    }
  }

  private async once(connected: () => void): Promise<void> {
    const abort = (this.abort = new AbortController());
    let watchdog = setTimeout(() => abort.abort(), SILENCE_MS);
    try {
      const res = await fetch(FEED_PATH, { headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' }, signal: abort.signal });
      if (!res.ok || !res.body) throw Object.assign(new Error(`feed answered ${res.status}`), { status: res.status });
      connected();
      this.onStatus('live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => abort.abort(), SILENCE_MS);
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } finally {
      clearTimeout(watchdog);
    }
  }

  private dispatch(block: string): void {
    let event = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data += line.slice(6);
    }
    if (!data) return;
    try {
      this.onEvent(event as FeedEventName, JSON.parse(data));
    } catch (err) {
      console.error('feed event failed', event, err);
    }
  }
}
