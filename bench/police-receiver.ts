// The police end of the benchmarks: an HTTP endpoint that answers 201 at once
// and notes, per Idempotency-Key, when it first arrived (performance.now(),
// the same clock the simulated devices press by) and how often it came. It
// checks nothing else: it is a stopwatch, not the police simulator, whose
// signature checks and status callbacks would be measured along with the
// gateway. Both the gateway and the mosquitto baseline post to it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export class PoliceReceiver {
  private server: Server | null = null;
  /** First arrival per key. */
  readonly firstAt = new Map<string, number>();
  requests = 0;
  /** Repeated keys by the `attempt` their body carried: 1 would be a double dispatch, 2+ a retry (e.g. after the gateway's per-attempt timeout). */
  readonly repeatsByAttempt = new Map<number, number>();
  private listener: ((key: string, at: number) => void) | null = null;

  async start(): Promise<string> {
    const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      // Timed when the headers are in: the body of an alert is a few hundred bytes in the same segment.
      const at = performance.now();
      const key = String(req.headers['idempotency-key'] ?? '');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests++;
        if (!this.firstAt.has(key)) {
          this.firstAt.set(key, at);
          this.listener?.(key, at);
        } else {
          this.noteRepeat(Buffer.concat(chunks));
        }
        res.writeHead(201, { 'content-type': 'application/json' }).end('{"caseId":"BENCH"}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`;
  }

  private noteRepeat(body: Buffer): void {
    let attempt = 0;
    try {
      attempt = Number((JSON.parse(body.toString('utf8')) as { attempt?: unknown }).attempt) || 0;
    } catch {
      // Not JSON (the baseline forwarder posts the device's event): attempt unknown, 0.
    }
    this.repeatsByAttempt.set(attempt, (this.repeatsByAttempt.get(attempt) ?? 0) + 1);
  }

  /** Called once per key, at its first arrival. */
  onFirst(listener: (key: string, at: number) => void): void {
    this.listener = listener;
  }

  get distinct(): number {
    return this.firstAt.size;
  }

  /** Requests that repeated a key already received. */
  get duplicates(): number {
    return this.requests - this.firstAt.size;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
