// A stand-in for a police endpoint: verifies the signature, checks the body
// against the contract (JSON or CAP 1.2), records each alert once per
// Idempotency-Key and answers with a case id. Latency and failures can be
// injected (also at run time via POST /control) to rehearse outages. With a
// status script it also calls the gateway back, like a real PSAP reporting
// "accepted", "dispatched", "arrived".
import { request } from 'undici';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  CAP_CONTENT_TYPE, describeIssues, IDEMPOTENCY_HEADER, PoliceAlertBody, SIGNATURE_HEADER, signBody, verifySignature,
  type PoliceStatusUpdate,
} from '../../protocol/index.ts';

const MAX_BODY_BYTES = 1024 * 1024;

export const PoliceSimBehaviour = z.strictObject({
  latencyMs: z.int().min(0).max(600_000).default(0),
  failRate: z.number().min(0).max(1).default(0),
  failStatus: z.int().min(300).max(599).default(503),
});
export type PoliceSimBehaviour = z.infer<typeof PoliceSimBehaviour>;

/** A status the simulated police report back, this long after they first received the alert. */
export interface ScriptedStatus {
  status: PoliceStatusUpdate['status'];
  afterMs: number;
}

/** What a demo PSAP does with a panic: takes it at once, sends a car, the car arrives. */
export const DEMO_STATUS_SCRIPT: readonly ScriptedStatus[] = [
  { status: 'accepted', afterMs: 1000 },
  { status: 'dispatched', afterMs: 4000 },
  { status: 'arrived', afterMs: 90_000 },
];

/** Pending scripted callbacks beyond this are not scheduled (a burst must not grow the simulator without end). */
const MAX_PENDING_CALLBACKS = 10_000;
const CALLBACK_TIMEOUT_MS = 5000;

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
  /** Attempt numbers as sent (JSON); a CAP retry is the identical message, so it adds 0. */
  attempts: number[];
  format: 'json' | 'cap';
  /** The JSON body; absent for CAP. */
  body?: PoliceAlertBody;
  /** The CAP XML as received. */
  cap?: string;
}

export interface PoliceSimStats {
  requests: number;
  delivered: number;
  duplicates: number;
  badSignature: number;
  badBody: number;
  injectedFailures: number;
  callbacksSent: number;
  callbacksFailed: number;
  callbacksDropped: number;
}

export class PoliceSim {
  private server: Server | null = null;
  private behaviour: PoliceSimBehaviour;
  private readonly byKey = new Map<string, ReceivedAlert>();
  private readonly counts: PoliceSimStats = {
    requests: 0, delivered: 0, duplicates: 0, badSignature: 0, badBody: 0, injectedFailures: 0, callbacksSent: 0, callbacksFailed: 0, callbacksDropped: 0,
  };
  private statusScript: { url: string; steps: readonly ScriptedStatus[] } | null = null;
  private readonly callbackTimers = new Set<NodeJS.Timeout>();

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

  /** From now on, report each new alert's progress to `url` (the gateway's /api/police/status) per `steps`. */
  scriptStatus(url: string, steps: readonly ScriptedStatus[] = DEMO_STATUS_SCRIPT): void {
    this.statusScript = { url, steps };
  }

  /** Sends one signed status callback, as a PSAP would. */
  async reportStatus(url: string, update: Omit<PoliceStatusUpdate, 'sentAt'> & { sentAt?: string }): Promise<{ status: number; json: unknown }> {
    const body = JSON.stringify({ sentAt: new Date().toISOString(), ...update });
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(this.opts.secret, body) },
      body,
      signal: AbortSignal.timeout(CALLBACK_TIMEOUT_MS),
    });
    const text = await res.body.text();
    return { status: res.statusCode, json: safeJson(text) ?? text };
  }

  async stop(): Promise<void> {
    for (const t of this.callbackTimers) clearTimeout(t);
    this.callbackTimers.clear();
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
    const isCap = (header(req, 'content-type') ?? '').startsWith(CAP_CONTENT_TYPE);
    const parsed = isCap ? parseCap(raw) : parseAlert(raw);
    if (!parsed.ok) {
      this.counts.badBody++;
      return send(res, 400, { error: 'BAD_BODY', message: parsed.message, field: parsed.field });
    }
    const key = header(req, IDEMPOTENCY_HEADER) ?? '';
    if (key !== parsed.alertId) {
      this.counts.badBody++;
      return send(res, 400, { error: 'BAD_IDEMPOTENCY_KEY', message: 'Idempotency-Key must equal the alert id', field: 'Idempotency-Key' });
    }
    const known = this.byKey.get(key);
    if (known) {
      this.counts.duplicates++;
      if (parsed.body) known.attempts.push(parsed.body.attempt);
      return send(res, 200, { caseId: known.caseId, duplicate: true });
    }
    const caseId = `SIM-${randomBytes(4).toString('hex').toUpperCase()}`;
    this.byKey.set(key, {
      caseId, idempotencyKey: key, receivedAt: Date.now(), attempts: parsed.body ? [parsed.body.attempt] : [],
      format: isCap ? 'cap' : 'json', ...(parsed.body ? { body: parsed.body } : { cap: raw }),
    });
    this.counts.delivered++;
    this.opts.log.info({ caseId, alertId: key, format: isCap ? 'cap' : 'json' }, `POLICE-SIM received ${parsed.summary}`);
    send(res, 201, { caseId });
    this.scheduleStatusReports(key, caseId);
  }

  private scheduleStatusReports(alertId: string, caseId: string): void {
    if (!this.statusScript) return;
    const { url, steps } = this.statusScript;
    for (const { status, afterMs } of steps) {
      if (this.callbackTimers.size >= MAX_PENDING_CALLBACKS) {
        this.counts.callbacksDropped++;
        continue;
      }
      const timer = setTimeout(() => {
        this.callbackTimers.delete(timer);
        this.reportStatus(url, { alertId, status, caseId, ...(status === 'dispatched' ? { unit: 'SIM-PATROL-1' } : {}) }).then(
          ({ status: code }) => (code < 300 ? this.counts.callbacksSent++ : this.counts.callbacksFailed++),
          () => this.counts.callbacksFailed++,
        );
      }, afterMs);
      timer.unref();
      this.callbackTimers.add(timer);
    }
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

type ParsedAlert = { ok: true; alertId: string; summary: string; body?: PoliceAlertBody } | { ok: false; message: string; field?: string };

function parseAlert(raw: string): ParsedAlert {
  const result = PoliceAlertBody.safeParse(safeJson(raw));
  if (!result.success) return { ok: false, ...describeIssues(result.error) };
  const { alertId, type, site } = result.data;
  return { ok: true, alertId, body: result.data, summary: `${type.toUpperCase()} at ${site.name}, ${site.address} (tel ${site.phone})` };
}

/** Not a CAP parser: enough to file the message by its alert id, as a PSAP's intake would. The XSD test checks the rest. */
function parseCap(raw: string): ParsedAlert {
  const alertId = /<identifier>([^<]{1,200})<\/identifier>/.exec(raw)?.[1];
  if (!raw.includes('urn:oasis:names:tc:emergency:cap:1.2') || !alertId) {
    return { ok: false, message: 'not a CAP 1.2 alert with an identifier', field: 'identifier' };
  }
  return { ok: true, alertId, summary: /<headline>([^<]{1,200})<\/headline>/.exec(raw)?.[1] ?? `CAP alert ${alertId}` };
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
