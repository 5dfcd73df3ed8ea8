// The line-length cap in front of the readline parser. Readline buffers an
// unterminated line without limit (50 MB without a newline blocked the event
// loop for 15 s), so it is handed only whole lines of at most MAX_LINE_BYTES:
// a babbling dongle costs a counter, not a frozen gateway.
import { Transform, type TransformCallback } from 'node:stream';
import { createLineSplitter, MAX_LINE_BYTES, type LineSplitter } from '../../protocol/index.ts';

export class LineCap extends Transform {
  private readonly splitter: LineSplitter;

  /** `onOverflow` hears of each over-long line once, when its newline arrives, with the bytes dropped. */
  constructor(private readonly onOverflow: (droppedBytes: number) => void, maxBytes = MAX_LINE_BYTES) {
    super();
    this.splitter = createLineSplitter(maxBytes);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let lines = '';
    for (const out of this.splitter.push(chunk)) {
      if ('line' in out) lines += `${out.line}\n`;
      else this.onOverflow(out.overflow);
    }
    // One push per chunk, not per line: a chunk of many short frames stays one buffer downstream.
    if (lines !== '') this.push(Buffer.from(lines, 'latin1'));
    done();
  }
}
