// The serial line protocol between the gateway and the RF receiver dongle
// (USB serial, 115200 baud). This file is the only place the grammar is
// written; SERIAL.md explains it with examples computed by this code.
// Everything here is pure: the stream layer owns the port and the timing.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ALERT_ID_PATTERN } from './alert-id.ts';
import { ALERT_STATES, DEVICE_ID_PATTERN, EVENT_TYPES, type AlertState, type EventType } from './schemas.ts';

export const SERIAL_VERSION = 'SH1';
export const SERIAL_BAUD = 115_200;

/**
 * Hard cap on one line, terminator excluded. The longest legal frame (a HB
 * with every field at its maximum width) is 128 bytes, so 256 leaves room
 * for a field or two in a later version and is still a buffer any dongle MCU
 * can afford; at 115200 baud it takes 22 ms to send. Anything longer is noise
 * or a fault, and is dropped without being buffered.
 */
export const MAX_LINE_BYTES = 256;

/** 8 bytes of HMAC-SHA256: forging one needs ~2^63 tries over a 115200-baud radio link. */
export const MAC_HEX_LENGTH = 16;

const LINE_END = '\r\n';

export interface DeviceEventFrame {
  kind: 'EVT';
  deviceId: string;
  seq: number;
  type: EventType;
  /** Device clock, epoch ms. */
  ts: number;
  rssi: number;
  battery: number;
  mac: string;
  /** The exact bytes the MAC covers (`SH1|EVT|…|<battery>|`), so verifying never re-serialises. */
  signed: string;
}

export interface HeartbeatFrame {
  kind: 'HB';
  deviceId: string;
  seq: number;
  ts: number;
  rssi: number;
  battery: number;
  fw: string;
  mac: string;
  signed: string;
}

export interface ReceiverBootFrame {
  kind: 'BOOT';
  receiverId: string;
  fw: string;
}

export interface ReceiverHealthFrame {
  kind: 'RHL';
  receiverId: string;
  noiseFloorDbm: number;
  queueDepth: number;
}

export interface AckFrame {
  kind: 'ACK';
  deviceId: string;
  seq: number;
  alertId: string;
  state: AlertState;
}

export interface ConfigFrame {
  kind: 'CFG';
  /** A button's or sensor's id, or the receiver's own id to configure the dongle. */
  deviceId: string;
  heartbeatSec: number;
}

export type SerialFrame = DeviceEventFrame | HeartbeatFrame | ReceiverBootFrame | ReceiverHealthFrame | AckFrame | ConfigFrame;
export type FrameKind = SerialFrame['kind'];
/** Dongle → gateway. */
export type UplinkFrame = DeviceEventFrame | HeartbeatFrame | ReceiverBootFrame | ReceiverHealthFrame;
/** Gateway → dongle. */
export type DownlinkFrame = AckFrame | ConfigFrame;

export type LineErrorReason = 'too-long' | 'garbled' | 'bad-checksum' | 'bad-version' | 'unknown-kind' | 'bad-field';
export type LineError = { ok: false; reason: LineErrorReason; message: string; field?: string };
export type ParsedLine = { ok: true; frame: SerialFrame } | LineError;

type Unsigned<F> = Omit<F, 'kind' | 'mac' | 'signed'>;
type Body<F> = Omit<F, 'kind'>;

// ---------------------------------------------------------------- CRC

const CRC_TABLE = buildCrcTable(0x1021);

function buildCrcTable(poly: number): Uint16Array {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = ((crc << 1) ^ (crc & 0x8000 ? poly : 0)) & 0xffff;
    table[i] = crc;
  }
  return table;
}

/** CRC-16/CCITT-FALSE. Strings are taken as UTF-8, the bytes `port.write(string)` sends. */
export function crc16(data: string | Buffer): number {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let crc = 0xffff;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc;
}

function crcText(content: string): string {
  return crc16(content).toString(16).toUpperCase().padStart(4, '0');
}

// ---------------------------------------------------------------- MAC

/** Domain separation: the radio key must never equal any other HMAC a device secret keys. */
export const RADIO_KEY_CONTEXT = 'safehaven-radio-v1';

/**
 * A device's radio key: HMAC-SHA256(key = secret, RADIO_KEY_CONTEXT), 32 bytes.
 * Frames are signed with this, not with the secret, because the gateway keeps
 * only a scrypt hash of the secret and so could not verify a MAC keyed with it;
 * it keeps the radio key instead (see SERIAL.md for what a leaked store gives away).
 */
export function deriveRadioKey(secret: string): Buffer {
  if (secret === '') throw new RangeError('cannot derive a radio key from an empty secret');
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(RADIO_KEY_CONTEXT, 'utf8').digest();
}

function computeMac(signed: string, radioKey: Buffer): string {
  return createHmac('sha256', radioKey).update(signed, 'utf8').digest('hex').slice(0, MAC_HEX_LENGTH);
}

/**
 * Constant-time check of a device frame's MAC. Trusts `frame.signed`, so the
 * frame must come from parseLine. An empty key never verifies: it is what a
 * device without a radio key would hand over, not a key.
 */
export function verifyFrameMac(frame: DeviceEventFrame | HeartbeatFrame, radioKey: Buffer): boolean {
  if (radioKey.length === 0 || !MAC_PATTERN.test(frame.mac)) return false;
  const expected = Buffer.from(computeMac(frame.signed, radioKey), 'hex');
  return timingSafeEqual(expected, Buffer.from(frame.mac, 'hex'));
}

// ---------------------------------------------------------------- fields

/** One field's syntax, used for parsing and for checking what a formatter is about to send. */
interface Codec<T> {
  parse(text: string): T | undefined;
  expect: string;
}

// Canonical decimal only (no "+", "-0", leading zeros, exponents): one value has
// one spelling, so format(parse(line)) === line and the MAC bytes are unambiguous.
const DECIMAL = /^(?:0|-?[1-9][0-9]{0,15})$/;

function integer(min: number, max: number): Codec<number> {
  return {
    parse(text) {
      if (!DECIMAL.test(text)) return undefined;
      const n = Number(text);
      return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
    },
    expect: `an integer ${min}..${max}`,
  };
}

function matching(pattern: RegExp, expect: string): Codec<string> {
  return { parse: (text) => (pattern.test(text) ? text : undefined), expect };
}

function oneOf<T extends string>(values: readonly T[]): Codec<T> {
  return { parse: (text) => values.find((v) => v === text), expect: `one of ${values.join(', ')}` };
}

/** Firmware versions such as `1.4.2` or `2.0.0-rc1+g3f2a`; no spaces, nothing to escape. */
const FW_PATTERN = /^[0-9A-Za-z][0-9A-Za-z._+-]{0,31}$/;
const MAC_PATTERN = /^[0-9a-f]{16}$/;

const id = matching(DEVICE_ID_PATTERN, 'an id of lowercase letters, digits and "-", 1 to 23 characters');
const counter = integer(0, Number.MAX_SAFE_INTEGER);
// Same range as the MQTT payloads' rssi, so a radio frame converts to an EventPayload 1:1.
const dbm = integer(-150, 0);
const percent = integer(0, 100);
const firmware = matching(FW_PATTERN, 'a firmware version of 1 to 32 characters [0-9A-Za-z._+-]');

/** A frame's fields in wire order; each entry pairs a property with a codec of its type. */
type Fields<F> = ReadonlyArray<{ [K in keyof F]-?: readonly [K & string, Codec<F[K]>] }[keyof F]>;

const EVT_FIELDS: Fields<Unsigned<DeviceEventFrame>> = [
  ['deviceId', id], ['seq', counter], ['type', oneOf(EVENT_TYPES)], ['ts', counter], ['rssi', dbm], ['battery', percent],
];
const HB_FIELDS: Fields<Unsigned<HeartbeatFrame>> = [
  ['deviceId', id], ['seq', counter], ['ts', counter], ['rssi', dbm], ['battery', percent], ['fw', firmware],
];
const BOOT_FIELDS: Fields<Body<ReceiverBootFrame>> = [['receiverId', id], ['fw', firmware]];
const RHL_FIELDS: Fields<Body<ReceiverHealthFrame>> = [['receiverId', id], ['noiseFloorDbm', dbm], ['queueDepth', counter]];
const ACK_FIELDS: Fields<Body<AckFrame>> = [
  ['deviceId', id], ['seq', counter], ['alertId', matching(ALERT_ID_PATTERN, 'an alert id al-<20 hex>')], ['state', oneOf(ALERT_STATES)],
];
const CFG_FIELDS: Fields<Body<ConfigFrame>> = [['deviceId', id], ['heartbeatSec', integer(1, 86_400)]];

interface Grammar {
  fields: ReadonlyArray<readonly [string, Codec<unknown>]>;
  /** Device frames end with a MAC over everything before it. */
  signed: boolean;
}

const GRAMMAR: Record<FrameKind, Grammar> = {
  EVT: { fields: EVT_FIELDS, signed: true },
  HB: { fields: HB_FIELDS, signed: true },
  BOOT: { fields: BOOT_FIELDS, signed: false },
  RHL: { fields: RHL_FIELDS, signed: false },
  ACK: { fields: ACK_FIELDS, signed: false },
  CFG: { fields: CFG_FIELDS, signed: false },
};

function isFrameKind(kind: string): kind is FrameKind {
  return Object.hasOwn(GRAMMAR, kind);
}

// ---------------------------------------------------------------- parsing

const NOT_PRINTABLE_ASCII = /[^\x20-\x7e]/;
const VERSION_TAG = /^SH[0-9]{1,3}$/;
const CRC_FIELD = /^[0-9A-F]{4}$/;

function fail(reason: LineErrorReason, message: string, field?: string): LineError {
  return field === undefined ? { ok: false, reason, message } : { ok: false, reason, message, field };
}

function stripTerminator(line: string): string {
  const end = line.endsWith('\n') ? line.length - 1 : line.length;
  return line.slice(0, line.charCodeAt(end - 1) === 0x0d ? end - 1 : end);
}

/**
 * Parses one line (with or without its `\r\n` / `\n`), never throwing.
 * Checks length, charset, version, CRC, kind and every field's syntax; the
 * MAC needs the device's radio key, so that is verifyFrameMac's job.
 */
export function parseLine(line: string): ParsedLine {
  const text = stripTerminator(line);
  // The grammar is ASCII, so characters are bytes; anything else is garbled below.
  if (text.length > MAX_LINE_BYTES) return fail('too-long', `line is ${text.length} bytes, the limit is ${MAX_LINE_BYTES}`);
  if (NOT_PRINTABLE_ASCII.test(text)) return fail('garbled', 'line holds a control or non-ASCII byte');
  const parts = text.split('|');
  if (parts.length < 3) return fail('garbled', 'not a SH1|<KIND>|...|<CRC> line');
  const version = parts[0]!;
  // Before the CRC: another version may checksum differently, and "wrong
  // version" is what the operator needs to hear, not a stream of bad checksums.
  if (version !== SERIAL_VERSION) {
    return VERSION_TAG.test(version)
      ? fail('bad-version', `protocol ${version}, this gateway speaks ${SERIAL_VERSION}`)
      : fail('garbled', 'line does not start with a version tag');
  }
  const crcField = parts.at(-1)!;
  if (!CRC_FIELD.test(crcField)) return fail('garbled', 'checksum is not 4 uppercase hex digits');
  const content = text.slice(0, text.length - crcField.length - 1);
  const computed = crcText(content);
  if (computed !== crcField) return fail('bad-checksum', `checksum ${crcField}, computed ${computed}`);
  return parseFrame(parts[1]!, parts.slice(2, -1), content);
}

function parseFrame(kind: string, fields: string[], content: string): ParsedLine {
  if (!isFrameKind(kind)) return fail('unknown-kind', `unknown frame kind ${JSON.stringify(kind)}`);
  const grammar = GRAMMAR[kind];
  const expected = grammar.fields.length + (grammar.signed ? 1 : 0);
  if (fields.length !== expected) return fail('bad-field', `${kind} has ${expected} fields, got ${fields.length}`);
  const frame: Record<string, unknown> = { kind };
  for (const [i, [name, codec]] of grammar.fields.entries()) {
    const value = codec.parse(fields[i]!);
    if (value === undefined) return fail('bad-field', `${kind} ${name}: ${JSON.stringify(fields[i])} is not ${codec.expect}`, name);
    frame[name] = value;
  }
  if (grammar.signed) {
    const mac = fields.at(-1)!;
    if (!MAC_PATTERN.test(mac)) return fail('bad-field', `${kind} mac: not ${MAC_HEX_LENGTH} lowercase hex digits`, 'mac');
    frame.mac = mac;
    frame.signed = content.slice(0, content.length - mac.length);
  }
  // The grammar table pairs each property with a codec of its type (Fields<F>).
  return { ok: true, frame: frame as unknown as SerialFrame };
}

// ---------------------------------------------------------------- formatting

// Formatters throw (RangeError) on a value that would not parse back: that is
// a bug in the caller, and sending it would at best be rejected by the other
// side and at worst, with a `|` in it, shift the fields of a valid frame.
function encodeFields(kind: FrameKind, values: object): string[] {
  const record = values as Record<string, unknown>;
  return GRAMMAR[kind].fields.map(([name, codec]) => {
    const text = String(record[name]);
    if (codec.parse(text) === undefined) throw new RangeError(`${kind} ${name}: ${JSON.stringify(text)} is not ${codec.expect}`);
    return text;
  });
}

function seal(content: string): string {
  return `${content}|${crcText(content)}${LINE_END}`;
}

function formatPlain(kind: FrameKind, values: object): string {
  return seal([SERIAL_VERSION, kind, ...encodeFields(kind, values)].join('|'));
}

function formatSigned(kind: 'EVT' | 'HB', values: object, radioKey: Buffer): string {
  if (radioKey.length === 0) throw new RangeError(`${kind}: the radio key is empty`);
  const signed = `${[SERIAL_VERSION, kind, ...encodeFields(kind, values)].join('|')}|`;
  return seal(signed + computeMac(signed, radioKey));
}

/** A full EVT line, `\r\n` included, signed with the device's radio key (deriveRadioKey). */
export function formatDeviceEvent(f: Unsigned<DeviceEventFrame>, radioKey: Buffer): string {
  return formatSigned('EVT', f, radioKey);
}

export function formatHeartbeat(f: Unsigned<HeartbeatFrame>, radioKey: Buffer): string {
  return formatSigned('HB', f, radioKey);
}

export function formatBoot(f: Body<ReceiverBootFrame>): string {
  return formatPlain('BOOT', f);
}

export function formatReceiverHealth(f: Body<ReceiverHealthFrame>): string {
  return formatPlain('RHL', f);
}

export function formatAck(f: Body<AckFrame>): string {
  return formatPlain('ACK', f);
}

export function formatConfig(f: Body<ConfigFrame>): string {
  return formatPlain('CFG', f);
}

// ---------------------------------------------------------------- line splitting

export type SplitterOutput = { line: string } | { overflow: number };

export interface LineSplitter {
  push(chunk: Buffer): SplitterOutput[];
  /** At end of stream: the unterminated last line (as readline does), or its overflow. */
  end(): SplitterOutput[];
}

const LF = 0x0a;
const CR = 0x0d;
const CR_BYTE = Buffer.from([CR]);

/**
 * Splits a byte stream into lines of at most `maxBytes` (terminator excluded),
 * holding at most `maxBytes` bytes whatever arrives. An over-long line is
 * dropped as it streams in and reported once, as `{ overflow: bytes }`, when
 * its `\n` arrives. Empty lines are skipped. Lines are decoded as latin1: one
 * character per byte, so a stray high byte reaches parseLine as itself and
 * is reported as garbled.
 */
export function createLineSplitter(maxBytes = MAX_LINE_BYTES): LineSplitter {
  const buffer = Buffer.alloc(maxBytes);
  let length = 0;
  /** Bytes of the current line dropped so far; > 0 means the line is over-long. */
  let dropped = 0;
  /** A chunk ended in `\r`: a terminator if the next byte is `\n`, content otherwise. Held aside so it never costs buffer space. */
  let pendingCr = false;

  function append(bytes: Buffer): void {
    if (dropped > 0) {
      dropped += bytes.length;
    } else if (length + bytes.length > maxBytes) {
      dropped = length + bytes.length;
      length = 0;
    } else {
      bytes.copy(buffer, length);
      length += bytes.length;
    }
  }

  function finishLine(out: SplitterOutput[]): void {
    if (dropped > 0) out.push({ overflow: dropped });
    else if (length > 0) out.push({ line: buffer.toString('latin1', 0, length) });
    dropped = 0;
    length = 0;
  }

  function takeSegment(segment: Buffer, terminated: boolean): void {
    if (pendingCr && !(terminated && segment.length === 0)) append(CR_BYTE);
    pendingCr = false;
    const endsInCr = segment.length > 0 && segment[segment.length - 1] === CR;
    if (endsInCr && !terminated) pendingCr = true;
    append(endsInCr ? segment.subarray(0, -1) : segment);
  }

  return {
    push(chunk) {
      const out: SplitterOutput[] = [];
      let start = 0;
      while (start < chunk.length) {
        const newline = chunk.indexOf(LF, start);
        if (newline === -1) {
          takeSegment(chunk.subarray(start), false);
          break;
        }
        takeSegment(chunk.subarray(start, newline), true);
        finishLine(out);
        start = newline + 1;
      }
      return out;
    },
    end() {
      const out: SplitterOutput[] = [];
      pendingCr = false;
      finishLine(out);
      return out;
    },
  };
}
