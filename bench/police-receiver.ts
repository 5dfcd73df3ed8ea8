// The police end of the benchmarks: an HTTP endpoint that answers 201 at once
// and notes, per Idempotency-Key, when it first arrived (performance.now(),
// the same clock the simulated devices press by) and how often it came. It
// checks nothing else: it is a stopwatch, not the police simulator, whose
// signature checks and status callbacks would be measured along with the
// gateway. Both the gateway and the mosquitto baseline post to it. It runs on
// its own thread (police-receiver-worker.mjs), so its stamps do not wait for
// the simulated devices' work on this one.
import { Worker } from 'node:worker_threads';

type ReceiverReport = { port: number } | { key: string; at: number; first: true } | { key: string; at: number; first: false; attempt: number };

export class PoliceReceiver {
  private worker: Worker | null = null;
  /** First arrival per key, on this thread's performance.now() clock. */
  readonly firstAt = new Map<string, number>();
  requests = 0;
  /** Repeated keys by the `attempt` their body carried: 1 would be a double dispatch, 2+ a retry (e.g. after the gateway's per-attempt timeout). */
  readonly repeatsByAttempt = new Map<number, number>();
  private listener: ((key: string, at: number) => void) | null = null;

  /** Starts the server (police-receiver-worker.mjs, its own thread) and returns its URL. */
  async start(): Promise<string> {
    const worker = new Worker(new URL('./police-receiver-worker.mjs', import.meta.url));
    this.worker = worker;
    const port = await new Promise<number>((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', (msg: ReceiverReport) => {
        if ('port' in msg) resolve(msg.port);
        else this.note(msg);
      });
    });
    return `http://127.0.0.1:${port}/alerts`;
  }

  private note(msg: Exclude<ReceiverReport, { port: number }>): void {
    this.requests++;
    if (msg.first) {
      // The worker's absolute stamp, on the clock the simulated devices press by.
      const at = msg.at - performance.timeOrigin;
      this.firstAt.set(msg.key, at);
      this.listener?.(msg.key, at);
    } else {
      this.repeatsByAttempt.set(msg.attempt, (this.repeatsByAttempt.get(msg.attempt) ?? 0) + 1);
    }
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
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('stop');
    await exited;
  }
}
