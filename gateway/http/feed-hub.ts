// Fan-out of alert, trouble, presence and health changes to the dashboards'
// live feeds. The alert path must never wait for a browser: the bus listener
// only appends to a bounded queue; the fan-out runs on a later turn of the
// event loop, serialises each change once per role view and writes it to
// every client. A client whose unsent bytes pass the limit (a frozen tab, a
// dead Wi-Fi link) is cut off and counted; it replays the current state when
// it reconnects, so nothing it missed is lost to its dispatcher.
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { FeedEventName, FeedEvents, Site, TroubleChange } from '../../protocol/index.ts';
import { LogThrottle } from '../log-throttle.ts';
import type { Counters } from '../metrics/counters.ts';
import type { AlertBus, AlertChange } from '../pipeline/alert-bus.ts';
import type { Registry } from '../registry/registry.ts';
import type { AlertRepo } from '../store/alert-repo.ts';
import type { PresenceChange, PresenceSource, TroubleSource } from '../supervision/trouble-source.ts';
import type { Principal } from './auth.ts';
import { auditHomeReadsBy, seesHomeDetails, type HomeReadAudit } from './personal-data.ts';
import type { HealthReport } from './routes/health.ts';
import { alertView, type AlertView } from './views.ts';

export interface FeedLimits {
  /** Connected feeds at most; one more is refused with 503. */
  maxClients: number;
  /**
   * Bytes written to a client but not yet taken by its socket, beyond its
   * snapshot (which may be large after an outage); past this it is dropped.
   * The kernel's socket buffers (several MB on Linux) come on top.
   */
  maxBufferedBytes: number;
  /** Changes waiting for the next fan-out; past this every client is dropped (each replays on reconnect). */
  maxPending: number;
  /** A comment line this often keeps proxies from closing an idle feed and finds dead clients. */
  keepaliveMs: number;
  /** The health summary is pushed this often. */
  healthMs: number;
}

export const DEFAULT_FEED_LIMITS: FeedLimits = {
  maxClients: 200, maxBufferedBytes: 1024 * 1024, maxPending: 10_000, keepaliveMs: 15_000, healthMs: 10_000,
};

/** Most open alerts a snapshot replays (the REST list's maximum too). */
const SNAPSHOT_ALERTS = 1000;

export interface FeedHubDeps {
  bus: AlertBus;
  troubles: TroubleSource;
  presence: PresenceSource;
  alerts: AlertRepo;
  registry: Registry;
  health: () => HealthReport;
  counters: Counters;
  /** Home details pushed to a dispatcher are audited like REST reads. */
  homeAudit: HomeReadAudit;
  log: Logger;
}

interface FeedClient {
  principal: Principal;
  res: ServerResponse;
  /** False once the client's token is revoked or expired: checked at every keepalive. */
  stillAuthorized: () => boolean;
  /** maxBufferedBytes plus this client's snapshot. */
  allowance: number;
}

type Pending =
  | { type: 'alert'; change: AlertChange }
  | { type: 'trouble'; change: TroubleChange }
  | { type: 'presence'; change: PresenceChange }
  | { type: 'health' };

export function sseFrame<E extends FeedEventName>(event: E, data: FeedEvents<AlertView>[E]): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

const SNAPSHOT_REUSE_MS = 1000;

export class FeedHub {
  private readonly clients = new Set<FeedClient>();
  private pending: Pending[] = [];
  /**
   * The last snapshot per view (full, or a viewer's): after a restart or an
   * overflow every screen reconnects within a second or two, and each would
   * otherwise serialise the same thousands of alerts and troubles again. Any
   * change empties it, so a client never gets a snapshot older than a change
   * it was not there to receive.
   */
  private readonly snapshots = new Map<boolean, { open: ReturnType<AlertRepo['list']>; frame: string }>();
  private flushScheduled = false;
  private unsubscribe: Array<() => void> = [];
  private timers: NodeJS.Timeout[] = [];
  private readonly throttle: LogThrottle;

  constructor(private readonly deps: FeedHubDeps, private readonly limits: FeedLimits = DEFAULT_FEED_LIMITS) {
    this.throttle = new LogThrottle(deps.log);
  }

  start(): void {
    const { bus, troubles, presence } = this.deps;
    this.unsubscribe = [
      bus.on((change) => this.enqueue({ type: 'alert', change })),
      troubles.on((change) => this.enqueue({ type: 'trouble', change })),
      presence.onPresence((change) => this.enqueue({ type: 'presence', change })),
    ];
    const keepalive = setInterval(() => this.keepalive(), this.limits.keepaliveMs);
    const health = setInterval(() => this.enqueue({ type: 'health' }), this.limits.healthMs);
    keepalive.unref();
    health.unref();
    this.timers = [keepalive, health];
  }

  stop(): void {
    for (const off of this.unsubscribe) off();
    for (const timer of this.timers) clearInterval(timer);
    this.unsubscribe = [];
    this.timers = [];
    this.pending = [];
    for (const client of this.clients) client.res.end();
    this.clients.clear();
  }

  /** For /healthz: how many feeds, and the largest backlog of bytes a client has not taken yet. */
  status(): { clients: number; maxClients: number; largestBacklogBytes: number } {
    let largest = 0;
    for (const { res } of this.clients) largest = Math.max(largest, res.writableLength);
    return { clients: this.clients.size, maxClients: this.limits.maxClients, largestBacklogBytes: largest };
  }

  /** True when one more feed would pass the limit; counted and logged as a refusal. */
  full(principal: Principal): boolean {
    if (this.clients.size < this.limits.maxClients) return false;
    this.deps.counters.inc('feed_clients_refused_total');
    this.throttle.warn('full', { max: this.limits.maxClients, name: principal.name }, 'live feed refused: too many connected clients');
    return true;
  }

  /**
   * Takes over a response: writes the stream head, `hello` and the snapshot
   * (open alerts, open troubles, health), then the changes as they come.
   */
  attach(principal: Principal, res: ServerResponse, stillAuthorized: () => boolean): void {
    const client: FeedClient = { principal, res, stillAuthorized, allowance: this.limits.maxBufferedBytes };
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // A buffering proxy would hold alerts back until its buffer fills.
      'x-accel-buffering': 'no',
    });
    this.clients.add(client);
    this.deps.counters.inc('feed_clients_connected_total');
    res.on('close', () => this.clients.delete(client));
    const { open, frame } = this.snapshotFor(principal);
    auditHomeReadsBy(this.deps.homeAudit, principal, open.map((a) => this.deps.registry.site(a.siteId)), 'homes.read.feed');
    this.write(client, sseFrame('hello', { name: principal.name, role: principal.role, serverTime: new Date(this.deps.homeAudit.now()).toISOString() }));
    client.allowance += Buffer.byteLength(frame);
    this.write(client, frame);
  }

  /**
   * A stream outlives the check that opened it: a revoked or expired token
   * must not keep receiving home addresses, so each keepalive checks again
   * and ends that stream (the client's reconnect then gets its 401).
   */
  private keepalive(): void {
    for (const client of [...this.clients]) {
      if (client.stillAuthorized()) {
        this.write(client, ': keepalive\n\n');
        continue;
      }
      this.clients.delete(client);
      this.deps.counters.inc('feed_clients_dropped_total', { reason: 'unauthorized' });
      this.deps.log.info({ name: client.principal.name }, 'live feed ended: its token is no longer valid');
      client.res.end();
    }
  }

  private snapshotFor(principal: Principal): { open: ReturnType<AlertRepo['list']>; frame: string } {
    const full = seesHomeDetails(principal.role);
    const cached = this.snapshots.get(full);
    if (cached) return cached;
    const { alerts, registry, troubles, health } = this.deps;
    const open = alerts.list({ open: true, limit: SNAPSHOT_ALERTS });
    const frame = sseFrame('snapshot', {
      alerts: open.map((a) => alertView(a, registry.site(a.siteId), principal.role)),
      troubles: troubles.open(),
      health: health(),
    });
    const snapshot = { open, frame };
    this.snapshots.set(full, snapshot);
    // Health moves on by itself: a snapshot is reused for a second at most.
    setTimeout(() => this.snapshots.delete(full), SNAPSHOT_REUSE_MS).unref();
    return snapshot;
  }

  private enqueue(item: Pending): void {
    this.snapshots.clear();
    if (this.clients.size === 0) return;
    if (this.pending.length >= this.limits.maxPending) {
      this.deps.counters.inc('feed_overflows_total');
      this.deps.log.error({ pending: this.pending.length, clients: this.clients.size }, 'live feed fell behind: every client dropped to replay on reconnect');
      this.pending = [];
      for (const client of [...this.clients]) this.drop(client, 'overflow');
      return;
    }
    this.pending.push(item);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    for (const item of batch) {
      // This runs outside any caller: an exception here would take the gateway down with it.
      try {
        this.fanOut(item);
      } catch (err) {
        this.deps.counters.inc('feed_fanout_errors_total', { type: item.type });
        this.deps.log.error({ err, type: item.type }, 'live feed could not send a change');
      }
    }
  }

  private fanOut(item: Pending): void {
    if (item.type === 'alert') return this.fanOutAlert(item.change);
    let frame: string;
    if (item.type === 'trouble') frame = sseFrame('trouble', item.change);
    else if (item.type === 'health') frame = sseFrame('health', this.deps.health());
    else {
      const { deviceId, online, lastSeen } = item.change;
      frame = sseFrame('presence', { deviceId, online, lastSeen: lastSeen === null ? null : new Date(lastSeen).toISOString() });
    }
    this.broadcast(() => frame);
  }

  /** Serialised once for viewers and once for those who see home details, not once per client. */
  private fanOutAlert({ kind, alert, site }: AlertChange): void {
    const frames = new Map<boolean, string>();
    const frameFor = (principal: Principal) => {
      const full = seesHomeDetails(principal.role);
      let frame = frames.get(full);
      if (frame === undefined) {
        frame = sseFrame('alert', { change: kind, alert: alertView(alert, site, full ? 'dispatcher' : 'viewer') });
        frames.set(full, frame);
      }
      return frame;
    };
    this.broadcast(frameFor);
    if (kind === 'received' && site?.kind === 'home') this.auditHomePush(site);
  }

  /** One audit entry per person shown a new home alert, however many tabs they have open. */
  private auditHomePush(site: Site): void {
    const shown = new Map<string, Principal>();
    for (const { principal } of this.clients) shown.set(principal.name, principal);
    for (const principal of shown.values()) auditHomeReadsBy(this.deps.homeAudit, principal, [site], 'home.read.feed');
  }

  private broadcast(frameFor: (principal: Principal) => string): void {
    for (const client of [...this.clients]) this.write(client, frameFor(client.principal));
  }

  private write(client: FeedClient, frame: string): void {
    const { res } = client;
    if (res.destroyed || res.writableEnded) return;
    if (res.writableLength > client.allowance) {
      this.drop(client, 'slow');
      return;
    }
    res.write(frame);
  }

  private drop(client: FeedClient, reason: 'slow' | 'overflow'): void {
    this.clients.delete(client);
    this.deps.counters.inc('feed_clients_dropped_total', { reason });
    this.throttle.warn(`drop-${reason}`, { name: client.principal.name, reason, bufferedBytes: client.res.writableLength }, 'live feed client dropped');
    client.res.destroy();
  }
}
