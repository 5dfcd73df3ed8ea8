// Home-patrol households are low-income women's homes: their address, phone
// and exact position go only to those who send help (dispatcher and admin),
// and every such read is audited. A viewer (a wall screen, a statistician)
// sees the district and a position rounded to about a kilometre. Stores are
// public places and are shown in full.
import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Site } from '../../protocol/index.ts';
import type { AuditRepo } from '../store/audit-repo.ts';
import type { CommitQueue } from '../store/commit-queue.ts';
import type { Role } from '../store/token-repo.ts';
import type { Principal } from './auth.ts';

/** Two decimals of a degree: ~1.1 km north–south in Seoul. */
const roundCoord = (x: number) => Math.round(x * 100) / 100;

export const seesHomeDetails = (role: Role) => role !== 'viewer';

export function siteView(site: Site, role: Role): Site {
  if (site.kind !== 'home' || seesHomeDetails(role)) return site;
  return { ...site, name: `Home in ${site.district}`, address: site.district, phone: '', lat: roundCoord(site.lat), lon: roundCoord(site.lon) };
}

export interface HomeReadAudit {
  audit: AuditRepo;
  commits: CommitQueue;
  now: () => number;
  log: Logger;
}

/**
 * Records that this request showed these homes' details. Written in the
 * background: an audit entry must never hold up a dispatcher's screen, and a
 * failing store is already loud on its own.
 */
export function auditHomeReads(deps: HomeReadAudit, req: FastifyRequest, sites: ReadonlyArray<Site | undefined>, action: string): void {
  if (req.principal) auditHomeReadsBy(deps, req.principal, sites, action);
}

/** The same for a read outside a request: a live-feed push to a connected dispatcher. */
export function auditHomeReadsBy(deps: HomeReadAudit, principal: Principal, sites: ReadonlyArray<Site | undefined>, action: string): void {
  if (!seesHomeDetails(principal.role)) return;
  const homes = [...new Set(sites.filter((s): s is Site => s?.kind === 'home').map((s) => s.id))];
  if (homes.length === 0) return;
  const at = deps.now();
  const target = homes.length === 1 ? homes[0]! : null;
  deps.commits.write(() => deps.audit.record(at, principal.name, action, target, { homes: homes.slice(0, 50), count: homes.length }))
    .catch((err: unknown) => deps.log.error({ err, action }, 'could not audit a read of home details'));
}
