// A police endpoint that misbehaves on cue, over a real HTTP socket: each
// request takes the next step of a script (a status, a garbage answer, a
// reset connection, a hang), then the default answer. It records what it was
// sent, so tests can check order and idempotency keys.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';

/** Things a test started, stopped after it in reverse order. */
export function cleanupsAfterEach(): Array<() => Promise<unknown>> {
  const list: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of list.splice(0).reverse()) await c();
  });
  return list;
}

/** An endpoint stopped after the test. */
export async function startScriptedEndpoint(cleanups: Array<() => Promise<unknown>>, fallback?: Step): Promise<ScriptedEndpoint> {
  const e = new ScriptedEndpoint(fallback);
  await e.start();
  cleanups.push(() => e.stop());
  return e;
}

export type Step =
  | { status: number; body?: string }
  | { reset: true }
  | { hangMs: number };

export interface Seen {
  key: string;
  contentType: string;
  body: string;
  answered: number | 'reset' | 'hang';
}

export class ScriptedEndpoint {
  private server: Server | null = null;
  readonly seen: Seen[] = [];
  private script: Step[] = [];
  private timers = new Set<NodeJS.Timeout>();

  constructor(private fallback: Step = { status: 201, body: '{"caseId":"SCRIPTED-1"}' }) {}

  async start(port = 0): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.server = server;
    return this.url();
  }

  url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/alerts`;
  }

  /** Steps taken by the next requests, in order; after them, `always` (or the default answer). */
  play(steps: Step[], always?: Step): void {
    this.script = [...steps];
    if (always) this.fallback = always;
  }

  /** Keys of the requests answered 2xx, in the order they were answered. */
  delivered(): string[] {
    return this.seen.filter((s) => typeof s.answered === 'number' && s.answered < 300).map((s) => s.key);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const step = this.script.shift() ?? this.fallback;
      const seen: Seen = {
        key: String(req.headers['idempotency-key'] ?? ''), contentType: String(req.headers['content-type'] ?? ''),
        body: Buffer.concat(chunks).toString('utf8'), answered: 'reset',
      };
      this.seen.push(seen);
      if ('reset' in step) {
        req.socket.destroy();
        return;
      }
      if ('hangMs' in step) {
        seen.answered = 'hang';
        const t = setTimeout(() => res.writeHead(200).end('{}'), step.hangMs);
        this.timers.add(t);
        return;
      }
      seen.answered = step.status;
      res.writeHead(step.status, { 'content-type': 'application/json' }).end(step.body ?? '');
    });
  }
}
