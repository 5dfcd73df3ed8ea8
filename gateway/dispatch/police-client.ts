// The HTTP client for police endpoints: keep-alive connections (undici) and a
// hard per-attempt deadline. Node's fetch would wait up to 300 s on a server
// that accepts and never answers; a panic alert cannot.
//
// The POSTs run on a worker thread (police-worker.mjs): at 1,000 alerts a
// second undici took about a sixth of the main thread, which also runs the
// broker and the store. Should the worker fail to start or die, the client
// carries on in this thread: slower, never stopped.
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { classifyPoliceError, createUndiciPoster, type HttpFailureCode, type PoliceAnswerRaw } from './police-http.mjs';

export type { PoliceAnswerRaw };
/**
 * CLIENT_DOWN: our client failed, not the endpoint — its worker died, hung or
 * was closed with the request in it. Whether the police got it is unknown; the
 * dispatcher retries it (same Idempotency-Key) without counting it against the
 * endpoint's breaker.
 */
export type PoliceFailureCode = HttpFailureCode | 'CLIENT_DOWN';

export class PoliceRequestError extends Error {
  constructor(readonly code: PoliceFailureCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

export interface PoliceHttpClient {
  post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<PoliceAnswerRaw>;
  close(): Promise<void>;
  /** Where the POSTs run, for /healthz; absent for test doubles. */
  readonly thread?: 'worker' | 'main';
}

/** How long the worker may take to come up, and past a request's own deadline to answer it, before it is given up. */
const WORKER_START_MS = 10_000;
const WORKER_GRACE_MS = 2_000;

type WorkerAnswer = { id: number } & ({ ok: true; status: number; body: string } | { ok: false; code: HttpFailureCode; text: string });

interface Pending {
  resolve: (answer: PoliceAnswerRaw) => void;
  reject: (err: PoliceRequestError) => void;
  timer: NodeJS.Timeout;
}

function inThread(connectionsPerOrigin: number): PoliceHttpClient {
  const poster = createUndiciPoster({ connectionsPerOrigin });
  return {
    thread: 'main',
    async post(url, body, headers, timeoutMs) {
      try {
        return await poster.post(url, body, headers, timeoutMs);
      } catch (err) {
        const { code, text } = classifyPoliceError(err);
        throw new PoliceRequestError(code, text, { cause: err });
      }
    },
    close: () => poster.close(),
  };
}

class WorkerPoliceClient implements PoliceHttpClient {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private fallback: PoliceHttpClient | null = null;
  private closing = false;
  private exited = false;

  constructor(
    private readonly worker: Worker,
    private readonly connectionsPerOrigin: number,
    private readonly log: Logger,
  ) {}

  get thread(): 'worker' | 'main' {
    return this.fallback ? 'main' : 'worker';
  }

  /** Resolves once the worker is ready; rejects if it fails, quits or takes too long (the caller then uses the in-thread client). */
  start(): Promise<void> {
    const { worker } = this;
    // Pending requests hold their own timers; an idle worker must not keep a stopping process alive.
    worker.unref();
    worker.on('message', (msg: WorkerAnswer) => this.answer(msg));
    return new Promise((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => reject(new Error(`police client worker not ready after ${WORKER_START_MS} ms`)), WORKER_START_MS);
      worker.once('message', () => {
        ready = true;
        clearTimeout(timer);
        resolve();
      });
      worker.on('error', (err) => {
        clearTimeout(timer);
        if (ready) this.fallBack(err);
        else reject(err);
      });
      worker.on('exit', (code) => {
        this.exited = true;
        clearTimeout(timer);
        if (ready) this.fallBack(new Error(`police client worker exited with code ${code}`));
        else reject(new Error(`police client worker exited with code ${code} before it was ready`));
      });
    });
  }

  post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<PoliceAnswerRaw> {
    if (this.fallback) return this.fallback.post(url, body, headers, timeoutMs);
    if (this.closing) return Promise.reject(new PoliceRequestError('CLIENT_DOWN', 'police client closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // The worker keeps the deadline itself; this one catches a worker that stopped answering: it is replaced.
      const timer = setTimeout(() => this.hung(id, timeoutMs + WORKER_GRACE_MS), timeoutMs + WORKER_GRACE_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.worker.postMessage({ id, url, body, headers, timeoutMs });
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.fallback) return this.fallback.close();
    if (!this.exited) {
      const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
      this.worker.ref();
      this.worker.postMessage({ close: true });
      const timer = setTimeout(() => void this.worker.terminate(), WORKER_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    this.failPending('police client closed');
  }

  private answer(msg: WorkerAnswer): void {
    const p = this.settle(msg.id);
    if (!p) return;
    if (msg.ok) p.resolve({ status: msg.status, body: msg.body });
    else p.reject(new PoliceRequestError(msg.code, msg.text));
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    return p;
  }

  /** No answer, not even the worker's own timeout: the worker is stuck. Ended, it is replaced by the in-thread client (exit → fallBack). */
  private hung(id: number, waitedMs: number): void {
    this.settle(id)?.reject(new PoliceRequestError('CLIENT_DOWN', `police client worker gave no answer within ${waitedMs} ms`));
    if (!this.closing && !this.fallback) {
      this.log.error({ code: 'POLICE_WORKER_DOWN', waitedMs }, 'police client worker stopped answering: ending it');
      void this.worker.terminate();
    }
  }

  private failPending(reason: string): void {
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(new PoliceRequestError('CLIENT_DOWN', reason));
  }

  private fallBack(err: Error): void {
    if (this.closing || this.fallback) return;
    this.log.error({ err, code: 'POLICE_WORKER_DOWN' }, 'police client worker failed: POSTs now run on the main thread');
    this.fallback = inThread(this.connectionsPerOrigin);
    // Whether these reached the police is unknown: they are retried with the same Idempotency-Key.
    this.failPending('police client worker failed mid-request');
  }
}

/** The police client, on its worker thread if that starts, else in this thread. */
export async function startPoliceClient(opts: { connectionsPerOrigin: number; log: Logger; /** Tests only: a worker script that misbehaves. */ workerUrl?: URL }): Promise<PoliceHttpClient> {
  const worker = new Worker(opts.workerUrl ?? new URL('./police-worker.mjs', import.meta.url), { workerData: { connectionsPerOrigin: opts.connectionsPerOrigin } });
  const client = new WorkerPoliceClient(worker, opts.connectionsPerOrigin, opts.log);
  try {
    await client.start();
    return client;
  } catch (err) {
    opts.log.error({ err, code: 'POLICE_WORKER_DOWN' }, 'police client worker did not start: POSTs run on the main thread');
    void worker.terminate();
    return inThread(opts.connectionsPerOrigin);
  }
}
