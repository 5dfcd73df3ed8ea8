// The dispatcher dashboard: login, then the live alert queue, troubles, the
// map, the selected alert's detail and actions, device health, latency and
// the audit log. State comes from the live feed (snapshot, then changes);
// the REST API is read for details and written for actions.
// Leaflet's stylesheet first, so the dashboard's dark overrides win.
import 'leaflet/dist/leaflet.css';
import './styles.css';
import type { Site } from '../../protocol/schemas.ts';
import type { Trouble } from '../../protocol/troubles.ts';
import type { FeedEventName, FeedEvents } from '../../protocol/feed.ts';
import type { AlertView } from '../../gateway/http/views.ts';
import { api, ApiError, session } from './api.ts';
import { $, h, replaceChildren } from './dom.ts';
import { FeedClient, type FeedStatus } from './feed-client.ts';
import { clock, delta, OUTCOMES, since, STATE_LABELS, TROUBLE_LABELS } from './format.ts';
import { CityMap, type MapConfig } from './map.ts';
import { auditTable, loadLatency, renderDevicesAdmin, renderHealth, type AuditItem, type DeviceInfo } from './panels.ts';
import { Alarm } from './sound.ts';

interface AlertDetail extends AlertView {
  device: { id: string; type: string; battery: number | null; rssi: number | null; firmware: string | null } | null;
  timeline: Array<{ at: string; kind: string; state: string | null; actor: string | null; detail: Record<string, unknown> | null }>;
  deliveries: Array<{ target: string; route: string; attempts: number; nextAttemptAt: string | null; lastError: string | null; doneAt: string | null }>;
}
type Tab = 'alert' | 'audit' | 'devices';

/** Alerts at or above this priority (panic, intrusion) ring until a dispatcher acknowledges them. */
const ALARM_PRIORITY = 90;
const FLASH_MS = 6000;
const LATENCY_REFRESH_MS = 15_000;
/** Presence events keep the counts current in between; the full list is large (every device). */
const DEVICES_REFRESH_MS = 120_000;

const state = {
  me: { name: '', role: 'viewer' },
  alerts: new Map<string, AlertView>(),
  /** Resolved alerts, so a late, older change cannot bring one back. */
  gone: new Map<string, string>(),
  troubles: new Map<string, Trouble>(),
  devices: new Map<string, DeviceInfo>(),
  sites: new Map<string, Site>(),
  health: {} as Record<string, unknown>,
  selected: null as string | null,
  flashing: new Map<string, number>(),
  silenced: new Set<string>(),
  tab: 'alert' as Tab,
  snapshots: 0,
};

let feed: FeedClient | null = null;
let map: CityMap | null = null;
const timers: number[] = [];
const alarm = new Alarm((locked) => { const b = document.getElementById('sound-unlock'); if (b) b.hidden = !locked; });

const canAct = () => state.me.role !== 'viewer';
const isAdmin = () => state.me.role === 'admin';

// ---------- login ----------

function showLogin(message?: string): void {
  stopApp();
  const error = h('p', { class: 'login-error', role: 'alert' }, message ?? '');
  const input = h('input', { name: 'token', id: 'token', type: 'password', autocomplete: 'off', required: true, placeholder: 'Bearer token', autofocus: true });
  const form = h('form', { class: 'login', onsubmit: (ev) => {
    ev.preventDefault();
    alarm.unlock();
    const token = input.value.trim();
    api<MapConfig>('GET', '/api/dashboard/config', undefined, token).then(() => {
      session.save(token);
      startApp().catch((err: unknown) => showLogin(`The dashboard could not start: ${(err as Error).message}`));
    }, (err: unknown) => { error.textContent = err instanceof ApiError && err.status === 401 ? 'That token is not valid.' : `Cannot log in: ${(err as Error).message}`; });
  } },
  h('h1', {}, 'SafeHaven', h('span', {}, 'dispatch')),
  h('label', { for: 'token' }, 'Access token'),
  input,
  h('button', { type: 'submit', class: 'primary' }, 'Log in'),
  error,
  h('p', { class: 'hint' }, 'Kept for this browser tab only. Ask an administrator for a viewer, dispatcher or admin token.'));
  replaceChildren($('#app'), h('div', { class: 'login-wrap' }, form));
  input.focus();
}

function stopApp(): void {
  document.removeEventListener('keydown', onKey);
  feed?.stop();
  feed = null;
  alarm.set(false);
  for (const t of timers.splice(0)) window.clearInterval(t);
  map = null;
}

function logout(message?: string): void {
  session.clear();
  showLogin(message);
}

// ---------- the shell ----------

function shell(): HTMLElement {
  const tabs = h('nav', { class: 'tabs', id: 'tabs' });
  return h('div', { class: 'shell' },
    h('header', { class: 'top' },
      h('div', { class: 'brand' }, 'SafeHaven', h('span', {}, 'dispatch')),
      h('span', { id: 'conn', class: 'pill' }, 'connecting'),
      h('span', { id: 'gw', class: 'pill' }, 'gateway …'),
      h('span', { id: 'summary', class: 'summary' }),
      h('span', { class: 'spacer' }),
      h('button', { id: 'sound-unlock', hidden: true, class: 'warn', onclick: () => alarm.unlock() }, 'Enable alarm sound'),
      h('button', { id: 'silence', hidden: true, onclick: silence }, 'Silence'),
      h('span', { id: 'who', class: 'who' }),
      h('span', { id: 'clock', class: 'clock' }),
      h('button', { onclick: () => logout() }, 'Log out')),
    h('div', { id: 'banner', class: 'banner', hidden: true }),
    h('div', { id: 'feed-lost', class: 'banner lost', hidden: true }, 'CONNECTION TO THE GATEWAY LOST: what you see may be out of date. Reconnecting…'),
    h('main', { class: 'grid' },
      h('section', { class: 'col-left' },
        h('h2', {}, 'Alerts ', h('span', { id: 'alert-count', class: 'count' })),
        h('div', { id: 'queue', class: 'queue', 'aria-live': 'assertive' }),
        h('h2', {}, 'Troubles ', h('span', { id: 'trouble-count', class: 'count' })),
        h('div', { id: 'troubles', class: 'troubles' })),
      h('section', { class: 'col-center' },
        h('div', { id: 'map', class: 'map' }),
        h('div', { class: 'panels' },
          h('div', { id: 'health', class: 'panel' }),
          h('div', { id: 'latency', class: 'panel' }))),
      h('section', { class: 'col-right' }, tabs, h('div', { id: 'tab-body', class: 'tab-body' }))),
    h('div', { id: 'flash', class: 'flash-overlay' }));
}

async function startApp(): Promise<void> {
  const token = session.token();
  if (!token) return showLogin();
  stopApp();
  replaceChildren($('#app'), shell());
  document.addEventListener('click', () => { if (alarm.locked()) alarm.unlock(); }, { once: true });
  document.addEventListener('keydown', onKey);
  renderTabs();
  const config = await api<MapConfig>('GET', '/api/dashboard/config');
  map = new CityMap($('#map'), config, (siteId) => {
    const alert = [...state.alerts.values()].find((a) => a.siteId === siteId);
    if (alert) select(alert.id);
  });
  feed = new FeedClient(token, onFeed, onFeedStatus, () => logout('Your session has ended: log in again.'));
  feed.start();
  timers.push(window.setInterval(tick, 1000));
  timers.push(window.setInterval(() => void loadLatency($('#latency')), LATENCY_REFRESH_MS));
  timers.push(window.setInterval(() => void loadDevices(), DEVICES_REFRESH_MS));
  void loadLatency($('#latency'));
  void loadDevices();
  void loadSites();
  if (config.districts) void api<GeoJSON.FeatureCollection>('GET', '/api/dashboard/districts').then((d) => map?.drawDistricts(d), () => {});
}

// ---------- the feed ----------

function onFeedStatus(status: FeedStatus, why?: string): void {
  const el = document.getElementById('conn');
  if (!el) return;
  el.textContent = status === 'live' ? 'LIVE' : status === 'connecting' ? 'connecting…' : 'RECONNECTING…';
  el.className = `pill ${status === 'live' ? 'ok' : 'bad'}`;
  el.title = why ?? '';
  // Stale data on an alarm screen must never look live.
  const lost = document.getElementById('feed-lost');
  if (lost) lost.hidden = status !== 'reconnecting';
  document.body.classList.toggle('stale', status === 'reconnecting');
}

function onFeed<E extends FeedEventName>(event: E, data: FeedEvents<AlertView>[E]): void {
  switch (event) {
    case 'hello': {
      const hello = data as FeedEvents<AlertView>['hello'];
      state.me = { name: hello.name, role: hello.role };
      $('#who').textContent = `${hello.name} · ${hello.role}`;
      renderTabs();
      break;
    }
    case 'snapshot': {
      const snap = data as FeedEvents<AlertView>['snapshot'];
      const known = new Set(state.alerts.keys());
      state.alerts = new Map(snap.alerts.map((a) => [a.id, a]));
      state.troubles = new Map(snap.troubles.map((t) => [t.id, t]));
      // After a reconnect, alerts raised during the gap are new to this dispatcher.
      if (state.snapshots++ > 0) {
        for (const a of snap.alerts) if (!known.has(a.id)) announceNew(a);
      } else if (!state.selected && snap.alerts.length > 0) {
        state.selected = sortedAlerts()[0]!.id;
      }
      setHealth(snap.health);
      changed();
      break;
    }
    case 'alert': {
      const { change, alert } = data as FeedEvents<AlertView>['alert'];
      const isNew = !state.alerts.has(alert.id) && !state.gone.has(alert.id);
      if (!applyAlert(alert)) return;
      if (change === 'received' && isNew) announceNew(alert);
      // Still nobody on it: flash its card again.
      else if (change === 'reminder' && !alert.ackedAt) state.flashing.set(alert.id, Date.now() + FLASH_MS);
      changed(alert.id);
      break;
    }
    case 'trouble': {
      const { kind, trouble } = data as FeedEvents<AlertView>['trouble'];
      if (kind === 'raised') state.troubles.set(trouble.id, trouble);
      else state.troubles.delete(trouble.id);
      renderTroubles();
      showHealth();
      break;
    }
    case 'presence': {
      const p = data as FeedEvents<AlertView>['presence'];
      const d = state.devices.get(p.deviceId);
      if (d) { d.online = p.online; d.lastSeen = p.lastSeen; showHealth(); }
      break;
    }
    case 'health':
      setHealth(data as Record<string, unknown>);
      break;
  }
}

/** Applies a change unless it is older than what is shown; false if ignored. */
function applyAlert(alert: AlertView): boolean {
  const shown = state.alerts.get(alert.id)?.updatedAt ?? state.gone.get(alert.id);
  if (shown && Date.parse(shown) > Date.parse(alert.updatedAt ?? '')) return false;
  if (alert.state === 'resolved') {
    state.alerts.delete(alert.id);
    state.gone.set(alert.id, alert.updatedAt ?? '');
    state.silenced.delete(alert.id);
  } else {
    state.alerts.set(alert.id, alert);
  }
  return true;
}

function announceNew(alert: AlertView): void {
  state.flashing.set(alert.id, Date.now() + FLASH_MS);
  const top = sortedAlerts()[0];
  // Jump to the new alert unless the dispatcher is in the middle of typing (a resolve note, a device form).
  const note = document.querySelector<HTMLTextAreaElement>('textarea[name=note]');
  const typing = document.activeElement instanceof HTMLInputElement || document.activeElement instanceof HTMLTextAreaElement;
  const busy = typing || (note !== null && note.value.trim() !== '');
  if (!state.selected || !state.alerts.has(state.selected) || (top?.id === alert.id && !busy)) {
    state.selected = alert.id;
    if (!busy && state.tab !== 'alert') {
      state.tab = 'alert';
      renderTabs();
    }
  }
  if (alert.priority >= ALARM_PRIORITY) {
    const flash = document.getElementById('flash');
    flash?.classList.remove('on');
    void flash?.offsetWidth;
    flash?.classList.add('on');
  }
}

/** Coalesces a burst of changes into one redraw; the alarm itself is decided at once. */
let renderTimer: number | null = null;
let detailStale = false;
let shownDetail: string | null = null;
/** When the shown detail appeared: the A key acts only on an alert that has been on screen a moment. */
let shownSince = 0;
/** Long enough to see that the detail changed under the finger. */
const KEY_ACK_SETTLE_MS = 1000;

function showDetail(id: string | null): void {
  if (id !== shownDetail) shownSince = Date.now();
  shownDetail = id;
}

/** `alertId`: the alert that changed (its detail is reloaded if shown); none = everything may have. */
function changed(alertId?: string): void {
  if (state.selected && !state.alerts.has(state.selected)) {
    // The selected alert was resolved: keep its detail visible until another is chosen.
    if (!state.gone.has(state.selected)) state.selected = sortedAlerts()[0]?.id ?? null;
  }
  updateAlarm();
  if (alertId === undefined || alertId === state.selected || state.selected !== shownDetail) detailStale = true;
  if (renderTimer !== null) return;
  renderTimer = window.setTimeout(() => {
    renderTimer = null;
    renderQueue();
    renderTroubles();
    renderSummary();
    renderMapPins();
    if (detailStale && state.tab === 'alert') {
      detailStale = false;
      showDetail(state.selected);
      void loadDetail();
    }
  }, 50);
}

// ---------- queue ----------

/**
 * Severity first; among equals, those no dispatcher has taken yet, newest
 * first, so a new panic lands on top (the older ones stay red and keep the
 * alarm ringing until taken); then the taken ones, newest first.
 */
function sortedAlerts(): AlertView[] {
  return [...state.alerts.values()].sort((a, b) => b.priority - a.priority
    || Number(a.ackedAt !== null) - Number(b.ackedAt !== null)
    || Date.parse(b.pressedAt ?? '') - Date.parse(a.pressedAt ?? ''));
}

function stateChip(a: AlertView): HTMLElement {
  const cls = a.state === 'escalated' ? 'bad' : a.state === 'acknowledged' ? 'ok' : a.state === 'dispatched' ? 'info' : 'warn';
  // "acknowledged" is reached by a police 2xx or by a dispatcher, whichever came first.
  const label = a.state === 'acknowledged' && !a.deliveredAt ? 'Acknowledged' : STATE_LABELS[a.state] ?? a.state;
  return h('span', { class: `chip ${cls}`, 'data-state': a.state }, label);
}

function alertCard(a: AlertView): HTMLElement {
  const site = a.site;
  const flashing = (state.flashing.get(a.id) ?? 0) > Date.now();
  return h('article', {
    class: `card prio-${a.priority >= ALARM_PRIORITY ? 'high' : a.priority >= 50 ? 'mid' : 'low'}${a.ackedAt ? ' taken' : ''}${flashing ? ' flash' : ''}${state.selected === a.id ? ' selected' : ''}`,
    'data-alert-id': a.id, tabindex: 0,
    onclick: () => select(a.id),
    onkeydown: (ev) => { if ((ev as KeyboardEvent).key === 'Enter') select(a.id); },
  },
  h('div', { class: 'card-top' },
    h('span', { class: `type type-${a.type}` }, a.type.toUpperCase()),
    h('span', { class: 'kind' }, site?.kind === 'home' ? 'HOME' : 'STORE'),
    h('span', { class: 'since', 'data-since': a.pressedAt ?? '' }, since(a.pressedAt)),
  ),
  h('div', { class: 'site-name' }, site?.name ?? a.siteId),
  h('div', { class: 'addr' }, site?.address ?? ''),
  h('div', { class: 'meta' },
    site?.phone ? h('span', { class: 'phone' }, `☎ ${site.phone}`) : null,
    h('span', {}, [site?.district, site?.policeStation].filter(Boolean).join(' · '))),
  h('div', { class: 'card-bottom' },
    stateChip(a),
    a.escalatedAt && !a.deliveredAt && a.state !== 'escalated' ? h('span', { class: 'chip bad' }, 'OVERDUE: no police answer') : null,
    a.policeStatus ? h('span', { class: 'chip info' }, `police: ${a.policeStatus}`) : null,
    a.caseId ? h('span', { class: 'case' }, a.caseId) : null),
  h('div', { class: 'card-bottom' },
    a.ackedAt ? h('span', { class: 'taken-by' }, `✓ taken by ${a.ackedBy ?? ''}`) : h('span', { class: 'untaken' }, 'NOT ACKNOWLEDGED'),
    h('span', { class: 'spacer' }),
    canAct() && !a.ackedAt ? h('button', { class: 'ack small primary', onclick: (ev) => { ev.stopPropagation(); void acknowledge(a.id); } }, 'Acknowledge') : null));
}

function renderQueue(): void {
  const list = sortedAlerts();
  $('#alert-count').textContent = String(list.length);
  replaceChildren($('#queue'), ...(list.length ? list.map(alertCard) : [h('p', { class: 'empty' }, 'No open alerts.')]));
}

function renderTroubles(): void {
  const list = [...state.troubles.values()].sort((a, b) => b.severity - a.severity || Date.parse(a.raisedAt) - Date.parse(b.raisedAt));
  $('#trouble-count').textContent = String(list.length);
  replaceChildren($('#troubles'), ...(list.length ? list.map((t) => {
    const site = t.siteId ? state.sites.get(t.siteId) : undefined;
    return h('div', { class: `trouble sev-${t.severity}`, 'data-trouble-id': t.id, 'data-device-id': t.deviceId ?? '' },
      h('div', { class: 'card-top' }, h('span', { class: 'tkind' }, TROUBLE_LABELS[t.kind] ?? t.kind), h('span', { class: 'since', 'data-since': t.raisedAt }, since(t.raisedAt))),
      h('div', {}, t.deviceId ? h('code', {}, t.deviceId) : null, site ? ` · ${site.name}` : t.siteId ? ` · ${t.siteId}` : ''),
      h('div', { class: 'detail' }, t.detail));
  }) : [h('p', { class: 'empty' }, 'No troubles.')]));
}

function renderSummary(): void {
  const open = state.alerts.size;
  const untaken = [...state.alerts.values()].filter((a) => !a.ackedAt).length;
  $('#summary').textContent = `${open} open · ${untaken} not acknowledged · ${state.troubles.size} troubles`;
}

function renderMapPins(): void {
  const list = sortedAlerts();
  map?.setAlerting(list.filter((a) => a.site).map((a, i) => ({ site: a.site!, label: `${a.type}: ${a.site!.name}`, top: i === 0 })), state.selected);
}

function tick(): void {
  const now = Date.now();
  for (const el of document.querySelectorAll<HTMLElement>('[data-since]')) el.textContent = since(el.dataset.since || null, now);
  $('#clock').textContent = new Date(now).toLocaleTimeString(undefined, { hour12: false });
  for (const [id, until] of state.flashing) if (until <= now) {
    state.flashing.delete(id);
    document.querySelector(`[data-alert-id="${id}"]`)?.classList.remove('flash');
  }
}

// ---------- alarm ----------

function ringing(): AlertView[] {
  return [...state.alerts.values()].filter((a) => a.priority >= ALARM_PRIORITY && !a.ackedAt && !state.silenced.has(a.id));
}

function updateAlarm(): void {
  const ring = ringing();
  alarm.set(ring.length > 0);
  document.body.classList.toggle('alarming', ring.length > 0);
  // Viewers cannot acknowledge; they may silence their own screen until the next alert.
  $('#silence').hidden = !(ring.length > 0 && !canAct());
}

function silence(): void {
  for (const a of ringing()) state.silenced.add(a.id);
  updateAlarm();
}

// ---------- actions ----------

/** A: acknowledge the selected alert; J/K: next/previous in the queue. Not while typing. */
function onKey(ev: KeyboardEvent): void {
  const t = ev.target;
  if (ev.ctrlKey || ev.metaKey || ev.altKey || t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
  const list = sortedAlerts();
  const at = list.findIndex((a) => a.id === state.selected);
  if (ev.key === 'a' && canAct() && state.selected && state.alerts.get(state.selected)?.ackedAt === null) {
    // A new panic may have just taken the selection: acknowledge only what the dispatcher has had time to see.
    if (state.selected === shownDetail && Date.now() - shownSince >= KEY_ACK_SETTLE_MS) void acknowledge(state.selected);
    else toast('A new alert is on screen: look at it, then press A again.');
  }
  else if (ev.key === 'j' && list.length) select(list[Math.min(at + 1, list.length - 1)]!.id);
  else if (ev.key === 'k' && list.length) select(list[Math.max(at - 1, 0)]!.id);
}

async function acknowledge(id: string): Promise<void> {
  try {
    const alert = await api<AlertView>('POST', `/api/alerts/${id}/ack`, {});
    if (applyAlert(alert)) changed(alert.id);
  } catch (err) {
    toast(`Acknowledge failed: ${(err as Error).message}`);
  }
}

async function resolve(id: string, outcome: string, note: string): Promise<void> {
  try {
    const alert = await api<AlertView>('POST', `/api/alerts/${id}/resolve`, { outcome, ...(note ? { note } : {}) });
    if (applyAlert(alert)) changed(alert.id);
    toast(`Resolved: ${alert.site?.name ?? id}`, 'ok');
  } catch (err) {
    toast(`Resolve failed: ${(err as Error).message}`);
  }
}

function toast(message: string, kind: 'ok' | 'bad' = 'bad'): void {
  const el = h('div', { class: `toast ${kind}`, role: 'status' }, message);
  document.body.append(el);
  window.setTimeout(() => el.remove(), 6000);
}

// ---------- detail ----------

function select(id: string): void {
  state.selected = id;
  showDetail(id);
  state.tab = 'alert';
  renderTabs();
  renderQueue();
  renderMapPins();
  const site = state.alerts.get(id)?.site;
  if (site) map?.focus(site);
  void loadDetail();
}

let detailSeq = 0;
async function loadDetail(): Promise<void> {
  const id = state.selected;
  if (!id) return renderTabBody();
  const seq = ++detailSeq;
  try {
    const [detail, audit] = await Promise.all([
      api<AlertDetail>('GET', `/api/alerts/${id}`),
      canAct() ? api<{ items: AuditItem[] }>('GET', `/api/audit?target=${encodeURIComponent(id)}`).then((r) => r.items) : Promise.resolve(null),
    ]);
    if (seq !== detailSeq || state.tab !== 'alert') return;
    renderDetail(detail, audit);
  } catch (err) {
    if (seq === detailSeq) replaceChildren($('#tab-body'), h('p', { class: 'empty' }, `Cannot load ${id}: ${(err as Error).message}`));
  }
}

function kv(label: string, value: string | number | null | undefined | Node): HTMLElement {
  return h('div', { class: 'kv' }, h('span', { class: 'k' }, label), h('span', { class: 'v' }, value ?? '—'));
}

/** Press → each stage, with the time since the previous one: where an alert lost its seconds. */
function stages(d: AlertDetail): HTMLElement {
  const dispatched = d.timeline.find((e) => e.state === 'dispatched')?.at ?? null;
  const rows: Array<[string, string | null]> = [
    ['Pressed', d.pressedAt], ['Received', d.receivedAt], ['Sent to police', dispatched], ['Police 2xx', d.deliveredAt],
    ['Acknowledged', d.ackedAt], ['Resolved', d.resolvedAt],
  ];
  let prev: string | null = null;
  return h('table', { class: 'stages' }, h('tbody', {}, ...rows.map(([label, at]) => {
    const row = h('tr', { class: at ? '' : 'pending' }, h('td', {}, label), h('td', {}, clock(at)), h('td', { class: 'num' }, at && prev ? delta(prev, at) : ''),
      h('td', { class: 'num dim' }, at && d.pressedAt && label !== 'Pressed' ? delta(d.pressedAt, at) : ''));
    if (at) prev = at;
    return row;
  })));
}

function renderDetail(d: AlertDetail, audit: AuditItem[] | null): void {
  const body = $('#tab-body');
  const oldOutcome = body.querySelector<HTMLSelectElement>('select[name=outcome]')?.value;
  const oldNote = body.querySelector<HTMLTextAreaElement>('textarea[name=note]')?.value;
  const site = d.site;
  const policeUpdates = d.timeline.filter((e) => e.kind === 'police-status');
  replaceChildren(body,
    h('div', { class: 'detail-head', 'data-detail-id': d.id },
      h('span', { class: `type type-${d.type}` }, d.type.toUpperCase()), stateChip(d),
      h('h3', {}, site?.name ?? d.siteId),
      h('div', { class: 'dim' }, `${d.id} · pressed ${clock(d.pressedAt)} (`, h('span', { 'data-since': d.pressedAt ?? '' }, since(d.pressedAt)), ' ago)')),
    d.state === 'resolved'
      ? h('div', { class: 'resolved-note' }, `Resolved by ${d.resolvedBy ?? '?'} at ${clock(d.resolvedAt)}: ${OUTCOMES[d.outcome as keyof typeof OUTCOMES] ?? d.outcome}${d.note ? ` — ${d.note}` : ''}`)
      : canAct() ? actions(d, oldOutcome, oldNote) : h('p', { class: 'dim' }, 'Viewer: acknowledging and resolving need the dispatcher role.'),
    h('h4', {}, 'Site'),
    h('div', { class: 'site-card' },
      kv('Name', site?.name), kv('Kind', site?.kind), kv('Address', site?.address), kv('Phone', site?.phone || '—'),
      kv('District', site?.district), kv('Police station', site?.policeStation), kv('Position', site ? `${site.lat.toFixed(5)}, ${site.lon.toFixed(5)}` : null)),
    h('h4', {}, 'Police'),
    h('div', { class: 'site-card' },
      kv('Case id', d.caseId), kv('Status', d.policeStatus),
      ...policeUpdates.map((e) => kv(clock(e.at), `${String(e.detail?.status ?? '')}${e.detail?.note ? ` — ${String(e.detail.note)}` : ''}`))),
    h('h4', {}, 'Device'),
    h('div', { class: 'site-card' },
      kv('Id', d.deviceId), kv('Type', d.device?.type), kv('Battery', d.device?.battery != null ? `${d.device.battery}%` : null),
      kv('Signal', d.device?.rssi != null ? `${d.device.rssi} dBm` : null), kv('Firmware', d.device?.firmware), kv('Via', d.source)),
    h('h4', {}, 'Stages'),
    stages(d),
    h('h4', {}, 'Timeline'),
    h('table', { class: 'timeline' }, h('tbody', {}, ...d.timeline.map((e, i) => h('tr', {},
      h('td', {}, clock(e.at)),
      h('td', {}, e.state ?? e.kind),
      h('td', { class: 'dim' }, e.actor ?? ''),
      h('td', { class: 'num dim' }, i > 0 ? delta(d.timeline[i - 1]!.at, e.at) : ''))))),
    d.deliveries.length ? h('h4', {}, 'Deliveries') : null,
    ...d.deliveries.map((r) => kv(`${r.target} (${r.route})`, `${r.attempts} attempt(s)${r.doneAt ? `, done ${clock(r.doneAt)}` : `, next ${clock(r.nextAttemptAt)}`}${r.lastError ? ` — ${r.lastError}` : ''}`)),
    audit ? h('h4', {}, 'Audit') : null,
    audit ? auditTable(audit) : null);
}

function actions(d: AlertDetail, oldOutcome?: string, oldNote?: string): HTMLElement {
  const outcome = h('select', { name: 'outcome', 'aria-label': 'Outcome' }, ...Object.entries(OUTCOMES).map(([v, label]) => h('option', { value: v }, label)));
  if (oldOutcome) outcome.value = oldOutcome;
  const note = h('textarea', { name: 'note', rows: 2, maxlength: 1000, placeholder: 'Note (required for "other")' });
  note.value = oldNote ?? '';
  return h('div', { class: 'actions' },
    d.ackedAt
      ? h('div', { class: 'taken-by' }, `✓ Acknowledged by ${d.ackedBy ?? '?'} at ${clock(d.ackedAt)}`)
      : h('button', { class: 'primary big', id: 'ack', onclick: () => void acknowledge(d.id) }, 'Acknowledge'),
    h('form', { class: 'resolve', onsubmit: (ev) => {
      ev.preventDefault();
      if (outcome.value === 'other' && !note.value.trim()) { toast('A note is required when the outcome is "other".'); note.focus(); return; }
      void resolve(d.id, outcome.value, note.value.trim());
    } }, outcome, note, h('button', { type: 'submit', id: 'resolve' }, 'Resolve')));
}

// ---------- tabs: alert, audit, devices ----------

function renderTabs(): void {
  const tabs: Array<[Tab, string]> = [['alert', 'Alert'], ['audit', 'Audit log'], ...(isAdmin() ? [['devices', 'Devices'] as [Tab, string]] : [])];
  replaceChildren($('#tabs'), ...tabs.map(([id, label]) => h('button', {
    class: `tab${state.tab === id ? ' active' : ''}`, 'data-tab': id, onclick: () => { state.tab = id; renderTabs(); renderTabBody(); },
  }, label)));
}

function renderTabBody(): void {
  const body = $('#tab-body');
  if (state.tab === 'alert') {
    if (!state.selected) replaceChildren(body, h('p', { class: 'empty' }, 'Select an alert to see its timeline, site and actions.'));
    else void loadDetail();
  } else if (state.tab === 'audit') {
    if (!canAct()) return replaceChildren(body, h('p', { class: 'empty' }, 'The audit log needs the dispatcher role.'));
    replaceChildren(body, h('p', { class: 'empty' }, 'Loading…'));
    api<{ items: AuditItem[] }>('GET', '/api/audit?limit=200').then((r) => {
      if (state.tab === 'audit') replaceChildren(body, h('div', { class: 'panel-head' }, h('h4', {}, 'Latest actions and reads of home details'),
        h('button', { class: 'small', onclick: renderTabBody }, 'Refresh')), auditTable(r.items));
    }, (err: unknown) => replaceChildren(body, h('p', { class: 'empty' }, `Cannot load the audit log: ${(err as Error).message}`)));
  } else {
    renderDevicesAdmin(body, state.devices, state.sites.keys(), () => void loadDevices());
  }
}

// ---------- health and latency panels ----------

function setHealth(health: Record<string, unknown>): void {
  state.health = health;
  const status = String(health.status ?? 'unknown');
  const gw = document.getElementById('gw');
  if (gw) { gw.textContent = `gateway ${status}`; gw.className = `pill ${status === 'ok' ? 'ok' : status === 'degraded' ? 'warn' : 'bad'}`; }
  const banner = document.getElementById('banner');
  if (banner) { banner.hidden = !health.warning; banner.textContent = String(health.warning ?? ''); }
  showHealth();
}

async function loadDevices(): Promise<void> {
  try {
    const { items } = await api<{ items: DeviceInfo[] }>('GET', '/api/devices');
    state.devices = new Map(items.map((d) => [d.id, d]));
    showHealth();
  } catch { /* shown as stale counts; the feed status says whether the gateway is reachable */ }
}

async function loadSites(): Promise<void> {
  try {
    const { items } = await api<{ items: Site[] }>('GET', '/api/sites');
    state.sites = new Map(items.map((s) => [s.id, s]));
    map?.drawSites(items);
    renderTroubles();
  } catch (err) {
    toast(`Cannot load the sites for the map: ${(err as Error).message}`);
  }
}

function showHealth(): void {
  const el = document.getElementById('health');
  if (el) renderHealth(el, state.devices.values(), state.troubles.values(), state.health);
}

// ---------- start ----------

session.onUnauthorized(() => logout('Your session has ended: log in again.'));
if (session.token()) startApp().catch((err: unknown) => showLogin(`The dashboard could not start: ${(err as Error).message}`));
else showLogin();
