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
  private listener: ((key: string, at: number) => void) | null = null;

  async start(): Promise<string> {
    const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      // Timed when the headers are in: the body of an alert is a few hundred bytes in the same segment.
      const at = performance.now();
      const key = String(req.headers['idempotency-key'] ?? '');
      req.resume();
      req.on('end', () => {
        this.requests++;
        if (!this.firstAt.has(key)) {
          this.firstAt.set(key, at);
          this.listener?.(key, at);
        }
        res.writeHead(201, { 'content-type': 'application/json' }).end('{"caseId":"BENCH"}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`;
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
