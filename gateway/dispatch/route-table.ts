// Which police endpoint gets a site's alerts: the route whose `match` names
// the site's police station, else its district, else the default route.
import type { Site } from '../../protocol/index.ts';
import type { PoliceFormat, PoliceRoute } from '../config.ts';

export const DEFAULT_ROUTE = 'default';

export interface ResolvedRoute {
  name: string;
  url: string;
  fallbackUrl?: string;
  secret: string;
  format: PoliceFormat;
}

export class RouteTable {
  private readonly byMatch = new Map<string, ResolvedRoute>();
  private readonly fallback: ResolvedRoute;

  constructor(defaultRoute: Omit<ResolvedRoute, 'name'>, routes: readonly PoliceRoute[]) {
    this.fallback = { name: DEFAULT_ROUTE, ...defaultRoute };
    for (const r of routes) {
      this.byMatch.set(r.match, { name: r.match, url: r.url, fallbackUrl: r.fallbackUrl, secret: r.secret ?? defaultRoute.secret, format: r.format });
    }
  }

  routeFor(site: Pick<Site, 'policeStation' | 'district'>): ResolvedRoute {
    return this.byMatch.get(site.policeStation) ?? this.byMatch.get(site.district) ?? this.fallback;
  }

  /**
   * The route an outbox row was queued for. A route removed from the config
   * since then falls back to the default: an alert is never stranded.
   */
  byName(name: string): ResolvedRoute {
    return this.byMatch.get(name) ?? this.fallback;
  }

  /** The routes whose primary, and whose fallback, endpoint is `url`: for bringing its backlog forward. */
  routesUsing(url: string): { primary: string[]; fallback: string[] } {
    const all = [this.fallback, ...this.byMatch.values()];
    return {
      primary: all.filter((r) => r.url === url).map((r) => r.name),
      fallback: all.filter((r) => r.fallbackUrl === url).map((r) => r.name),
    };
  }

  /** Every route's name and secret: a police callback is authenticated against these. */
  secrets(): Array<{ name: string; secret: string }> {
    return [this.fallback, ...this.byMatch.values()].map(({ name, secret }) => ({ name, secret }));
  }

  /** For the banner and /healthz: never the secrets. */
  describe(): Array<{ name: string; url: string; fallbackUrl?: string; format: PoliceFormat }> {
    return [this.fallback, ...this.byMatch.values()].map(({ name, url, fallbackUrl, format }) => ({ name, url, ...(fallbackUrl ? { fallbackUrl } : {}), format }));
  }
}
