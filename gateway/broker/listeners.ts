// Listeners that hand MQTT byte streams to the broker: plain TCP, TLS, and
// MQTT over WebSocket (ws:// or wss://). Each function resolves once its
// server listens. Nothing here knows aedes: the broker's onStream decides
// what to do with a stream (rate-limit by address, then aedes.handle).
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, createServer as createTlsServer, Server as TlsServer, type TlsOptions } from 'node:tls';
import { WebSocketServer, createWebSocketStream } from 'ws';

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss';

export interface StreamMeta {
  /** IPv4 clients of a dual-stack listener appear as plain IPv4, so one device has one key across listeners. */
  remoteAddress: string;
  transport: Transport;
}

/** req is the HTTP upgrade request of a WebSocket stream; aedes.handle(stream, req) takes it as is. */
export type OnStream = (stream: Duplex, meta: StreamMeta, req?: IncomingMessage) => void;

/**
 * Failures that never reach aedes: accept errors, TLS handshakes, WebSocket
 * upgrades. remoteAddress is absent for listener-level errors and for a peer
 * that had already reset the connection (a client refusing our certificate).
 */
export type OnListenerError = (err: Error & { code?: string }, meta: { transport: Transport; remoteAddress?: string }) => void;

export interface ListenerHandle {
  kind: Transport;
  /** The bound port (the real one when asked for port 0). */
  port(): number;
  /**
   * Stops accepting, destroys every connection still open, resolves once
   * the server has closed; repeat calls share the first call's promise.
   * Call it after aedes.close(): aedes then ends the clients it knows
   * (wills, clientDisconnect) and this reaps the sockets it never got to
   * know: before CONNECT, mid-handshake, before the WebSocket upgrade.
   */
  close(): Promise<void>;
}

export interface ListenOptions {
  host: string;
  port: number;
  /** Connections beyond this many open ones are dropped at accept. */
  maxConnections?: number;
  onError: OnListenerError;
}

/** PEM file paths, read once at start. */
export interface TlsFiles {
  cert: string;
  key: string;
  /** Trust anchors for client certificates. */
  ca?: string;
  /** Require a client certificate that chains to ca; a client without one is refused. */
  requestCert?: boolean;
}

export interface TlsListenOptions extends ListenOptions, TlsFiles {
  /** A client that has not finished the TLS handshake by then is disconnected. */
  handshakeTimeoutMs?: number;
}

export interface WebSocketListenOptions extends ListenOptions {
  /** Upgrades to any other path are refused with 400. */
  path?: string;
  /** Largest WebSocket message accepted; a bigger one closes the connection (1009). */
  maxPayload?: number;
  /** A connection that has not requested the upgrade by then (after TLS, for wss) is disconnected. */
  handshakeTimeoutMs?: number;
  /** Given: wss://, with the same TLS handshake timeout. */
  tls?: TlsFiles;
}

export class TlsFilesError extends Error {
  readonly code = 'TLS_FILES';
  constructor(message: string, readonly files: string[], options?: ErrorOptions) {
    super(message, options);
  }
}

export class UpgradeTimeoutError extends Error {
  readonly code = 'WS_UPGRADE_TIMEOUT';
}

// Same bound as aedes' connectTimeout: a client that has not spoken by then is not going to.
const HANDSHAKE_TIMEOUT_MS = 10_000;
// The gateway's packets are small JSON; 64 KiB is ample and caps what one peer can make us buffer.
const WS_MAX_PAYLOAD = 64 * 1024;
// 'mqtt' is the name MQTT 3.1.1 and 5 register; MQTT 3.1 clients (mqtt.js with protocolVersion 3) offer 'mqttv3.1'.
const WS_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

export function listenTcp(opts: ListenOptions, onStream: OnStream): Promise<ListenerHandle> {
  const server = createNetServer({ noDelay: true }, (socket) => handOver(socket, socket, 'tcp', onStream));
  return serve(server, 'tcp', opts).listen();
}

export async function listenTls(opts: TlsListenOptions, onStream: OnStream): Promise<ListenerHandle> {
  const server = createTlsServer(
    { ...(await tlsOptions(opts)), noDelay: true, handshakeTimeout: opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS },
    (socket) => handOver(socket, socket, 'tls', onStream),
  );
  const served = serve(server, 'tls', opts);
  endFailedHandshakes(server, served.report);
  return served.listen();
}

export async function listenWebSocket(opts: WebSocketListenOptions, onStream: OnStream): Promise<ListenerHandle> {
  const transport = opts.tls ? 'wss' : 'ws';
  const timeoutMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const refuse = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(426, { Upgrade: 'websocket', Connection: 'close', 'Content-Type': 'text/plain' }).end('MQTT over WebSocket only\n');
  };
  const server = opts.tls
    ? createHttpsServer({ ...(await tlsOptions(opts.tls)), noDelay: true, handshakeTimeout: timeoutMs }, refuse)
    : createHttpServer({ noDelay: true }, refuse);
  const served = serve(server, transport, opts);
  if (server instanceof TlsServer) endFailedHandshakes(server, served.report);

  // Node's own headersTimeout left both an idle connection and a half-sent
  // request open when tried (Node 20): without this they hold a socket forever.
  const upgradeTimers = new Map<Duplex, NodeJS.Timeout>();
  server.on(opts.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    upgradeTimers.set(socket, setTimeout(() => {
      served.report(new UpgradeTimeoutError(`no WebSocket upgrade within ${timeoutMs} ms`), socket);
      socket.destroy();
    }, timeoutMs));
    socket.once('close', () => {
      clearTimeout(upgradeTimers.get(socket));
      upgradeTimers.delete(socket);
    });
  });

  // noServer: with { server } ws re-emits the HTTP server's 'error' on
  // itself, which would throw for want of a listener.
  const wss = new WebSocketServer({
    noServer: true,
    path: opts.path ?? '/mqtt',
    maxPayload: opts.maxPayload ?? WS_MAX_PAYLOAD,
    clientTracking: false,
    handleProtocols: (offered) => WS_SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    clearTimeout(upgradeTimers.get(socket));
    wss.handleUpgrade(req, socket, head, (ws) => handOver(createWebSocketStream(ws), req.socket, transport, onStream, req));
  });
  return served.listen();
}

function endFailedHandshakes(server: TlsServer, report: (err: Error, socket: Socket) => void): void {
  // Node only reports a failed or timed-out handshake (handshakeTimeout
  // included): the socket stays open until someone destroys it. Prepended so
  // the address is read before https' own listener destroys the socket.
  server.prependListener('tlsClientError', (err, socket) => {
    report(err, socket);
    socket.destroy();
  });
}

function handOver(stream: Duplex, socket: Socket, transport: Transport, onStream: OnStream, req?: IncomingMessage): void {
  const remoteAddress = peerAddress(socket);
  // A peer that reset before we got here leaves no address and nothing to serve.
  if (remoteAddress === undefined) {
    stream.destroy();
    return;
  }
  onStream(stream, { remoteAddress, transport }, req);
}

function peerAddress(socket: Socket): string | undefined {
  const address = socket.remoteAddress;
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}

/** Tracks the server's raw sockets so close() can end them, and listens. */
function serve(server: Server, kind: Transport, opts: ListenOptions) {
  const open = new Set<Socket>();
  let closing: Promise<void> | null = null;
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  if (opts.maxConnections !== undefined) server.maxConnections = opts.maxConnections;

  // Sockets destroyed by close() fail their handshakes: that is shutdown, not a client problem.
  const report = (err: Error, socket?: Socket): void => {
    if (closing) return;
    const remoteAddress = socket && peerAddress(socket);
    opts.onError(err, remoteAddress === undefined ? { transport: kind } : { transport: kind, remoteAddress });
  };

  return {
    report,
    async listen(): Promise<ListenerHandle> {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port, opts.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => report(err));
      return {
        kind,
        port: () => (server.address() as AddressInfo | null)?.port ?? 0,
        close() {
          closing ??= new Promise<void>((resolve) => {
            server.close(() => resolve());
            for (const socket of open) socket.destroy();
          });
          return closing;
        },
      };
    },
  };
}

async function readPem(file: string, role: 'cert' | 'key' | 'ca'): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new TlsFilesError(`cannot read TLS ${role} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, [file], { cause: err });
  }
}

/** Reads and checks PEM files once at start: a bad file fails with TLS_FILES and its path. */
export async function tlsOptions(files: TlsFiles): Promise<TlsOptions> {
  const [cert, key, ca] = await Promise.all([
    readPem(files.cert, 'cert'),
    readPem(files.key, 'key'),
    files.ca === undefined ? undefined : readPem(files.ca, 'ca'),
  ]);
  const requestCert = files.requestCert ?? false;
  // Without a ca Node would check client certificates against the public roots: any web PKI client certificate would pass.
  if (requestCert && files.ca === undefined) throw new TlsFilesError('requestCert needs a ca file to check client certificates against', [files.cert]);
  const options: TlsOptions = { cert, key, ca, minVersion: 'TLSv1.2', requestCert, rejectUnauthorized: requestCert };
  const paths = [files.cert, files.key, ...(files.ca === undefined ? [] : [files.ca])];
  // Parsed here so that a bad PEM or a key that does not match the
  // certificate fails with our code and the paths, not deep inside createServer.
  try {
    createSecureContext(options);
  } catch (err) {
    throw new TlsFilesError(`TLS files ${paths.join(', ')} rejected: ${(err as Error).message}`, paths, { cause: err });
  }
  return options;
}
