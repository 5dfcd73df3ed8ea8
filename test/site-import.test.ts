// Bulk import of sites: the CSV/JSON grammar as pure functions, then the
// endpoint and the CLI against a real gateway.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsvRecords, parseSitesCsv, parseSitesJson, SITE_FIELDS } from '../protocol/index.ts';
import { ADMIN_TOKEN, connectDevice, startTestGateway, type TestGateway } from './support/harness.ts';

const HEADER = SITE_FIELDS.join(',');
const row = (id: string, extra: Partial<Record<(typeof SITE_FIELDS)[number], string>> = {}) => {
  const site = { id, kind: 'store', name: `CU ${id}`, address: '1 Teheran-ro, Gangnam-gu, Seoul', phone: '02-555-0134',
    lat: '37.5', lon: '127.03', district: 'Gangnam-gu', policeStation: 'Gangnam Police Station', ...extra };
  return SITE_FIELDS.map((f) => csvField(site[f])).join(',');
};
const csvField = (v: string) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

describe('CSV records', () => {
  it('splits quoted fields with commas, doubled quotes and line breaks, over CRLF or LF, with a BOM', () => {
    const text = '\uFEFFa,b\r\n"x, y","say ""hi"""\n"two\nlines",z\n\n';
    expect(parseCsvRecords(text)).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['x, y', 'say "hi"'] },
      { line: 3, fields: ['two\nlines', 'z'] },
    ]);
  });

  it('reports an unclosed quote with the line it opened on', () => {
    expect(parseCsvRecords('a\n"open,b\nc')).toEqual({ line: 2, message: 'a quoted field is not closed' });
    expect(parseCsvRecords('a\n"x"y,b')).toEqual({ line: 2, message: 'text after a closing quote: quote the whole field' });
    // Line numbers after a quoted field spanning lines (CRLF, LF, a lone CR) stay right.
    expect(parseCsvRecords('"1\r\n2\n3\r4"\nnext')).toEqual([{ line: 1, fields: ['1\r\n2\n3\r4'] }, { line: 5, fields: ['next'] }]);
  });
});

describe('parseSitesCsv', () => {
  it('reads sites in any column order, with lat and lon as numbers', () => {
    const reordered = [...SITE_FIELDS].reverse();
    const values = { id: 'store-9001', kind: 'store', name: 'CU "Gangnam", 2nd', address: '1 Teheran-ro, Gangnam-gu, Seoul', phone: '02-555-0134',
      lat: '37.5', lon: '127.03', district: 'Gangnam-gu', policeStation: 'Gangnam Police Station' };
    const parsed = parseSitesCsv(`${reordered.join(',')}\n${reordered.map((f) => csvField(values[f])).join(',')}\n`);
    expect(parsed).toMatchObject({ ok: true, sites: [{ id: 'store-9001', name: 'CU "Gangnam", 2nd', lat: 37.5, lon: 127.03, kind: 'store' }] });
  });

  it('names every bad row and field, and duplicate ids, and imports nothing', () => {
    const parsed = parseSitesCsv([HEADER, row('store-9001'), row('store-9002', { district: 'Atlantis-gu' }), row('store-9003', { lat: 'north' }), row('store-9001')].join('\n'));
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.problems.map((p) => [p.row, p.field])).toEqual([[3, 'district'], [4, 'lat'], [5, 'id']]);
  });

  it('refuses a header with missing or unknown columns, and rows of the wrong width', () => {
    expect(parseSitesCsv('id,kind,name\n')).toMatchObject({ ok: false, problems: [{ row: 1, message: expect.stringMatching(/missing address/) }] });
    expect(parseSitesCsv(`${HEADER},owner\n`)).toMatchObject({ ok: false, problems: [{ row: 1, message: expect.stringMatching(/unknown owner/) }] });
    expect(parseSitesCsv(`${HEADER}\n${row('store-9001')},extra\n`)).toMatchObject({ ok: false, problems: [{ row: 2, message: '10 fields, the header has 9' }] });
    expect(parseSitesCsv('')).toMatchObject({ ok: false });
    expect(parseSitesCsv(`${HEADER},id\n`)).toMatchObject({ ok: false, problems: [{ row: 1, field: 'id', message: expect.stringMatching(/twice/) }] });
    expect(parseSitesCsv(`${HEADER}\n${row('store-9001', { lat: '0x25' })}\n`)).toMatchObject({ ok: false, problems: [{ row: 2, field: 'lat' }] });
  });
});

describe('parseSitesJson', () => {
  it('takes an array or {items}, and refuses anything else', () => {
    const site = { id: 'home-9001', kind: 'home', name: 'Home patrol household #9001', address: '2 Mapo-daero, Mapo-gu, Seoul', phone: '010-2222-3333',
      lat: 37.55, lon: 126.95, district: 'Mapo-gu', policeStation: 'Mapo Police Station' };
    expect(parseSitesJson([site])).toMatchObject({ ok: true, sites: [site] });
    expect(parseSitesJson({ items: [site] })).toMatchObject({ ok: true });
    expect(parseSitesJson({ items: [{ ...site, phone: 'call me' }] })).toMatchObject({ ok: false, problems: [{ row: 1, field: 'phone' }] });
    expect(parseSitesJson('sites')).toMatchObject({ ok: false });
  });
});

describe('import through the API and the CLI', () => {
  let gw: TestGateway;
  let dir: string;
  const cli = (args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'gateway/cli/safehaven.ts', ...args, '--url', gw.httpUrl, '--token', ADMIN_TOKEN]);

  beforeAll(async () => {
    gw = await startTestGateway({ demo: { enabled: false } });
    dir = mkdtempSync(join(tmpdir(), 'safehaven-import-'));
  });
  afterAll(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const csv = (text: string) => fetch(`${gw.httpUrl}/api/sites/import`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'text/csv' }, body: text });

  it('imports a CSV file all at once, and refuses a file with a bad row without importing any of it', async () => {
    const bad = await csv([HEADER, row('store-0101'), row('store-0102', { phone: 'none' })].join('\n'));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'INVALID_IMPORT', field: 'phone', problems: [{ row: 3, field: 'phone' }] });
    expect((await gw.api('GET', '/api/sites')).json.total).toBe(0);

    const good = await csv([HEADER, row('store-0101'), row('store-0102')].join('\r\n'));
    expect(good.status).toBe(201);
    expect(await good.json()).toEqual({ added: 2, skipped: [] });
    expect((await gw.api('GET', '/api/sites')).json.items.map((s: { id: string }) => s.id).sort()).toEqual(['store-0101', 'store-0102']);
  });

  it('refuses existing ids unless told to skip them, and needs an admin', async () => {
    expect((await csv([HEADER, row('store-0101'), row('store-0103')].join('\n'))).status).toBe(409);
    const viewer = (await gw.api('POST', '/api/tokens', { role: 'viewer', name: 'v' })).json.token;
    expect((await gw.api('POST', '/api/sites/import', [], viewer)).status).toBe(403);
    const skip = await fetch(`${gw.httpUrl}/api/sites/import?existing=skip`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'text/csv' }, body: [HEADER, row('store-0101'), row('store-0103')].join('\n') });
    expect(await skip.json()).toEqual({ added: 1, skipped: ['store-0101'] });
  });

  it('`safehaven import` and `safehaven provision` work against the running gateway, and the device can log in', async () => {
    const file = join(dir, 'sites.csv');
    writeFileSync(file, [HEADER, row('store-0201')].join('\n'));
    const imported = await cli(['import', file]);
    expect(imported.stderr).toMatch(/imported 1 sites/);
    const { stdout } = await cli(['provision', '--site', 'store-0201', '--type', 'panic-button']);
    const device = JSON.parse(stdout) as { id: string; secret: string };
    const client = await connectDevice(gw.mqttUrl, device.id, device.secret);
    await client.endAsync();

    writeFileSync(file, [HEADER, row('store-0202', { kind: 'castle' })].join('\n'));
    const err = await cli(['import', file]).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/row 2 kind/);
  });
});
