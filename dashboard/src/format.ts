import type { ResolveOutcome } from '../../protocol/schemas.ts';
import type { TroubleKind } from '../../protocol/troubles.ts';

/** "4s", "3m 07s", "2h 05m": how long ago, as a dispatcher reads it at a glance. */
export function since(iso: string | null, now = Date.now()): string {
  if (!iso) return '—';
  return duration(now - Date.parse(iso));
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

/** Between two stages: milliseconds under a second, else as duration(). */
export function delta(fromIso: string | null, toIso: string | null): string {
  if (!fromIso || !toIso) return '';
  const ms = Date.parse(toIso) - Date.parse(fromIso);
  return ms < 1000 ? `+${ms} ms` : `+${duration(ms)}`;
}

export function clock(iso: string | null): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleTimeString(undefined, { hour12: false });
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—';
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`;
}

export const OUTCOMES: Record<ResolveOutcome, string> = {
  'police-dispatched': 'Police dispatched',
  'false-alarm': 'False alarm',
  test: 'Test',
  other: 'Other (note required)',
};

export const STATE_LABELS: Record<string, string> = {
  received: 'Received',
  dispatched: 'Sent to police',
  escalated: 'ESCALATED',
  acknowledged: 'Police acknowledged',
  resolved: 'Resolved',
};

export const TROUBLE_LABELS: Record<TroubleKind, string> = {
  unprotected: 'Store unprotected',
  'receiver-offline': 'Receiver offline',
  offline: 'Device offline',
  tamper: 'Tamper',
  flooding: 'Flooding',
  'low-battery': 'Low battery',
};
