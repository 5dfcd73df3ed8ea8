import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deriveAlertId } from '../protocol/alert-id.ts';
import { EVENT_TYPES } from '../protocol/schemas.ts';
import {
  MAX_LINE_BYTES,
  crc16,
  createLineSplitter,
  deriveRadioKey,
  formatAck,
  formatBoot,
  formatConfig,
  formatDeviceEvent,
  formatHeartbeat,
  formatReceiverHealth,
  parseLine,
  verifyFrameMac,
  type DeviceEventFrame,
  type HeartbeatFrame,
  type LineErrorReason,
  type SerialFrame,
  type SplitterOutput,
} from '../protocol/serial.ts';

const SECRET = 'demo-secret-please-change';
const KEY = deriveRadioKey(SECRET);
const EVT = { deviceId: 'pb-store-0001', seq: 42, type: 'panic', ts: 1732000000000, rssi: -61, battery: 87 } as const;
const HB = { deviceId: 'pb-store-0001', seq: 43, ts: 1732000300000, rssi: -64, battery: 87, fw: '1.4.2' };
const EVT_LINE = formatDeviceEvent(EVT, KEY);

function parsed(line: string): SerialFrame {
  const result = parseLine(line);
  if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
  return result.frame;
}

function deviceFrame(line: string): DeviceEventFrame | HeartbeatFrame {
  const frame = parsed(line);
  if (frame.kind !== 'EVT' && frame.kind !== 'HB') throw new Error(`not a device frame: ${frame.kind}`);
  return frame;
}

/** What an attacker (or noise plus luck) can do: change content and fix up the CRC. */
function reseal(content: string): string {
  return `${content}|${crc16(content).toString(16).toUpperCase().padStart(4, '0')}\r\n`;
}

function contentOf(line: string): string {
  return line.slice(0, line.trimEnd().lastIndexOf('|'));
}

function rejection(line: string): { reason: LineErrorReason; field?: string } {
  const result = parseLine(line);
  if (result.ok) throw new Error(`accepted: ${line}`);
  return result.field === undefined ? { reason: result.reason } : { reason: result.reason, field: result.field };
}

describe('crc16', () => {
  it('matches the CRC-16/CCITT-FALSE check value', () => {
    expect(crc16('123456789')).toBe(0x29b1);
    expect(crc16(Buffer.from('123456789'))).toBe(0x29b1);
  });

  it('is 0xFFFF (the init value) over nothing', () => {
    expect(crc16('')).toBe(0xffff);
  });
});

describe('round trips', () => {
  it('EVT keeps every field and the signed bytes', () => {
    expect(EVT_LINE.endsWith('\r\n')).toBe(true);
    const frame = deviceFrame(EVT_LINE);
    expect(frame).toMatchObject({ kind: 'EVT', ...EVT });
    expect(frame.signed).toBe('SH1|EVT|pb-store-0001|42|panic|1732000000000|-61|87|');
    expect(frame.mac).toMatch(/^[0-9a-f]{16}$/);
  });

  it('HB', () => {
    expect(parsed(formatHeartbeat(HB, KEY))).toMatchObject({ kind: 'HB', ...HB });
  });

  it.each([
    ['BOOT', formatBoot({ receiverId: 'rx-store-01', fw: '2.1.0-rc1+g3f2a' }), { receiverId: 'rx-store-01', fw: '2.1.0-rc1+g3f2a' }],
    ['RHL', formatReceiverHealth({ receiverId: 'rx-store-01', noiseFloorDbm: -112, queueDepth: 3 }), { receiverId: 'rx-store-01', noiseFloorDbm: -112, queueDepth: 3 }],
    [
      'ACK',
      formatAck({ deviceId: 'pb-store-0001', seq: 42, alertId: deriveAlertId('pb-store-0001', 42), state: 'acknowledged' }),
      { deviceId: 'pb-store-0001', seq: 42, alertId: deriveAlertId('pb-store-0001', 42), state: 'acknowledged' },
    ],
    ['CFG', formatConfig({ deviceId: 'rx-store-01', heartbeatSec: 300 }), { deviceId: 'rx-store-01', heartbeatSec: 300 }],
  ])('%s', (kind, line, fields) => {
    expect(parsed(line)).toEqual({ kind, ...fields });
  });

  it('accepts LF, CRLF and no terminator alike', () => {
    const bare = EVT_LINE.slice(0, -2);
    expect(parsed(`${bare}\n`)).toEqual(parsed(EVT_LINE));
    expect(parsed(bare)).toEqual(parsed(EVT_LINE));
  });

  it('re-formats a parsed line to the same bytes (one spelling per value)', () => {
    const { kind, mac, signed, ...fields } = deviceFrame(EVT_LINE);
    expect(formatDeviceEvent(fields as typeof EVT, KEY)).toBe(EVT_LINE);
  });

  it('keeps the longest legal frame within MAX_LINE_BYTES', () => {
    const longest = formatHeartbeat(
      { deviceId: 'a'.repeat(23), seq: Number.MAX_SAFE_INTEGER, ts: Number.MAX_SAFE_INTEGER, rssi: -150, battery: 100, fw: 'x'.repeat(32) },
      KEY,
    );
    expect(parseLine(longest).ok).toBe(true);
    expect(longest.length - 2).toBe(128);
    expect(longest.length - 2).toBeLessThanOrEqual(MAX_LINE_BYTES);
  });
});

describe('MAC', () => {
  it('verifies with the right radio key only', () => {
    const frame = deviceFrame(EVT_LINE);
    expect(verifyFrameMac(frame, KEY)).toBe(true);
    expect(verifyFrameMac(frame, deriveRadioKey('demo-secret-please-changE'))).toBe(false);
    expect(verifyFrameMac(frame, Buffer.alloc(0))).toBe(false);
    expect(verifyFrameMac(deviceFrame(formatHeartbeat(HB, KEY)), KEY)).toBe(true);
  });

  it('is not keyed with the secret itself', () => {
    expect(verifyFrameMac(deviceFrame(EVT_LINE), Buffer.from(SECRET, 'utf8'))).toBe(false);
  });

  it('derives the documented radio key and truncated HMAC', () => {
    expect(KEY.toString('hex')).toBe('9638c37ede135edf69bf814f0e4a0ef6f7c9dd782f178a31643dd40b44775828');
    expect(deviceFrame(EVT_LINE).mac).toBe('0a2c5bbb11f14f82');
  });

  it('refuses to derive a radio key from an empty secret', () => {
    expect(() => deriveRadioKey('')).toThrow(RangeError);
  });

  /** Every one-byte substitution, plus every other event type, since no one-byte change turns one type into another. */
  function* forgeries(content: string): Generator<string> {
    for (let i = 0; i < content.length; i++) {
      for (const c of '0123456789abcdefghijklmnopqrstuvwxyz-.') {
        if (c !== content[i]) yield content.slice(0, i) + c + content.slice(i + 1);
      }
    }
    const fields = content.split('|');
    for (const [i, field] of fields.entries()) {
      for (const type of EVENT_TYPES) {
        if (type !== field) yield fields.with(i, type).join('|');
      }
    }
  }

  it.each([
    ['EVT', EVT_LINE, ['deviceId', 'seq', 'type', 'ts', 'rssi', 'battery', 'mac']],
    ['HB', formatHeartbeat(HB, KEY), ['deviceId', 'seq', 'ts', 'rssi', 'battery', 'fw', 'mac']],
  ])('rejects a %s forged by changing any field and fixing the CRC', (_kind, line, fields) => {
    const original = deviceFrame(line) as unknown as Record<string, unknown>;
    const forgedFields = new Set<string>();
    for (const content of forgeries(contentOf(line))) {
      const result = parseLine(reseal(content));
      if (!result.ok) continue;
      expect(verifyFrameMac(result.frame as DeviceEventFrame | HeartbeatFrame, KEY)).toBe(false);
      const forged = result.frame as unknown as Record<string, unknown>;
      for (const field of fields) if (forged[field] !== original[field]) forgedFields.add(field);
    }
    expect([...forgedFields].sort()).toEqual([...fields].sort());
  });

  it('refuses to sign with an empty key', () => {
    expect(() => formatDeviceEvent(EVT, Buffer.alloc(0))).toThrow(RangeError);
  });
});

describe('parseLine rejections', () => {
  const content = contentOf(EVT_LINE);
  const signed = deviceFrame(EVT_LINE).signed;
  const withField = (index: number, value: string): string => {
    const fields = content.split('|');
    fields[index] = value;
    return reseal(fields.join('|'));
  };

  it.each<[string, string, LineErrorReason, string?]>([
    ['a bad checksum', `${content}|0000\r\n`, 'bad-checksum'],
    ['a flipped byte under a good-looking CRC', EVT_LINE.replace('|42|', '|43|'), 'bad-checksum'],
    ['a lowercase checksum', 'SH1|RHL|rx-store-01|-112|0|f19e', 'garbled'],
    ['another protocol version', reseal(content.replace('SH1|', 'SH2|')), 'bad-version'],
    ['no version tag', reseal(content.replace('SH1|', 'XX1|')), 'garbled'],
    ['an unknown kind', reseal(content.replace('|EVT|', '|EVX|')), 'unknown-kind'],
    ['a missing field', reseal(content.replace('|panic|', '|')), 'bad-field'],
    ['an extra field', reseal(content.replace('|panic|', '|panic|panic|')), 'bad-field'],
    ['a non-numeric seq', withField(3, '4x'), 'bad-field', 'seq'],
    ['a zero-padded seq', withField(3, '042'), 'bad-field', 'seq'],
    ['a negative seq', withField(3, '-42'), 'bad-field', 'seq'],
    ['a seq beyond 2^53-1', withField(3, '9007199254740992'), 'bad-field', 'seq'],
    ['an unknown event type', withField(4, 'fire'), 'bad-field', 'type'],
    ['an id with capitals', withField(2, 'PB-store-0001'), 'bad-field', 'deviceId'],
    ['an id with a space', withField(2, 'pb store'), 'bad-field', 'deviceId'],
    ['an id that is too long', withField(2, 'p'.repeat(24)), 'bad-field', 'deviceId'],
    ['a positive rssi', withField(6, '5'), 'bad-field', 'rssi'],
    ['a battery over 100', withField(7, '101'), 'bad-field', 'battery'],
    ['an uppercase mac', withField(8, 'BBA1D83C41F5D6DD'), 'bad-field', 'mac'],
    ['a short mac', withField(8, 'bba1d83c'), 'bad-field', 'mac'],
    ['a `|` injected into a field', reseal(content.replace('pb-store-0001', 'pb|store-0001')), 'bad-field'],
    ['a control character', reseal(content.replace('panic', 'pan\x00c')), 'garbled'],
    ['a non-ASCII character', reseal(content.replace('panic', 'pänic')), 'garbled'],
    ['an embedded newline', reseal(content.replace('|panic|', '|panic\n|')), 'garbled'],
    ['an empty line', '', 'garbled'],
    ['plain text', 'hello\r\n', 'garbled'],
    ['an over-long line', reseal(signed.padEnd(MAX_LINE_BYTES, 'x')), 'too-long'],
    ['a 1 MB line', 'x'.repeat(1 << 20), 'too-long'],
  ])('%s', (_what, line, reason, field) => {
    expect(rejection(line)).toEqual(field === undefined ? { reason } : { reason, field });
  });

  it('accepts a line of exactly MAX_LINE_BYTES up to its field checks', () => {
    const line = reseal(`SH1|BOOT|rx-1|${'x'.repeat(MAX_LINE_BYTES - 'SH1|BOOT|rx-1|'.length - 5)}`);
    expect(line.length - 2).toBe(MAX_LINE_BYTES);
    expect(rejection(line)).toEqual({ reason: 'bad-field', field: 'fw' });
  });

  it('names the field and the expectation in the message', () => {
    const result = parseLine(withField(3, 'abc'));
    expect(result).toMatchObject({ ok: false, message: expect.stringContaining('seq') });
  });
});

describe('formatters refuse values that would not parse back', () => {
  it.each([
    ['a `|` in the firmware version', () => formatHeartbeat({ ...HB, fw: '1.0|EVT' }, KEY)],
    ['a `|` in the device id', () => formatDeviceEvent({ ...EVT, deviceId: 'pb|1' }, KEY)],
    ['a CRLF in the firmware version', () => formatBoot({ receiverId: 'rx-1', fw: '1.0\r\nSH1' })],
    ['a fractional seq', () => formatDeviceEvent({ ...EVT, seq: 1.5 }, KEY)],
    ['NaN', () => formatReceiverHealth({ receiverId: 'rx-1', noiseFloorDbm: Number.NaN, queueDepth: 0 })],
    ['a heartbeat of 0 s', () => formatConfig({ deviceId: 'rx-1', heartbeatSec: 0 })],
    ['a malformed alert id', () => formatAck({ deviceId: 'pb-1', seq: 1, alertId: 'al-xyz', state: 'received' })],
  ])('%s', (_what, format) => {
    expect(format).toThrow(RangeError);
  });
});

describe('createLineSplitter', () => {
  const A = formatDeviceEvent(EVT, KEY);
  const B = formatAck({ deviceId: 'pb-store-0001', seq: 42, alertId: deriveAlertId('pb-store-0001', 42), state: 'dispatched' });
  const line = (text: string): SplitterOutput => ({ line: text.replace(/\r?\n$/, '') });

  function feed(chunks: Array<string | Buffer>, maxBytes?: number): SplitterOutput[] {
    const splitter = createLineSplitter(maxBytes);
    return chunks.flatMap((chunk) => splitter.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk));
  }

  it('reassembles two frames split at every byte position', () => {
    const input = A + B;
    for (let i = 0; i <= input.length; i++) {
      expect(feed([input.slice(0, i), input.slice(i)])).toEqual([line(A), line(B)]);
    }
  });

  it('reassembles two frames fed one byte at a time', () => {
    expect(feed([...(A + B)])).toEqual([line(A), line(B)]);
  });

  it('emits several frames from one chunk', () => {
    expect(feed([A + B + A])).toEqual([line(A), line(B), line(A)]);
  });

  it('passes garbage between frames on as its own line, which parseLine rejects', () => {
    const out = feed([`${A}\x00\xff\x13noise\r\n${B}`]);
    expect(out).toEqual([line(A), { line: '\x00\xff\x13noise' }, line(B)]);
    expect(parseLine((out[1] as { line: string }).line)).toMatchObject({ ok: false, reason: 'garbled' });
  });

  it('accepts CRLF and LF, and a \\r split from its \\n', () => {
    const bare = A.slice(0, -2);
    expect(feed([`${bare}\n${bare}\r\n`])).toEqual([line(A), line(A)]);
    expect(feed([`${bare}\r`, `\n${bare}\r`, '\n'])).toEqual([line(A), line(A)]);
  });

  it('keeps a \\r that turns out not to end the line', () => {
    expect(feed(['ab\r', 'cd\n'])).toEqual([{ line: 'ab\rcd' }]);
    expect(feed(['ab\r', '\rcd\n'])).toEqual([{ line: 'ab\r\rcd' }]);
  });

  it('ignores empty lines', () => {
    expect(feed([`\r\n\n${A}\r\n\r`, '\n\n'])).toEqual([line(A)]);
  });

  it('reports a 1 MB chunk without a newline once, then the next frame', () => {
    const splitter = createLineSplitter();
    expect(splitter.push(Buffer.alloc(1 << 20, 0x41))).toEqual([]);
    // A rebooted dongle ends whatever was on the line with a bare CRLF before its first frame.
    expect(splitter.push(Buffer.from(`\r\n${A}`))).toEqual([{ overflow: 1 << 20 }, line(A)]);
  });

  it('counts an over-long line across many chunks and reports it once', () => {
    const splitter = createLineSplitter();
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const out: SplitterOutput[] = [];
    for (let i = 0; i < 256; i++) out.push(...splitter.push(chunk));
    out.push(...splitter.push(Buffer.from(`\n${B}`)));
    expect(out).toEqual([{ overflow: 256 * 64 * 1024 }, line(B)]);
  });

  it('allows exactly maxBytes before the terminator, whatever the chunking', () => {
    const max = 'x'.repeat(16);
    expect(feed([`${max}\r\n`], 16)).toEqual([{ line: max }]);
    expect(feed([`${max}\r`, '\n'], 16)).toEqual([{ line: max }]);
    expect(feed([`${max}x\n`], 16)).toEqual([{ overflow: 17 }]);
    expect(feed([max, 'x', '\r\n', 'ok\n'], 16)).toEqual([{ overflow: 17 }, { line: 'ok' }]);
  });

  it('hands over the unterminated last line at end of stream', () => {
    const splitter = createLineSplitter(16);
    splitter.push(Buffer.from('partial\r'));
    expect(splitter.end()).toEqual([{ line: 'partial' }]);
    splitter.push(Buffer.from('y'.repeat(40)));
    expect(splitter.end()).toEqual([{ overflow: 40 }]);
    expect(splitter.end()).toEqual([]);
  });
});

describe('SERIAL.md', () => {
  const doc = readFileSync(new URL('../protocol/SERIAL.md', import.meta.url), 'utf8');
  // Example lines are the contents of ```serial blocks; other blocks show intermediate bytes.
  const examples = [...doc.matchAll(/^```serial\n([^`]*)^```$/gm)].flatMap((m) => m[1]!.trim().split('\n'));

  it('shows the EVT example exactly as formatDeviceEvent writes it', () => {
    expect(examples).toContain(EVT_LINE.trimEnd());
  });

  it('has one example per kind, each valid, device frames signed with the demo secret\'s radio key', () => {
    expect(examples.map((l) => l.split('|')[1]).sort()).toEqual(['ACK', 'BOOT', 'CFG', 'EVT', 'HB', 'RHL']);
    for (const example of examples) {
      const frame = parsed(example);
      if (frame.kind === 'EVT' || frame.kind === 'HB') expect(verifyFrameMac(frame, KEY)).toBe(true);
    }
  });
});
