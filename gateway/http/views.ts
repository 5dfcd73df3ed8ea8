// The JSON the API answers with: ISO times, no secrets, stable field names.
import type { Site } from '../../protocol/index.ts';
import type { DeviceRecord } from '../store/registry-repo.ts';
import type { Role } from '../store/token-repo.ts';
import { seesHomeDetails, siteView } from './personal-data.ts';
import type { AlertRecord, OutboxRow, TimelineEntry } from '../store/alert-repo.ts';
import { isoTime as iso } from '../clock.ts';

export function deviceView(d: DeviceRecord, online: boolean) {
  return {
    id: d.id, siteId: d.siteId, type: d.type, online, lastSeen: iso(d.lastSeen), battery: d.battery, rssi: d.rssi,
    firmware: d.fw, createdAt: iso(d.createdAt), revoked: d.revokedAt !== null,
  };
}

/** An alert as the API shows it to `role` (see personal-data.ts for what a viewer sees of a home). */
export function alertView(a: AlertRecord, site: Site | undefined, role: Role) {
  return {
    id: a.id, deviceId: a.deviceId, seq: a.seq, siteId: a.siteId, type: a.type, priority: a.priority, state: a.state,
    source: a.source, pressedAt: iso(a.pressedAt), receivedAt: iso(a.receivedAt), deviceTs: iso(a.deviceTs), clockSkew: a.clockSkew,
    caseId: a.caseId, deliveredAt: iso(a.deliveredAt), ackedAt: iso(a.ackedAt), ackedBy: a.ackedBy,
    resolvedAt: iso(a.resolvedAt), resolvedBy: a.resolvedBy, outcome: a.outcome,
    // A dispatcher's free-text note on a home alert may repeat its address: not for viewers.
    note: site?.kind === 'home' && !seesHomeDetails(role) ? null : a.note, policeStatus: a.policeStatus,
    escalatedAt: iso(a.escalatedAt), remindedAt: iso(a.remindedAt), updatedAt: iso(a.updatedAt),
    site: site ? siteView(site, role) : null,
  };
}

export type AlertView = ReturnType<typeof alertView>;

export function timelineView(entries: TimelineEntry[]) {
  return entries.map((e) => ({ at: iso(e.at), kind: e.kind, state: e.state, actor: e.actor, detail: e.detail }));
}

export function deliveryView(rows: OutboxRow[]) {
  return rows.map((r) => ({
    target: r.target, route: r.route, attempts: r.attempts, nextAttemptAt: r.doneAt === null ? iso(r.nextAt) : null,
    lastError: r.lastError, doneAt: iso(r.doneAt),
  }));
}
