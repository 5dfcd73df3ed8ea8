// The dashboard's page, bundle, map settings, district boundaries and the
// audit log over real HTTP; a bad boundary file is a log line and a 404,
// never a gateway that does not start.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../gateway/config.ts';
import { startTestGateway, type TestGateway } from './support/harness.ts';

let dir: string;
const gateways: TestGateway[] = [];

async function gatewayWithDistricts(content: string | null): Promise<TestGateway> {
  const file = join(dir, `districts-${gateways.length}.geojson`);
  if (content !== null) writeFileSync(file, content);
  const gw = await startTestGateway({ dashboard: { tileUrl: '', districtsFile: file } });
  gateways.push(gw);
  return gw;
}

const SQUARE = { type: 'Polygon', coordinates: [[[126.9, 37.5], [127.0, 37.5], [127.0, 37.6], [126.9, 37.6], [126.9, 37.5]]] };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'safehaven-dash-routes-'));
});

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  rmSync(dir, { recursive: true, force: true });
});

describe('dashboard routes', () => {
  it('serves the page with its CSP and the built bundle, and no file outside the bundle', async () => {
    const gw = await gatewayWithDistricts(null);
    const page = await fetch(gw.httpUrl);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/assets/main.js"></script>');
    expect(html).not.toMatch(/<script>(?!<\/script>)/);
    const js = await fetch(`${gw.httpUrl}/assets/main.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await fetch(`${gw.httpUrl}/assets/main.css`)).status).toBe(200);
    for (const name of ['..%2Fpackage.json', 'nope.js', 'main.ts']) {
      const res = await fetch(`${gw.httpUrl}/assets/${name}`);
      expect(res.status, name).toBe(404);
      expect(((await res.json()) as { error: string }).error).toMatch(/NOT_FOUND/);
    }
  });

  it('gives the map settings to a token holder only, and says there are no districts when the file is missing', async () => {
    const gw = await gatewayWithDistricts(null);
    expect((await gw.api('GET', '/api/dashboard/config', undefined, null)).status).toBe(401);
    const { json } = await gw.api('GET', '/api/dashboard/config');
    expect(json).toEqual({ tileUrl: null, tileAttribution: '© OpenStreetMap contributors', districts: false });
    const missing = await gw.api('GET', '/api/dashboard/districts');
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ error: 'NO_DISTRICTS' });
    expect(missing.json.message).toMatch(/districts-\d+\.geojson: ENOENT/);
    expect(gw.logs.find((l) => l.code === 'DISTRICTS_FILE_INVALID')).toBeDefined();
  });

  it('serves a valid boundary file and refuses an invalid one with the reason, the gateway running on', async () => {
    const good = await gatewayWithDistricts(JSON.stringify({ type: 'FeatureCollection', features: [{ type: 'Feature', properties: { name: 'A' }, geometry: SQUARE }] }));
    const { status, json } = await good.api('GET', '/api/dashboard/districts');
    expect(status).toBe(200);
    expect(json.features).toHaveLength(1);
    expect((await good.api('GET', '/api/dashboard/config')).json.districts).toBe(true);

    for (const [content, reason] of [
      ['{not json', /not valid JSON|Unexpected|Expected/],
      [JSON.stringify({ type: 'FeatureCollection', features: [{ type: 'Feature', properties: null, geometry: { type: 'Point', coordinates: [127, 37.5] } }] }), /geometry/],
      [JSON.stringify({ type: 'Feature' }), /type/],
    ] as const) {
      const bad = await gatewayWithDistricts(content);
      const res = await bad.api('GET', '/api/dashboard/districts');
      expect(res.status).toBe(404);
      expect(res.json.message).toMatch(reason);
      expect((await bad.api('GET', '/healthz', undefined, null)).status).toBe(200);
    }
  });

  it('shows the audit log to a dispatcher, not to a viewer, and names a bad query field', async () => {
    const gw = gateways[0]!;
    const viewer = (await gw.api('POST', '/api/tokens', { role: 'viewer', name: 'wall' })).json.token;
    expect((await gw.api('GET', '/api/audit', undefined, viewer)).status).toBe(403);
    const { json } = await gw.api('GET', '/api/audit?limit=5');
    expect(Array.isArray(json.items)).toBe(true);
    const bad = await gw.api('GET', '/api/audit?limit=0');
    expect(bad.status).toBe(400);
    expect(bad.json.field).toBe('limit');
  });
});

describe('dashboard config', () => {
  it('takes the tile URL and the boundary file from the environment, "off" for no base map, and refuses a URL without {z}', () => {
    expect(loadConfig({}).dashboard.tileUrl).toBe('https://tile.openstreetmap.org/{z}/{x}/{y}.png');
    expect(loadConfig({ SAFEHAVEN_DASHBOARD_TILE_URL: 'off' }).dashboard.tileUrl).toBe('');
    expect(loadConfig({ SAFEHAVEN_DASHBOARD_DISTRICTS: '/srv/seoul.geojson' }).dashboard.districtsFile).toBe('/srv/seoul.geojson');
    expect(() => loadConfig({ SAFEHAVEN_DASHBOARD_TILE_URL: 'https://tiles.example/map.png' })).toThrow(/SAFEHAVEN_DASHBOARD_TILE_URL/);
  });
});
