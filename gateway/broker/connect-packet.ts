// mqtt-packet's parser keeps the whole CONNECT packet as its `settings` for
// the life of the connection (lib/parser.js, `_parseConnect`), though it only
// reads two fields of it afterwards: with it stay the device's secret (a
// view of the chunk the CONNECT came in), its username and its will. Once the
// session is ready, aedes has taken what it needs (id, will, keepalive), so
// the parser keeps just those two fields: a few hundred bytes less per
// connection, and no device secret held in memory while it is connected.
import type { Client } from 'aedes';

interface ParserSettings {
  protocolVersion?: number;
  bridgeMode?: boolean;
}

export function forgetConnectPacket(client: Client): void {
  const parser = (client as unknown as { _parser?: { settings?: ParserSettings } })._parser;
  if (!parser?.settings) return;
  const { protocolVersion, bridgeMode } = parser.settings;
  parser.settings = { protocolVersion, bridgeMode };
}
