// A stand-in for a police endpoint: verifies the signature, checks the body
// against the contract, records each alert once per Idempotency-Key and
// answers with a case id. Latency and failures can be injected (also at run
// time via POST /control) to rehearse outages.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { z } from 'zod';
import { describeIssues, IDEMPOTENCY_HEADER, PoliceAlertBody, SIGNATURE_HEADER, verifySignature } from '../../protocol/index.ts';

const MAX_BODY_BYTES = 1024 * 1024;

export const PoliceSimBehaviour = z.strictObject({
  latencyMs: z.int().min(0).max(600_000).default(0),
  failRate: z.number().min(0).max(1).default(0),
  failStatus: z.int().min(300).max(599).default(503),
});
export type PoliceSimBehaviour = z.infer<typeof PoliceSimBehaviour>;

export interface PoliceSimOptions extends Partial<PoliceSimBehaviour> {
  host: string;
  port: number;
  secret: string;
  log: Logger;
  random?: () => number;
}

export interface ReceivedAlert {
  caseId: string;
  idempotencyKey: string;
  receivedAt: number;
  attempts: number[];
  body: PoliceAlertBody;
}

export interface PoliceSimStats {
  requests: number;
  delivered: number;
  duplicates: number;
  badSignature: number;
  badBody: number;
  injectedFailures: number;
}

export class PoliceSim {
  private server: Server | null = null;
  private behaviour: PoliceSimBehaviour;
  private readonly byKey = new Map<string, ReceivedAlert>();
  private readonly counts: PoliceSimStats = { requests: 0, delivered: 0, duplicates: 0, badSignature: 0, badBody: 0, injectedFailures: 0 };

  constructor(private readonly opts: PoliceSimOptions) {
    this.behaviour = PoliceSimBehaviour.parse({ latencyMs: opts.latencyMs, failRate: opts.failRate, failStatus: opts.failStatus });
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.route(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.server = server;
  }

  url(): string {
    const { port } = this.server!.address() as AddressInfo;
    const host = this.opts.host === '0.0.0.0' ? '127.0.0.1' : this.opts.host;
    return `http://${host}:${port}/alerts`;
  }

  received(): ReceivedAlert[] {
    return [...this.byKey.values()];
  }

  stats(): PoliceSimStats {
    return { ...this.counts };
  }

  setBehaviour(change: Partial<PoliceSimBehaviour>): PoliceSimBehaviour {
    this.behaviour = PoliceSimBehaviour.parse({ ...this.behaviour, ...change });
    return this.behaviour;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const body = await readBody(req);
      if (req.method === 'POST' && req.url === '/alerts') return await this.receive(req, body, res);
      if (req.method === 'GET' && req.url === '/alerts') return send(res, 200, { stats: this.stats(), alerts: this.received() });
      if (req.method === 'POST' && req.url === '/control') return this.control(body, res);
      send(res, 404, { error: 'NOT_FOUND', message: 'POST /alerts, GET /alerts, POST /control' });
    } catch (err) {
      send(res, 413, { error: 'BODY_TOO_LARGE', message: (err as Error).message });
    }
  }

  private async receive(req: IncomingMessage, raw: string, res: ServerResponse): Promise<void> {
    this.counts.requests++;
    const { latencyMs, failRate, failStatus } = this.behaviour;
    if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
    if (failRate > 0 && (this.opts.random ?? Math.random)() < failRate) {
      this.counts.injectedFailures++;
      return send(res, failStatus, { error: 'INJECTED_FAILURE', message: 'police-sim failure injection' });
    }
    if (!verifySignature(this.opts.secret, raw, header(req, SIGNATURE_HEADER))) {
      this.counts.badSignature++;
      this.opts.log.warn({ code: 'BAD_SIGNATURE' }, 'police-sim: request with a bad signature refused');
      return send(res, 401, { error: 'BAD_SIGNATURE', message: `${SIGNATURE_HEADER} does not match the body` });
    }
    const parsed = parseAlert(raw);
    if (!parsed.ok) {
      this.counts.badBody++;
      return send(res, 400, { error: 'BAD_BODY', message: parsed.message, field: parsed.field });
    }
    const key = header(req, IDEMPOTENCY_HEADER) ?? '';
    if (key !== parsed.body.alertId) {
      this.counts.badBody++;
      return send(res, 400, { error: 'BAD_IDEMPOTENCY_KEY', message: 'Idempotency-Key must equal alertId', field: 'Idempotency-Key' });
    }
    const known = this.byKey.get(key);
    if (known) {
      this.counts.duplicates++;
      known.attempts.push(parsed.body.attempt);
      return send(res, 200, { caseId: known.caseId, duplicate: true });
    }
    const caseId = `SIM-${randomBytes(4).toString('hex').toUpperCase()}`;
    this.byKey.set(key, { caseId, idempotencyKey: key, receivedAt: Date.now(), attempts: [parsed.body.attempt], body: parsed.body });
    this.counts.delivered++;
    const { site } = parsed.body;
    this.opts.log.info({ caseId, alertId: key, type: parsed.body.type, site: site.name, address: site.address, phone: site.phone, station: site.policeStation },
      `POLICE-SIM received ${parsed.body.type.toUpperCase()} at ${site.name}, ${site.address} (tel ${site.phone})`);
    send(res, 201, { caseId });
  }

  private control(raw: string, res: ServerResponse): void {
    const parsed = PoliceSimBehaviour.partial().strict().safeParse(safeJson(raw));
    if (!parsed.success) return send(res, 400, { error: 'BAD_BODY', ...describeIssues(parsed.error) });
    send(res, 200, this.setBehaviour(parsed.data));
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function safeJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

function parseAlert(raw: string): { ok: true; body: PoliceAlertBody } | { ok: false; message: string; field?: string } {
  const result = PoliceAlertBody.safeParse(safeJson(raw));
  return result.success ? { ok: true, body: result.data } : { ok: false, ...describeIssues(result.error) };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.destroy();
        reject(new Error(`body over ${MAX_BODY_BYTES} bytes`));
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
