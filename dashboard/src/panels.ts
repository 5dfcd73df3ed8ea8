// The side panels: device health, latency, the audit table and the admin's
// device management. Each draws into the element it is given from what it is
// passed; main.ts owns the state.
import type { Trouble } from '../../protocol/troubles.ts';
import { api, ApiError } from './api.ts';
import { h, replaceChildren } from './dom.ts';
import { clock, ms } from './format.ts';

export interface DeviceInfo {
  id: string; siteId: string; type: string; online: boolean; lastSeen: string | null; battery: number | null; revoked: boolean;
  /** `pending`: never heard since it was installed (or since the gateway started), so not yet supervised. */
  supervision?: { state: 'pending' | 'ok' | 'missed' | 'revoked' };
}
export interface AuditItem { at: string; actor: string; action: string; target: string | null; detail: Record<string, unknown> | null }
interface LatencyAnswer { window: string; source: string; count: number; stages: Record<string, { p50: number | null; p95: number | null; p99: number | null } | null> }

/** Online, offline and never-heard devices per type, how many are in trouble, MQTT clients. */
export function renderHealth(el: HTMLElement, devices: Iterable<DeviceInfo>, troubles: Iterable<Trouble>, health: Record<string, unknown>): void {
  const byType = new Map<string, { online: number; offline: number; pending: number }>();
  for (const d of devices) {
    if (d.revoked) continue;
    const row = byType.get(d.type) ?? { online: 0, offline: 0, pending: 0 };
    // A device never heard from is not "offline" (nothing was lost): shown apart, so real outages stand out.
    if (d.online) row.online++; else if (d.supervision?.state === 'pending') row.pending++; else row.offline++;
    byType.set(d.type, row);
  }
  const troubled = new Set([...troubles].map((t) => t.deviceId).filter(Boolean)).size;
  const broker = health.broker as { connectedClients?: number } | undefined;
  replaceChildren(el,
    h('div', { class: 'panel-head' }, h('h4', {}, 'Device health'), h('span', { class: 'dim' }, `${troubled} in trouble · ${broker?.connectedClients ?? "—"} connected`)),
    h('table', { class: 'health' },
      h('thead', {}, h('tr', {}, h('th', {}, 'type'), h('th', { class: 'num' }, 'online'), h('th', { class: 'num' }, 'offline'), h('th', { class: 'num' }, 'never heard'))),
      h('tbody', {}, ...[...byType].sort(([a], [b]) => a.localeCompare(b)).map(([t, c]) => h('tr', { 'data-type': t },
        h('td', {}, t), h('td', { class: 'num ok-text' }, c.online), h('td', { class: `num ${c.offline ? 'bad-text' : ''}` }, c.offline),
        h('td', { class: 'num dim' }, c.pending))))));
}

/** p50/p95/p99 per alert stage over the last hour, from GET /api/latency. */
export async function loadLatency(el: HTMLElement): Promise<void> {
  try {
    const l = await api<LatencyAnswer>('GET', '/api/latency?window=1h');
    replaceChildren(el,
      h('div', { class: 'panel-head' }, h('h4', {}, 'Latency, last hour'), h('span', { class: 'dim' }, `${l.count} alerts · ${l.source}`)),
      h('table', { class: 'latency' },
        h('thead', {}, h('tr', {}, h('th', {}, 'stage'), h('th', { class: 'num' }, 'p50'), h('th', { class: 'num' }, 'p95'), h('th', { class: 'num' }, 'p99'))),
        h('tbody', {}, ...Object.entries(l.stages).map(([stage, p]) => h('tr', {},
          h('td', {}, stage.replace(/_ms$/, '')), h('td', { class: 'num' }, ms(p?.p50)), h('td', { class: 'num' }, ms(p?.p95)), h('td', { class: 'num' }, ms(p?.p99)))))));
  } catch (err) {
    replaceChildren(el, h('h4', {}, 'Latency'), h('p', { class: 'empty' }, `Not available: ${(err as Error).message}`));
  }
}

export function auditTable(items: AuditItem[]): HTMLElement {
  if (items.length === 0) return h('p', { class: 'empty' }, 'No entries.');
  return h('table', { class: 'audit' }, h('tbody', {}, ...items.map((e) => h('tr', {},
    h('td', {}, `${new Date(e.at).toLocaleDateString()} ${clock(e.at)}`), h('td', {}, e.actor), h('td', {}, e.action),
    h('td', { class: 'dim' }, e.target ?? ''), h('td', { class: 'dim' }, e.detail ? JSON.stringify(e.detail) : '')))));
}

/** The admin's Devices tab: provision (the secret shown once), revoke, list. `changed` reloads the device list. */
export function renderDevicesAdmin(body: HTMLElement, devices: ReadonlyMap<string, DeviceInfo>, siteIds: Iterable<string>, changed: () => void): void {
  const out = h('div', { class: 'admin-out', role: 'status' });
  const siteId = h('input', { name: 'siteId', required: true, placeholder: 'site id, e.g. store-0001', list: 'site-ids' });
  const type = h('select', { name: 'type' }, ...['panic-button', 'motion-sensor', 'door-sensor', 'alarm-bell', 'rf-receiver'].map((t) => h('option', { value: t }, t)));
  const revokeId = h('input', { name: 'deviceId', required: true, placeholder: 'device id' });
  const filter = h('input', { name: 'filter', placeholder: 'filter by device or site id' });
  const list = h('div', { class: 'device-list' });
  const showList = () => {
    const q = filter.value.trim().toLowerCase();
    const matches = [...devices.values()].filter((d) => !q || d.id.includes(q) || d.siteId.includes(q)).slice(0, 100);
    replaceChildren(list, h('table', {}, h('tbody', {}, ...matches.map((d) => h('tr', {},
      h('td', {}, h('code', {}, d.id)), h('td', { class: 'dim' }, d.siteId), h('td', {}, d.type),
      h('td', { class: d.revoked ? 'dim' : d.online ? 'ok-text' : 'bad-text' }, d.revoked ? 'revoked' : d.online ? 'online' : 'offline'))))));
  };
  filter.addEventListener('input', showList);
  replaceChildren(body,
    h('h4', {}, 'Provision a device'),
    h('form', { class: 'admin-form', onsubmit: (ev) => {
      ev.preventDefault();
      api<{ id: string; secret: string }>('POST', '/api/devices', { siteId: siteId.value.trim(), type: type.value }).then((d) => {
        replaceChildren(out, h('div', { class: 'secret' }, 'Device ', h('code', {}, d.id), ' provisioned. Its secret is shown only now: ', h('code', { class: 'select-all' }, d.secret)));
        changed();
      }, (err: unknown) => replaceChildren(out, h('div', { class: 'bad-text' }, `Refused: ${(err as Error).message}`)));
    } }, siteId, type, h('button', { type: 'submit', class: 'primary' }, 'Provision')),
    h('datalist', { id: 'site-ids' }, ...[...siteIds].slice(0, 5000).map((id) => h('option', { value: id }))),
    h('h4', {}, 'Revoke a device'),
    h('form', { class: 'admin-form', onsubmit: (ev) => {
      ev.preventDefault();
      const id = revokeId.value.trim();
      api('DELETE', `/api/devices/${encodeURIComponent(id)}`).then(() => {
        replaceChildren(out, h('div', {}, `Device ${id} revoked.`));
        changed();
      }, (err: unknown) => replaceChildren(out, h('div', { class: 'bad-text' }, err instanceof ApiError && err.code === 'NOT_FOUND'
        ? 'This gateway cannot revoke devices yet (no DELETE /api/devices/:id).' : `Refused: ${(err as Error).message}`)));
    } }, revokeId, h('button', { type: 'submit', class: 'danger' }, 'Revoke')),
    out,
    h('h4', {}, 'Devices'), filter, list);
  showList();
}
