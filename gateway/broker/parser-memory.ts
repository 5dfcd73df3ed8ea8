// Memory an aedes connection's mqtt-packet parser holds for no use, per
// connection (10,000 devices: 10,000 parsers).
//
// - Its byte buffer is a `bl` BufferListStream, a whole Duplex stream (read
//   and write state, listeners) though the parser only appends, reads and
//   consumes: the plain BufferList of the same package does all of that.
// - It keeps the whole CONNECT packet as its `settings` for the life of the
//   connection (lib/parser.js, `_parseConnect`) and reads only two fields of
//   it afterwards: with it stay the device's secret (a view of the chunk the
//   CONNECT came in), its username and its will.
import type { Client } from 'aedes';
import { BufferList } from 'bl';

interface ParserInternals {
  _list?: { length: number };
  settings?: { protocolVersion?: number; bridgeMode?: boolean };
}

const parserOf = (client: Client) => (client as unknown as { _parser?: ParserInternals })._parser;

/** Right after aedes made the client, before it has read anything (an error resets the parser to a stream again, and the connection closes). */
export function plainParserBuffer(client: Client): void {
  const parser = parserOf(client);
  if (parser?._list && parser._list.length === 0) parser._list = new BufferList();
}

/** Once the session is ready: aedes has taken what it needs (id, will, keepalive) from the CONNECT. */
export function forgetConnectPacket(client: Client): void {
  const parser = parserOf(client);
  if (!parser?.settings) return;
  const { protocolVersion, bridgeMode } = parser.settings;
  parser.settings = { protocolVersion, bridgeMode };
}
