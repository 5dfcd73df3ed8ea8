import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildCapAlert, capAlertReference, capDateTime, CAP_EVENT_PROFILE, CAP_NAMESPACE, CAP_HEADLINE_MAX, CapError,
  type CapAlertInput, type CapMsgType,
} from '../protocol/cap.ts';
import { deriveAlertId } from '../protocol/alert-id.ts';
import { EVENT_TYPES, type EventType, type Site, type SiteKind } from '../protocol/schemas.ts';

// The OASIS schema, validated by libxml2: a hand-written check would share
// this module's misreadings of the spec.
const XSD = join(import.meta.dirname, 'fixtures', 'cap-v1.2.xsd');
const INSTALL_HINT = 'xmllint is missing: run `bash scripts/install-system-deps.sh` as root (Debian package libxml2-utils)';
const workDir = mkdtempSync(join(tmpdir(), 'safehaven-cap-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

let fileCount = 0;
function xmllint(xml: string, args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const file = join(workDir, `cap-${++fileCount}.xml`);
  writeFileSync(file, xml);
  const run = spawnSync('xmllint', [...args, file], { encoding: 'utf8' });
  if ((run.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new Error(INSTALL_HINT);
  if (run.error) throw run.error;
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function expectValid(xml: string): void {
  const run = xmllint(xml, ['--noout', '--schema', XSD]);
  expect(run.stderr, xml).toMatch(/validates\s*$/);
  expect(run.status).toBe(0);
}

/** The text of the first element with this local name, as a real XML parser decodes it. */
function xpathText(xml: string, path: string): string {
  const steps = path.split('/').map((name) => `*[local-name()='${name}']`).join('/');
  const run = xmllint(xml, ['--xpath', `string(/${steps})`]);
  expect(run.status, run.stderr).toBe(0);
  return run.stdout.replace(/\n$/, ''); // xmllint ends its answer with a newline of its own
}

/** The text between the first <name> and </name>, still escaped: for checks that need no parser. */
function rawText(xml: string, name: string): string {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  if (!match) throw new Error(`no <${name}> in ${xml}`);
  return match[1]!;
}

const SITES: Record<SiteKind, Site> = {
  store: {
    id: 'store-0001', kind: 'store', name: 'CU Daehangno Branch', address: '184 Saemunan-ro, Jongno-gu, Seoul',
    phone: '02-9747-4257', lat: 37.58213, lon: 127.00185, district: 'Jongno-gu', policeStation: 'Hyehwa Police Station',
  },
  home: {
    id: 'home-0042', kind: 'home', name: 'Household 42', address: '12 Mapo-daero 4-gil, Seoul',
    phone: '010-5555-0142', lat: 37.5447, lon: 126.9516, district: 'Mapo-gu', policeStation: 'Mapo Police Station',
  },
};

const PRESSED = Date.parse('2026-11-22T05:07:45.589Z');
function capInput(overrides: Partial<CapAlertInput> = {}): CapAlertInput {
  const msgType = overrides.msgType ?? 'Alert';
  const base: CapAlertInput = {
    alertId: deriveAlertId('pb-store-0001', 42), type: 'panic', site: SITES.store, deviceId: 'pb-store-0001',
    pressedAt: PRESSED, receivedAt: PRESSED + 2, attempt: 1, priority: 100, clockSkew: false, sentAt: PRESSED + 23,
    msgType,
  };
  const input = { ...base, ...overrides };
  if (msgType !== 'Alert' && !overrides.references) input.references = [capAlertReference(input)];
  return input;
}

describe('CAP 1.2 documents validate against the OASIS schema', () => {
  it('has xmllint to validate with', () => {
    const run = spawnSync('xmllint', ['--version'], { encoding: 'utf8' });
    if (run.error) throw new Error(INSTALL_HINT);
    expect(run.status).toBe(0);
  });

  const cases = EVENT_TYPES.flatMap((type) => (['Alert', 'Update', 'Cancel'] as const).flatMap((msgType) =>
    (['store', 'home'] as const).map((kind) => [type, msgType, kind] as [EventType, CapMsgType, SiteKind])));

  it.each(cases)('%s %s at a %s', (type, msgType, kind) => {
    const input = capInput({ type, msgType, site: SITES[kind], sentAt: PRESSED + 60_000 });
    const xml = buildCapAlert(input);
    expectValid(xml);

    if (msgType === 'Alert') expect(rawText(xml, 'identifier')).toBe(input.alertId);
    else expect(rawText(xml, 'identifier')).toBe(`${input.alertId}-${msgType.toLowerCase()}-20261122T050845Z`);
    expect(rawText(xml, 'incidents')).toBe(input.alertId);
    expect(rawText(xml, 'sent')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$/);
    const { lat, lon } = SITES[kind];
    expect(rawText(xml, 'circle')).toBe(`${lat},${lon} 0.1`);
    expect(rawText(xml, 'circle')).toMatch(/^-?\d+(\.\d+)?,-?\d+(\.\d+)? \d+(\.\d+)?$/);
    expect(rawText(xml, 'msgType')).toBe(msgType);
  });

  it('escapes markup characters and drops what XML 1.0 cannot carry, keeping Korean text', () => {
    const site: Site = {
      ...SITES.store,
      name: `Tom & Jerry's <"Mart"> ]]> 세븐일레븐 종로점\u0001\u0008\u000B\uFFFE\uD800 🚨`,
      address: `1 <Yulgok-ro> & "Gate" 'B',\r\n종로구\u001F Seoul`,
    };
    const xml = buildCapAlert(capInput({ site }));
    expectValid(xml);

    expect(xml).not.toMatch(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE]/);
    expect(xml).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    expect(xml).not.toContain(']]>');
    expect(xml).toContain('Tom &amp; Jerry&apos;s &lt;&quot;Mart&quot;&gt; ]]&gt; 세븐일레븐 종로점');
    expect(xml).toContain('1 &lt;Yulgok-ro&gt; &amp; &quot;Gate&quot; &apos;B&apos;,&#13;\n종로구');

    // What a parser reads back is the input minus the illegal characters, CR included.
    const cleanName = `Tom & Jerry's <"Mart"> ]]> 세븐일레븐 종로점 🚨`;
    const cleanAddress = `1 <Yulgok-ro> & "Gate" 'B',\r\n종로구 Seoul`;
    expect(xpathText(xml, 'alert/info/headline')).toBe(`Panic button at ${cleanName}, Jongno-gu`);
    expect(xpathText(xml, 'alert/info/description')).toContain(`Site: ${cleanName} (store-0001)\nAddress: ${cleanAddress}\n`);
    expect(xpathText(xml, 'alert/info/area/areaDesc')).toBe(`${cleanAddress}, Jongno-gu`);
  });

  it('rejects what CAP forbids, so the checks above are not vacuous', () => {
    const xml = buildCapAlert(capInput());
    const sent = rawText(xml, 'sent');
    for (const bad of [
      xml.replace(sent, '2026-11-22T05:07:45Z'),
      xml.replace(sent, '2026-11-22T05:07:45.591-00:00'),
      xml.replace('<severity>Extreme</severity>', '<severity>Critical</severity>'),
      xml.replace('<scope>Restricted</scope>', ''),
      xml.replace(`xmlns="${CAP_NAMESPACE}"`, 'xmlns="urn:oasis:names:tc:emergency:cap:1.1"'),
    ]) {
      expect(xmllint(bad, ['--noout', '--schema', XSD]).status).not.toBe(0);
    }
  });
});

describe('CAP mapping of SafeHaven alerts', () => {
  // Written out, not derived from CAP_EVENT_PROFILE: changing how the police
  // triage an event type should take a deliberate edit here and in README.md.
  it.each([
    ['panic', 'Actual', 'Immediate', 'Extreme', 'Observed', 'Execute', ['Security', 'Safety']],
    ['intrusion', 'Actual', 'Immediate', 'Severe', 'Likely', 'Execute', ['Security']],
    ['door', 'Actual', 'Immediate', 'Moderate', 'Possible', 'Assess', ['Security']],
    ['tamper', 'Actual', 'Expected', 'Moderate', 'Possible', 'Assess', ['Security']],
    ['test', 'Test', 'Unknown', 'Minor', 'Observed', 'None', ['Security']],
  ] as const)('maps %s to status %s, urgency %s, severity %s, certainty %s, response %s',
    (type, status, urgency, severity, certainty, responseType, categories) => {
      const xml = buildCapAlert(capInput({ type }));
      expect(rawText(xml, 'status')).toBe(status);
      expect(rawText(xml, 'urgency')).toBe(urgency);
      expect(rawText(xml, 'severity')).toBe(severity);
      expect(rawText(xml, 'certainty')).toBe(certainty);
      expect(rawText(xml, 'responseType')).toBe(responseType);
      expect([...xml.matchAll(/<category>([^<]*)<\/category>/g)].map((m) => m[1])).toEqual(categories);
      expect(rawText(xml, 'event')).toBe(`${CAP_EVENT_PROFILE[type].label} – safety-haven store`);
    });

  it('keeps a test Test and tells everyone to stand down on a Cancel', () => {
    const xml = buildCapAlert(capInput({ type: 'test', msgType: 'Cancel' }));
    expect(rawText(xml, 'status')).toBe('Test');
    expect(rawText(xml, 'responseType')).toBe('AllClear');
    expect(rawText(xml, 'headline')).toBe('Cancel: Test press at CU Daehangno Branch, Jongno-gu');
  });

  it('writes sent in CAP form: whole seconds, UTC as -00:00, the receive time for an Alert', () => {
    expect(capDateTime(Date.parse('2026-11-22T05:07:45.999Z'))).toBe('2026-11-22T05:07:45-00:00');
    const alert = buildCapAlert(capInput());
    expect(rawText(alert, 'sent')).toBe('2026-11-22T05:07:45-00:00');
    expect(alert).not.toMatch(/\d\d:\d\d:\d\d(\.\d+)?Z/);

    // Every attempt is the same CAP message; only the attempt parameter moves.
    const retry = buildCapAlert(capInput({ attempt: 7, sentAt: PRESSED + 90_000 }));
    expect(rawText(retry, 'sent')).toBe(rawText(alert, 'sent'));
    expect(retry.replace('<value>7</value>', '<value>1</value>')).toBe(alert);

    const cancel = buildCapAlert(capInput({ msgType: 'Cancel', sentAt: Date.parse('2026-11-22T05:20:00.500Z') }));
    expect(rawText(cancel, 'sent')).toBe('2026-11-22T05:20:00-00:00');
  });

  it('lets a Cancel reference the Alert by the triplet the Alert document carries', () => {
    const alertInput = capInput({ sender: 'seoul-safehaven.example' });
    const alert = buildCapAlert(alertInput);
    const cancel = buildCapAlert({
      ...alertInput, msgType: 'Cancel', sentAt: PRESSED + 600_000, references: [capAlertReference(alertInput)],
    });
    expectValid(cancel);
    expect(rawText(cancel, 'references')).toBe(
      `${rawText(alert, 'sender')},${rawText(alert, 'identifier')},${rawText(alert, 'sent')}`);
    expect(rawText(cancel, 'identifier')).not.toBe(rawText(alert, 'identifier'));
    expect(rawText(cancel, 'incidents')).toBe(rawText(alert, 'incidents'));
    // A retried Cancel (same decision time) is the same message.
    const retried = buildCapAlert({ ...alertInput, msgType: 'Cancel', sentAt: PRESSED + 600_000, attempt: 2,
      references: [capAlertReference(alertInput)] });
    expect(rawText(retried, 'identifier')).toBe(rawText(cancel, 'identifier'));
    expect(rawText(retried, 'sent')).toBe(rawText(cancel, 'sent'));
  });

  it('space-separates several references', () => {
    const refs = [
      { sender: 'a@x', identifier: 'al-1', sent: Date.UTC(2026, 0, 1) },
      { sender: 'b@y', identifier: 'al-1-update-20260101T000100Z', sent: Date.UTC(2026, 0, 1, 0, 1) },
    ];
    const xml = buildCapAlert(capInput({ msgType: 'Update', references: refs }));
    expectValid(xml);
    expect(rawText(xml, 'references'))
      .toBe('a@x,al-1,2026-01-01T00:00:00-00:00 b@y,al-1-update-20260101T000100Z,2026-01-01T00:01:00-00:00');
  });

  it('is Restricted to police dispatch by default, Private to the given addresses otherwise', () => {
    const restricted = buildCapAlert(capInput());
    expect(rawText(restricted, 'scope')).toBe('Restricted');
    expect(rawText(restricted, 'restriction')).toContain('Hyehwa Police Station');
    expect(restricted).not.toContain('<addresses>');

    const xml = buildCapAlert(capInput({ addresses: ['hyehwa-dispatch', 'Seoul Metropolitan Police HQ'] }));
    expectValid(xml);
    expect(rawText(xml, 'scope')).toBe('Private');
    expect(rawText(xml, 'addresses')).toBe('hyehwa-dispatch &quot;Seoul Metropolitan Police HQ&quot;');
    expect(xml).not.toContain('<restriction>');
  });

  it('carries the site, device and times as description, contact and parameters', () => {
    const xml = buildCapAlert(capInput({ site: SITES.home, type: 'intrusion', clockSkew: true, attempt: 3 }));
    const description = xpathText(xml, 'alert/info/description');
    for (const part of ['Household 42 (home-0042)', '12 Mapo-daero 4-gil, Seoul', '010-5555-0142', 'Mapo-gu',
      'Mapo Police Station', 'pb-store-0001', 'device clock was off', '37.5447, 126.9516']) {
      expect(description).toContain(part);
    }
    expect(rawText(xml, 'contact')).toBe('010-5555-0142');
    expect(rawText(xml, 'event')).toBe('Intrusion alarm – home-patrol household');
    expect(rawText(xml, 'areaDesc')).toBe('12 Mapo-daero 4-gil, Seoul, Mapo-gu');
    const params = Object.fromEntries([...xml.matchAll(
      /<parameter>\s*<valueName>([^<]*)<\/valueName>\s*<value>([^<]*)<\/value>\s*<\/parameter>/g)].map((m) => [m[1], m[2]]));
    expect(params).toEqual({
      alertId: deriveAlertId('pb-store-0001', 42), deviceId: 'pb-store-0001', siteId: 'home-0042', siteKind: 'home',
      district: 'Mapo-gu', policeStation: 'Mapo Police Station', pressedAt: '2026-11-22T05:07:45-00:00',
      receivedAt: '2026-11-22T05:07:45-00:00', clockSkew: 'true', attempt: '3',
    });
  });

  it('cuts a long headline at a character boundary', () => {
    const xml = buildCapAlert(capInput({ site: { ...SITES.store, name: '안전한편의점🚨'.repeat(25) } }));
    expectValid(xml);
    const headline = xpathText(xml, 'alert/info/headline');
    expect(Array.from(headline)).toHaveLength(CAP_HEADLINE_MAX);
    expect(headline.endsWith('…')).toBe(true);
    expect(headline).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });

  it('is what protocol/README.md shows', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', 'protocol', 'README.md'), 'utf8');
    const example = /## CAP 1\.2 format[\s\S]*?```xml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toBe(buildCapAlert({
      alertId: 'al-5c6f8ecce6f5022cba4e', type: 'panic', site: SITES.store, deviceId: 'pb-store-0001',
      pressedAt: Date.parse('2026-11-22T05:07:45.589Z'), receivedAt: Date.parse('2026-11-22T05:07:45.591Z'),
      attempt: 1, priority: 100, clockSkew: false, sentAt: Date.parse('2026-11-22T05:07:45.612Z'), msgType: 'Alert',
    }));
  });

  it('never writes a coordinate in exponent form', () => {
    const xml = buildCapAlert(capInput({ site: { ...SITES.store, lat: 1e-7, lon: -0.0000042 } }));
    expect(rawText(xml, 'circle')).toBe('0,-0.000004 0.1');
  });
});

describe('CAP input errors', () => {
  const code = (fn: () => unknown): string | undefined => {
    try { fn(); } catch (error) { if (error instanceof CapError) return error.code; throw error; }
    return undefined;
  };

  it.each(['Update', 'Cancel'] as const)('refuses an %s that references nothing', (msgType) => {
    expect(code(() => buildCapAlert({ ...capInput(), msgType, references: [] }))).toBe('CAP_REFERENCES_REQUIRED');
  });

  it.each([
    ['a sender with a space', { sender: 'safe haven' }],
    ['a sender with a comma', { sender: 'safehaven,gw' }],
    ['an empty sender', { sender: '' }],
    ['a reference with an ampersand', { msgType: 'Cancel', references: [{ sender: 'a&b', identifier: 'x', sent: 0 }] }],
  ] as const)('refuses %s', (_label, overrides) => {
    expect(code(() => buildCapAlert(capInput(overrides as Partial<CapAlertInput>)))).toBe('CAP_BAD_IDENTIFIER');
  });

  it('refuses an address that cannot be quoted', () => {
    expect(code(() => buildCapAlert(capInput({ addresses: ['say "hi"'] })))).toBe('CAP_BAD_ADDRESS');
    expect(code(() => buildCapAlert(capInput({ addresses: [''] })))).toBe('CAP_BAD_ADDRESS');
  });
});
