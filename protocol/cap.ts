// The alert as an OASIS Common Alerting Protocol 1.2 document, for police and
// civil-protection systems that take CAP rather than our JSON webhook. Pure:
// the caller decides where it goes. The format and the mapping of event types
// onto CAP's vocabulary are documented in README.md ("CAP 1.2 format").
import type { PoliceBodyInput } from './police.ts';
import type { EventType, SiteKind } from './schemas.ts';

export const CAP_NAMESPACE = 'urn:oasis:names:tc:emergency:cap:1.2';
/** Registered with IANA for CAP documents; receivers that sniff XML accept it too. */
export const CAP_CONTENT_TYPE = 'application/cap+xml';
export const DEFAULT_CAP_SENDER = 'safehaven@gateway';
export const CAP_SENDER_NAME = 'SafeHaven alarm gateway';
/**
 * Radius of the area circle around the site's coordinates: a site's position
 * is its geocoded street address, so the person is within about a building's
 * length of it, not at the point.
 */
export const CAP_AREA_RADIUS_KM = 0.1;
/** CAP 1.2 §3.2.2 suggests 160 characters so a headline fits an SMS or a pager. */
export const CAP_HEADLINE_MAX = 160;

export type CapMsgType = 'Alert' | 'Update' | 'Cancel';
export type CapStatus = 'Actual' | 'Test';
export type CapCategory = 'Safety' | 'Security';
export type CapUrgency = 'Immediate' | 'Expected' | 'Unknown';
export type CapSeverity = 'Extreme' | 'Severe' | 'Moderate' | 'Minor';
export type CapCertainty = 'Observed' | 'Likely' | 'Possible';
export type CapResponseType = 'Execute' | 'Assess' | 'None' | 'AllClear';

/** An earlier CAP message, as CAP names it in `references`: the triplet sender,identifier,sent. */
export interface CapReference {
  sender: string;
  identifier: string;
  /** Epoch ms; written in CAP's dateTime form. */
  sent: number;
}

export interface CapAlertInput extends PoliceBodyInput {
  msgType: CapMsgType;
  /** The messages an Update or Cancel supersedes (required for those; see `capAlertReference`). */
  references?: readonly CapReference[];
  /** CAP `sender`: globally unique, no spaces, commas, `<` or `&`. */
  sender?: string;
  /**
   * Intended recipients. Given, the scope is Private and they are listed in
   * `addresses`; otherwise the scope is Restricted to police dispatch.
   */
  addresses?: readonly string[];
}

export class CapError extends Error {
  constructor(readonly code: 'CAP_BAD_IDENTIFIER' | 'CAP_REFERENCES_REQUIRED' | 'CAP_BAD_ADDRESS', message: string) {
    super(message);
    this.name = 'CapError';
  }
}

export interface CapEventProfile {
  status: CapStatus;
  categories: readonly CapCategory[];
  urgency: CapUrgency;
  severity: CapSeverity;
  certainty: CapCertainty;
  responseType: Exclude<CapResponseType, 'AllClear'>;
  /** What happened, for `event` and the headline. */
  label: string;
  instruction: string;
}

/**
 * Ordered like EVENT_PRIORITY, so a CAP receiver that sorts by severity and
 * urgency triages the way our outbox does. Certainty is about the danger, not
 * the signal: a press is a person telling us she is in danger (Observed); a
 * motion sensor also trips on a resident (Likely); an open door or a tampered
 * sensor may be nothing (Possible). An installer's test is CAP status Test
 * ("technical testing only, all recipients disregard"), not Exercise, which
 * CAP reserves for drills whose participants act on the message.
 */
export const CAP_EVENT_PROFILE: Readonly<Record<EventType, CapEventProfile>> = {
  panic: {
    status: 'Actual', categories: ['Security', 'Safety'], urgency: 'Immediate', severity: 'Extreme',
    certainty: 'Observed', responseType: 'Execute', label: 'Panic button',
    instruction: 'A person in danger pressed the panic button: dispatch a patrol to the address at once.',
  },
  intrusion: {
    status: 'Actual', categories: ['Security'], urgency: 'Immediate', severity: 'Severe',
    certainty: 'Likely', responseType: 'Execute', label: 'Intrusion alarm',
    instruction: 'Motion was detected inside a protected home: dispatch a patrol to the address.',
  },
  door: {
    status: 'Actual', categories: ['Security'], urgency: 'Immediate', severity: 'Moderate',
    certainty: 'Possible', responseType: 'Assess', label: 'Door alarm',
    instruction: 'A protected door was opened: call the site, and dispatch a patrol if the call does not clear it.',
  },
  tamper: {
    status: 'Actual', categories: ['Security'], urgency: 'Expected', severity: 'Moderate',
    certainty: 'Possible', responseType: 'Assess', label: 'Tamper alarm',
    instruction: 'An alarm device reports tampering: call the site, and dispatch a patrol if the call does not clear it.',
  },
  test: {
    status: 'Test', categories: ['Security'], urgency: 'Unknown', severity: 'Minor',
    certainty: 'Observed', responseType: 'None', label: 'Test press',
    instruction: 'Installer test of the alarm path: no response is needed.',
  },
};

const SITE_KIND_LABEL: Record<SiteKind, string> = {
  store: 'safety-haven store',
  home: 'home-patrol household',
};

const CANCEL_INSTRUCTION = 'The earlier alert is cancelled: no response is needed.';

/**
 * CAP 1.2 §3.2.1: `YYYY-MM-DDThh:mm:ssXzh:zm`, with no fractional seconds,
 * no "Z", and UTC written "-00:00" (the XSD's pattern allows either sign; the
 * spec's text picks "-"). Seconds are truncated, never rounded up into a time
 * that has not happened yet.
 */
export function capDateTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19) + '-00:00';
}

/**
 * The reference an Update or Cancel gives to the alert it supersedes. An
 * Alert's `sent` is the alert's receive time, not the attempt's, so every
 * delivery attempt is the same CAP message and this triplet is known without
 * asking which attempt got through.
 */
export function capAlertReference(input: Pick<CapAlertInput, 'alertId' | 'receivedAt' | 'sender'>): CapReference {
  return { sender: input.sender ?? DEFAULT_CAP_SENDER, identifier: input.alertId, sent: input.receivedAt };
}

/**
 * An Alert is identified by its alert id, so the police can match it to the
 * JSON webhook and a retry is recognised as the same message. CAP needs every
 * message's identifier to be unique, so an Update or Cancel appends its type
 * and its `sent`: stable across retries as long as the caller keeps `sentAt`
 * (the time of the decision) fixed.
 */
export function capIdentifier(input: Pick<CapAlertInput, 'alertId' | 'msgType' | 'sentAt'>): string {
  if (input.msgType === 'Alert') return input.alertId;
  const compact = capDateTime(input.sentAt).slice(0, 19).replace(/[-:]/g, '');
  return `${input.alertId}-${input.msgType.toLowerCase()}-${compact}Z`;
}

/** Throws CapError for what CAP cannot express: a bad sender or reference, an Update or Cancel with no references. */
export function buildCapAlert(input: CapAlertInput): string {
  const sender = input.sender ?? DEFAULT_CAP_SENDER;
  const identifier = capIdentifier(input);
  checkCapId('sender', sender);
  checkCapId('identifier', identifier);
  const references = input.references ?? [];
  if (input.msgType !== 'Alert' && references.length === 0) {
    throw new CapError('CAP_REFERENCES_REQUIRED', `a CAP ${input.msgType} must reference the message it supersedes`);
  }
  for (const ref of references) {
    checkCapId('references.sender', ref.sender);
    checkCapId('references.identifier', ref.identifier);
  }

  const { site } = input;
  const profile = CAP_EVENT_PROFILE[input.type];
  const kind = SITE_KIND_LABEL[site.kind];
  const sent = input.msgType === 'Alert' ? input.receivedAt : input.sentAt;
  const clockNote = input.clockSkew ? ' (device clock was off: this is the time the gateway received it)' : '';
  const prefix = input.msgType === 'Alert' ? '' : `${input.msgType}: `;
  const addresses = input.addresses ?? [];

  const alert: XmlNode[] = [
    ['identifier', identifier],
    ['sender', sender],
    ['sent', capDateTime(sent)],
    ['status', profile.status],
    ['msgType', input.msgType],
    ['scope', addresses.length > 0 ? 'Private' : 'Restricted'],
    addresses.length > 0
      ? ['addresses', addresses.map(capAddress).join(' ')]
      : ['restriction', `Police dispatch only: personal data of a person in danger. Responsible station: ${site.policeStation}.`],
    ...(references.length > 0
      ? [['references', references.map((r) => `${r.sender},${r.identifier},${capDateTime(r.sent)}`).join(' ')] as XmlNode]
      : []),
    // Collates the Alert with its Updates and Cancel, whose identifiers differ.
    ['incidents', input.alertId],
    ['info', [
      ['language', 'en'],
      ...profile.categories.map((c): XmlNode => ['category', c]),
      ['event', `${profile.label} – ${kind}`],
      ['responseType', input.msgType === 'Cancel' ? 'AllClear' : profile.responseType],
      ['urgency', profile.urgency],
      ['severity', profile.severity],
      ['certainty', profile.certainty],
      ['eventCode', [['valueName', 'SafeHaven'], ['value', input.type]]],
      ['onset', capDateTime(input.pressedAt)],
      ['senderName', CAP_SENDER_NAME],
      ['headline', truncate(`${prefix}${profile.label} at ${site.name}, ${site.district}`, CAP_HEADLINE_MAX)],
      ['description', [
        `${profile.label} at a ${kind}.`,
        `Site: ${site.name} (${site.id})`,
        `Address: ${site.address}`,
        `Phone: ${site.phone}`,
        `District: ${site.district}`,
        `Police station: ${site.policeStation}`,
        `Device: ${input.deviceId}`,
        `Triggered at: ${capDateTime(input.pressedAt)}${clockNote}`,
        `Location: ${formatCoordinate(site.lat)}, ${formatCoordinate(site.lon)}`,
      ].join('\n')],
      ['instruction', input.msgType === 'Cancel' ? CANCEL_INSTRUCTION : profile.instruction],
      ['contact', site.phone],
      ...parameters([
        ['alertId', input.alertId],
        ['deviceId', input.deviceId],
        ['siteId', site.id],
        ['siteKind', site.kind],
        ['district', site.district],
        ['policeStation', site.policeStation],
        ['pressedAt', capDateTime(input.pressedAt)],
        ['receivedAt', capDateTime(input.receivedAt)],
        ['clockSkew', String(input.clockSkew)],
        ['attempt', String(input.attempt)],
      ]),
      ['area', [
        ['areaDesc', site.address.includes(site.district) ? site.address : `${site.address}, ${site.district}`],
        ['circle', `${formatCoordinate(site.lat)},${formatCoordinate(site.lon)} ${CAP_AREA_RADIUS_KM}`],
      ]],
    ]],
  ];
  return `<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="${CAP_NAMESPACE}">\n${renderNodes(alert, 1)}</alert>\n`;
}

/** CAP 1.2 §3.2.1: identifier, sender and the parts of a reference "MUST NOT include spaces, commas or restricted characters (< and &)". */
function checkCapId(field: string, value: string): void {
  if (!/^[^\s,<&]+$/.test(value)) {
    throw new CapError('CAP_BAD_IDENTIFIER', `${field} ${JSON.stringify(value)} must be non-empty with no spaces, commas, "<" or "&"`);
  }
}

/** CAP 1.2 `addresses`: space-delimited, an address with spaces in double quotes (so it cannot hold one). */
function capAddress(address: string): string {
  if (address.length === 0 || address.includes('"')) {
    throw new CapError('CAP_BAD_ADDRESS', `address ${JSON.stringify(address)} must be non-empty with no double quote`);
  }
  return /\s/.test(address) ? `"${address}"` : address;
}

/** Six decimals is 0.1 m; toFixed first so a tiny value never prints as 1e-7. */
function formatCoordinate(value: number): string {
  return String(Number(value.toFixed(6)));
}

/** By code points, so a Korean or emoji character is never cut in half. */
function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : chars.slice(0, max - 1).join('') + '…';
}

function parameters(pairs: readonly (readonly [string, string])[]): XmlNode[] {
  return pairs.map(([name, value]): XmlNode => ['parameter', [['valueName', name], ['value', value]]]);
}

type XmlNode = readonly [name: string, content: string | readonly XmlNode[]];

function renderNodes(nodes: readonly XmlNode[], depth: number): string {
  const indent = '  '.repeat(depth);
  return nodes.map(([name, content]) => typeof content === 'string'
    ? `${indent}<${name}>${escapeXml(content)}</${name}>\n`
    : `${indent}<${name}>\n${renderNodes(content, depth + 1)}${indent}</${name}>\n`).join('');
}

/**
 * Everything XML 1.0 cannot carry at all (C0 controls but tab and newlines,
 * lone surrogates, U+FFFE/U+FFFF) is dropped: a site name pasted from a
 * spreadsheet must not make the whole alert unparseable. CR is kept as a
 * reference, since a parser would otherwise turn it into LF.
 */
const XML_ILLEGAL = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;
const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;', '\r': '&#13;' };

function escapeXml(text: string): string {
  return text.replace(XML_ILLEGAL, '').replace(/[&<>"'\r]/g, (c) => XML_ESCAPES[c]!);
}
