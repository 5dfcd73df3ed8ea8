// The dashboard end to end in real headless Chromium against a real gateway:
// presses from real MQTT clients over TCP, actions through the page, results
// checked through the API. Troubles come from the gateway's real
// supervision: the test kills a device's connection without a goodbye.
import type { MqttClient } from 'mqtt';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deriveAlertId, topics } from '../protocol/index.ts';
import { artifactPath, launchBrowser, type Browser } from './support/browser.ts';
import { ADMIN_TOKEN, connectDevice, publish, startTestGateway, waitFor, type TestGateway } from './support/harness.ts';

const UI_TIMEOUT = 15_000;

let gw: TestGateway;
let browser: Browser;
let dir: string;
const devices: MqttClient[] = [];
const tokens = { dispatcher: '', viewer: '' };
const pageErrors: string[] = [];

async function device(id: string): Promise<MqttClient> {
  const client = await connectDevice(gw.mqttUrl, id, gw.deviceSecret(id));
  devices.push(client);
  return client;
}

async function press(id: string, seq: number, type = 'panic'): Promise<string> {
  const client = devices.find((d) => d.options.clientId === id) ?? (await device(id));
  await publish(client, topics.event(id), JSON.stringify({ seq, ts: Date.now(), type, battery: 87, rssi: -58 }));
  return deriveAlertId(id, seq);
}

async function login(token: string): Promise<Page> {
  const page = await browser.context.newPage();
  page.setDefaultTimeout(UI_TIMEOUT);
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(gw.httpUrl);
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('#conn.ok');
  return page;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'safehaven-dash-'));
  const districts = join(dir, 'districts.geojson');
  writeFileSync(districts, JSON.stringify({
    type: 'FeatureCollection',
    features: [{ type: 'Feature', properties: { name_eng: 'Jongno-gu' }, geometry: { type: 'Polygon', coordinates: [[[126.95, 37.57], [127.02, 37.57], [127.02, 37.6], [126.95, 37.6], [126.95, 37.57]]] } }],
  }));
  gw = await startTestGateway({ dashboard: { tileUrl: '', districtsFile: districts }, supervision: { reconnectGraceSec: 0 } });
  tokens.dispatcher = (await gw.api('POST', '/api/tokens', { role: 'dispatcher', name: 'dispatcher-kim' })).json.token;
  tokens.viewer = (await gw.api('POST', '/api/tokens', { role: 'viewer', name: 'wall-screen' })).json.token;
  browser = await launchBrowser();
}, 90_000);

afterEach(() => {
  expect(pageErrors).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  await Promise.all(devices.splice(0).map((d) => d.endAsync(true)));
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('dispatcher dashboard in Chromium', () => {
  it('refuses a bad token on the login form', async () => {
    const page = await browser.context.newPage();
    page.setDefaultTimeout(UI_TIMEOUT);
    await page.goto(gw.httpUrl);
    await page.fill('input[name=token]', 'not-a-real-token');
    await page.click('button[type=submit]');
    await page.locator('.login-error', { hasText: 'not valid' }).waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    await page.close();
  });

  it('shows a press at once, acknowledges and resolves it, lists a dead device in troubles, and comes back whole after a reload', async () => {
    const page = await login(tokens.dispatcher);
    const store = gw.gateway['registry']!.site('store-0001')!;

    await device('pb-store-0001');
    const pressedAt = Date.now();
    const id = await press('pb-store-0001', 1);
    const card = page.locator(`[data-alert-id="${id}"]`);
    await card.waitFor();
    // A figure, not a bound: the issue asks for "within a second"; this machine is shared.
    console.log(`dashboard: press → card on screen ${Date.now() - pressedAt} ms (including playwright's polling)`);
    const text = await card.textContent();
    for (const part of [store.name, store.address, store.phone, store.district, store.policeStation, 'PANIC']) expect(text).toContain(part);
    // Ringing until a dispatcher takes it; the new alert is selected and its detail open.
    await page.waitForFunction("document.body.classList.contains('alarming')");
    await page.locator(`[data-detail-id="${id}"]`).waitFor();
    await page.locator('.stages').waitFor();

    await page.click('#ack');
    const acked = await waitFor(async () => {
      const { json } = await gw.api('GET', `/api/alerts/${id}`);
      return json.ackedBy === 'dispatcher-kim' && json;
    }, 'the acknowledgement in the API');
    expect(acked.ackedAt).not.toBeNull();
    await page.waitForFunction("!document.body.classList.contains('alarming')");
    await page.locator('.taken-by', { hasText: 'dispatcher-kim' }).first().waitFor();

    await page.selectOption('select[name=outcome]', 'false-alarm');
    await page.click('#resolve');
    await card.waitFor({ state: 'detached' });
    const { json: resolved } = await gw.api('GET', `/api/alerts/${id}`);
    expect(resolved).toMatchObject({ state: 'resolved', outcome: 'false-alarm', resolvedBy: 'dispatcher-kim' });
    const { json: audit } = await gw.api('GET', `/api/audit?target=${id}`);
    expect(audit.items.map((e: { actor: string; action: string }) => `${e.actor} ${e.action}`)).toEqual(['dispatcher-kim alert.ack', 'dispatcher-kim alert.resolve']);
    await page.click('[data-tab=audit]');
    await page.locator('.audit td', { hasText: 'alert.resolve' }).first().waitFor();

    // A device dies without a goodbye; supervision raises the trouble (no reconnect grace in this test).
    const doomed = await device('pb-store-0002');
    doomed.stream.destroy();
    await page.locator('[data-device-id="pb-store-0002"]', { hasText: 'Device offline' }).waitFor();

    const queue = () => page.locator('#queue [data-alert-id]').evaluateAll((els) => els.map((e) => e.getAttribute('data-alert-id')));
    const panic = await press('pb-store-0003', 1);
    const tamper = await press('pb-store-0004', 1, 'tamper');
    for (const a of [panic, tamper]) await page.locator(`[data-alert-id="${a}"]`).waitFor();
    // Severity first: the panic above the tamper.
    expect(await queue()).toEqual([panic, tamper]);
    // A new panic pops to the top, flashing and selected.
    const newest = await press('pb-store-0001', 2);
    await page.locator(`[data-alert-id="${newest}"].flash`).waitFor();
    await page.locator(`[data-detail-id="${newest}"]`).waitFor();
    const open = [newest, panic, tamper];
    expect(await queue()).toEqual(open);

    await page.reload();
    await page.waitForSelector('#conn.ok');
    for (const a of open) await page.locator(`[data-alert-id="${a}"]`).waitFor();
    expect(await queue()).toEqual(open);
    await page.locator('[data-device-id="pb-store-0002"]').waitFor();
    expect(await page.locator('input[name=token]').count()).toBe(0);
    await page.locator('.alert-pin').nth(2).waitFor();
    expect(await page.locator('.alert-pin').count()).toBe(3);
    await page.locator('#latency table').waitFor();
    await page.locator('#health [data-type="panic-button"]').waitFor();
    await page.screenshot({ path: artifactPath('dashboard-dispatcher.png') });

    // Keys: J moves to the next alert, A acknowledges it; taken, it stays below the untaken newer panic.
    await page.locator(`#queue [data-alert-id="${newest}"].selected`).waitFor();
    await page.keyboard.press('j');
    await page.locator(`#queue [data-alert-id="${panic}"].selected`).waitFor();
    // A acts only on an alert whose detail has been on screen for a second (a new panic may just have taken the selection).
    await page.locator(`[data-detail-id="${panic}"]`).waitFor();
    await page.waitForTimeout(1100);
    await page.keyboard.press('a');
    await waitFor(async () => (await gw.api('GET', `/api/alerts/${panic}`)).json.ackedBy === 'dispatcher-kim', 'the acknowledgement by key');
    await page.locator(`#queue [data-alert-id="${panic}"].taken`).waitFor();
    expect(await queue()).toEqual([newest, panic, tamper]);
    await page.close();
  }, 120_000);

  it('shows a viewer a home alert without its address or phone, and no actions', async () => {
    const page = await login(tokens.viewer);
    const home = gw.gateway['registry']!.site('home-0001')!;
    const id = await press('ms-home-0001', 1, 'intrusion');
    const card = page.locator(`[data-alert-id="${id}"]`);
    await card.waitFor();
    const text = (await card.textContent())!;
    expect(text).toContain(`Home in ${home.district}`);
    expect(text).not.toContain(home.address);
    expect(text).not.toContain(home.phone);
    expect(text).not.toContain(home.name);
    expect(await page.locator('button.ack, #ack, #resolve').count()).toBe(0);
    expect(await page.locator('[data-tab=devices]').count()).toBe(0);
    await page.screenshot({ path: artifactPath('dashboard-viewer.png') });
    await page.close();
  }, 60_000);

  it('says loudly when the connection to the gateway is lost', async () => {
    const other = await startTestGateway();
    let stopped = false;
    try {
      const page = await browser.context.newPage();
      page.setDefaultTimeout(UI_TIMEOUT);
      await page.goto(other.httpUrl);
      await page.fill('input[name=token]', ADMIN_TOKEN);
      await page.click('button[type=submit]');
      await page.waitForSelector('#conn.ok');
      expect(await page.locator('#feed-lost').isHidden()).toBe(true);
      await other.stop();
      stopped = true;
      await page.locator('#feed-lost', { hasText: 'CONNECTION TO THE GATEWAY LOST' }).waitFor();
      await page.waitForSelector('#conn.bad');
      await page.close();
    } finally {
      if (!stopped) await other.stop();
    }
  }, 60_000);

  it('lets an admin provision a device from the Devices tab', async () => {
    const page = await login(ADMIN_TOKEN);
    await page.click('[data-tab=devices]');
    await page.fill('input[name=siteId]', 'store-0001');
    await page.selectOption('select[name=type]', 'panic-button');
    await page.click('.admin-form button[type=submit]');
    const secret = page.locator('.secret code').first();
    await secret.waitFor();
    const deviceId = (await secret.textContent())!;
    const { status, json } = await gw.api('GET', `/api/devices/${deviceId}`);
    expect(status).toBe(200);
    expect(json).toMatchObject({ siteId: 'store-0001', type: 'panic-button' });

    // Revoking needs DELETE /api/devices/:id (issue 6): either it works, or the page says the gateway cannot yet.
    await page.fill('input[name=deviceId]', deviceId);
    await page.click('.admin-form button.danger');
    const outcome = (await page.locator('.admin-out', { hasText: /revoked\.|cannot revoke devices yet/ }).textContent())!;
    const { json: after } = await gw.api('GET', `/api/devices/${deviceId}`);
    expect(after.revoked).toBe(outcome.includes('revoked.'));
    await page.close();
  }, 60_000);
});
