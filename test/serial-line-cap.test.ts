// The cap in front of readline, fed as a serial port feeds it: chunks cut
// anywhere, several frames at once, noise, both line ends, and a dongle that
// never sends a newline.
import { ReadlineParser } from '@serialport/parser-readline';
import { describe, expect, it } from 'vitest';
import { LineCap } from '../gateway/serial/line-cap.ts';
import { deriveRadioKey, formatBoot, formatDeviceEvent, formatReceiverHealth, MAX_LINE_BYTES, parseLine } from '../protocol/index.ts';

const KEY = deriveRadioKey('line-cap-test-secret');
const EVT = formatDeviceEvent({ deviceId: 'pb-store-0001', seq: 7, type: 'panic', ts: 1732000000000, rssi: -61, battery: 87 }, KEY);
const BOOT = formatBoot({ receiverId: 'rx-1', fw: '2.1.0' });
const RHL = formatReceiverHealth({ receiverId: 'rx-1', noiseFloorDbm: -112, queueDepth: 3 });

/** cap → readline as the bridge wires them; returns what readline emits, what the cap handed it, and the overflows. */
async function feed(chunks: Array<string | Buffer>) {
  const overflows: number[] = [];
  const handed: Buffer[] = [];
  const cap = new LineCap((bytes) => overflows.push(bytes));
  const readline = new ReadlineParser({ delimiter: '\n', encoding: 'latin1' });
  const lines: string[] = [];
  cap.on('data', (chunk: Buffer) => handed.push(chunk));
  readline.on('data', (line: string) => lines.push(line));
  cap.pipe(readline);
  for (const chunk of chunks) cap.write(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
  await new Promise((resolve) => setImmediate(resolve));
  return { lines, overflows, handed };
}

describe('LineCap → ReadlineParser', () => {
  it('reassembles a frame split across writes at every position', async () => {
    for (let cut = 1; cut < EVT.length; cut++) {
      const { lines } = await feed([EVT.slice(0, cut), EVT.slice(cut)]);
      expect(lines, `cut at ${cut}`).toEqual([EVT.trimEnd()]);
    }
  });

  it('passes several frames of one chunk, each whole', async () => {
    const { lines } = await feed([BOOT + EVT + RHL]);
    expect(lines).toEqual([BOOT, EVT, RHL].map((l) => l.trimEnd()));
    expect(lines.every((l) => parseLine(l).ok)).toBe(true);
  });

  it('hands garbage between frames on as its own line, which the parser refuses', async () => {
    const { lines } = await feed([`${EVT}#%&noise\r\n\x00\xff\n${RHL}`]);
    expect(lines.map((l) => parseLine(l).ok)).toEqual([true, false, false, true]);
  });

  it('takes CRLF and bare LF alike, and drops a CR split from its LF', async () => {
    const { lines } = await feed([EVT.replace('\r\n', '\n'), `${BOOT.trimEnd()}\r`, `\n${RHL}`]);
    expect(lines).toEqual([EVT, BOOT, RHL].map((l) => l.trimEnd()));
  });

  it('drops 1 MB without a newline unbuffered, reports it once, and passes the next frame', async () => {
    const megabyte = Buffer.alloc(1 << 20, 'U');
    const chunks = Array.from({ length: 16 }, (_, i) => megabyte.subarray(i * 65_536, (i + 1) * 65_536));
    const { lines, overflows, handed } = await feed([...chunks, '\r\n', EVT]);
    expect(overflows).toEqual([1 << 20]);
    expect(lines).toEqual([EVT.trimEnd()]);
    // Readline only ever gets whole lines, so it holds nothing between chunks.
    expect(handed.every((chunk) => chunk.at(-1) === 0x0a)).toBe(true);
  });

  it('allows a line of exactly MAX_LINE_BYTES and drops one byte more', async () => {
    const { lines, overflows } = await feed([`${'a'.repeat(MAX_LINE_BYTES)}\r\n${'b'.repeat(MAX_LINE_BYTES + 1)}\r\n`]);
    expect(lines).toEqual(['a'.repeat(MAX_LINE_BYTES)]);
    expect(overflows).toEqual([MAX_LINE_BYTES + 1]);
  });
});
