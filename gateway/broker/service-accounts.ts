// Integrators' MQTT accounts (INTERFACES §2 `mqtt.serviceAccounts`): a city
// CCTV centre or a second dashboard following alerts. Each has allow lists for
// publish and subscribe and a deny list that wins. Whatever the config says,
// an account can never publish under `safehaven/v1/` (it could fake a device's
// "help is coming" ack or an alert update) nor retain anything.
import { createHash, timingSafeEqual } from 'node:crypto';
import { TOPIC_ROOT } from '../../protocol/index.ts';
import type { ServiceAccountConfig } from '../config.ts';
import { verifySecret } from '../registry/secrets.ts';
import { filterCovers, filtersOverlap, topicMatches } from './topic-filter.ts';

export interface ServiceAccount {
  username: string;
  publish: readonly string[];
  subscribe: readonly string[];
  deny: readonly string[];
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

export class ServiceAccounts {
  private readonly accounts: Map<string, ServiceAccountConfig>;

  constructor(configured: readonly ServiceAccountConfig[]) {
    this.accounts = new Map(configured.map((a) => [a.username, a]));
  }

  has(username: string): boolean {
    return this.accounts.has(username);
  }

  names(): string[] {
    return [...this.accounts.keys()];
  }

  /** The account if the password is right. A stored `scrypt$…` value is a hash; anything else is the password itself. */
  async authenticate(username: string, password: string): Promise<ServiceAccount | null> {
    const account = this.accounts.get(username);
    if (!account) return null;
    const ok = account.password.startsWith('scrypt$')
      ? await verifySecret(password, account.password)
      : timingSafeEqual(sha256(password), sha256(account.password));
    return ok ? account : null;
  }

  /** Why the account may not publish this, or null if it may. */
  static publishRefusal(account: ServiceAccount, topic: string, retain: boolean): string | null {
    if (retain) return 'retain-not-allowed';
    if (topic === TOPIC_ROOT || topic.startsWith(`${TOPIC_ROOT}/`)) return 'gateway-topic';
    if (account.deny.some((d) => topicMatches(d, topic))) return 'denied';
    return account.publish.some((a) => topicMatches(a, topic)) ? null : 'not-allowed';
  }

  /** A subscription must lie inside an allow filter and not wholly inside a deny filter. */
  static subscribeAllowed(account: ServiceAccount, filter: string): boolean {
    if (account.deny.some((d) => filterCovers(d, filter))) return false;
    return account.subscribe.some((a) => filterCovers(a, filter));
  }

  /**
   * Could some account ever receive a message on a topic `filter` matches?
   * Errs towards yes: an allow filter overlapping it counts unless a deny filter covers all of it.
   */
  anyMayReceive(filter: string): boolean {
    return [...this.accounts.values()].some((a) =>
      a.subscribe.some((s) => filtersOverlap(s, filter)) && !a.deny.some((d) => filterCovers(d, filter)));
  }

  /** Per message, for subscriptions that only partly overlap a deny filter: the deny list wins. */
  static mayReceive(account: ServiceAccount, topic: string): boolean {
    return !account.deny.some((d) => topicMatches(d, topic));
  }
}
