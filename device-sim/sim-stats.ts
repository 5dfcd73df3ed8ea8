// What a simulator run counts: presses sent, PUBACKed, delivered (the
// gateway's `acknowledged` ack, or a police receipt when the run hosts the
// police endpoint), their latencies, and the connections' ups and downs.
// Each press is counted once however often it is resent.
import { nearestRank } from '../gateway/metrics/latency-window.ts';

export interface LatencySummary {
  count: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

export function summarizeLatencies(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);
  return {
    count: sorted.length,
    p50: round(nearestRank(sorted, 50)),
    p99: round(nearestRank(sorted, 99)),
    p999: round(nearestRank(sorted, 99.9)),
    max: round(sorted.at(-1) ?? null),
  };
}

interface PressRecord {
  /** performance.now() at the first publish. */
  at: number;
  acked: boolean;
  delivered: boolean;
}

export class SimStats {
  connected = 0;
  /** Most devices connected at once. */
  peakConnected = 0;
  connectFailures = 0;
  refused = 0;
  reconnects = 0;
  drops = 0;
  heartbeats = 0;
  heartbeatsLost = 0;
  /** Event publishes, counting resends. */
  publishes = 0;
  resends = 0;
  /** Acks from the gateway on the devices' ack topics, any state. */
  ackMessages = 0;
  skewedPresses = 0;
  private readonly presses = new Map<string, PressRecord>();
  private ackedCount = 0;
  private deliveredCount = 0;
  /** Acks for alerts this run did not press (earlier runs' alerts moving on, e.g. police status callbacks). */
  unknownDeliveries = 0;
  private readonly pubackMs: number[] = [];
  private readonly deliveredMs: number[] = [];

  /** A new press (not a resend); its alert id is its key. */
  pressed(alertId: string, at: number): void {
    if (!this.presses.has(alertId)) this.presses.set(alertId, { at, acked: false, delivered: false });
  }

  /** Its PUBACK came: the alert is durable at the gateway. Only the first counts. */
  acked(alertId: string, at: number): void {
    const p = this.presses.get(alertId);
    if (!p || p.acked) return;
    p.acked = true;
    this.ackedCount++;
    this.pubackMs.push(at - p.at);
  }

  /** The police have it. Only the first counts; repeats are the endpoint's business to count. */
  delivered(alertId: string, at: number): void {
    const p = this.presses.get(alertId);
    if (!p) {
      this.unknownDeliveries++;
      return;
    }
    if (p.delivered) return;
    p.delivered = true;
    this.deliveredCount++;
    this.deliveredMs.push(at - p.at);
  }

  get sent(): number {
    return this.presses.size;
  }

  get ackedTotal(): number {
    return this.ackedCount;
  }

  get deliveredTotal(): number {
    return this.deliveredCount;
  }

  /** Alert ids pressed but not (yet) acked or delivered. */
  outstanding(what: 'acked' | 'delivered'): string[] {
    return [...this.presses].filter(([, p]) => !p[what]).map(([id]) => id);
  }

  latency(): { puback: LatencySummary; delivered: LatencySummary } {
    return { puback: summarizeLatencies(this.pubackMs), delivered: summarizeLatencies(this.deliveredMs) };
  }

  /** One line for stderr. */
  progressLine(): string {
    return `connected ${this.connected}, heartbeats ${this.heartbeats}, presses sent ${this.sent}, acked ${this.ackedCount}, delivered ${this.deliveredCount}` +
      (this.drops ? `, drops ${this.drops}, reconnects ${this.reconnects}` : '') + (this.connectFailures ? `, connect failures ${this.connectFailures}` : '');
  }

  /** The end-of-run table. */
  table(title: string): string {
    const { puback, delivered } = this.latency();
    const ms = (v: number | null) => (v === null ? '-' : `${v.toFixed(2)} ms`);
    const row = (k: string, v: unknown) => `  ${k.padEnd(30)} ${v}`;
    return [
      '',
      title,
      row('devices connected (peak)', this.peakConnected),
      row('connect failures / refused', `${this.connectFailures} / ${this.refused}`),
      row('drops / reconnects', `${this.drops} / ${this.reconnects}`),
      row('heartbeats sent / lost', `${this.heartbeats} / ${this.heartbeatsLost}`),
      row('presses sent', this.sent),
      row('event publishes (resends)', `${this.publishes} (${this.resends})`),
      row('presses with skewed clock', this.skewedPresses),
      row('presses acked (PUBACK)', this.ackedCount),
      row('presses delivered', this.deliveredCount),
      row('acks for alerts not pressed now', this.unknownDeliveries),
      row('lost (sent - delivered)', this.sent - this.deliveredCount),
      `  ${'latency'.padEnd(30)} ${'p50'.padStart(10)} ${'p99'.padStart(10)} ${'p99.9'.padStart(10)} ${'max'.padStart(10)}`,
      `  ${'press → PUBACK'.padEnd(30)} ${ms(puback.p50).padStart(10)} ${ms(puback.p99).padStart(10)} ${ms(puback.p999).padStart(10)} ${ms(puback.max).padStart(10)}`,
      `  ${'press → delivered'.padEnd(30)} ${ms(delivered.p50).padStart(10)} ${ms(delivered.p99).padStart(10)} ${ms(delivered.p999).padStart(10)} ${ms(delivered.max).padStart(10)}`,
      '',
    ].join('\n');
  }
}
