// The HTTP client for police endpoints: keep-alive connections (undici) and a
// hard per-attempt deadline. Node's fetch would wait up to 300 s on a server
// that accepts and never answers; a panic alert cannot.
import { Agent, request } from 'undici';

/** A police answer is a small JSON object; more than this is not read. */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface PoliceAnswerRaw {
  status: number;
  body: string;
}

export type PoliceFailureCode = 'TIMEOUT' | 'CONNECTION' | 'HTTP_CLIENT';

export class PoliceRequestError extends Error {
  constructor(readonly code: PoliceFailureCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

export interface PoliceHttpClient {
  post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<PoliceAnswerRaw>;
  close(): Promise<void>;
}

function classify(err: unknown): PoliceRequestError {
  const e = err as { name?: string; code?: string; message?: string };
  const text = `${e.code ?? e.name ?? 'error'}: ${e.message ?? String(err)}`;
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT' || e.code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new PoliceRequestError('TIMEOUT', text, { cause: err });
  }
  if (/^(ECONN|EPIPE|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|UND_ERR_SOCKET|UND_ERR_CLOSED)/.test(e.code ?? '')) {
    return new PoliceRequestError('CONNECTION', text, { cause: err });
  }
  return new PoliceRequestError('HTTP_CLIENT', text, { cause: err });
}

async function readCapped(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) break;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function createPoliceClient(opts: { connectionsPerOrigin: number }): PoliceHttpClient {
  const agent = new Agent({ connections: opts.connectionsPerOrigin, keepAliveTimeout: 30_000, pipelining: 1 });
  return {
    async post(url, body, headers, timeoutMs) {
      try {
        const res = await request(url, {
          dispatcher: agent,
          method: 'POST',
          headers,
          body,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          signal: AbortSignal.timeout(timeoutMs),
        });
        return { status: res.statusCode, body: await readCapped(res.body) };
      } catch (err) {
        throw classify(err);
      }
    },
    async close() {
      // destroy, not close: close waits for in-flight requests, and shutdown has already given them their grace.
      await agent.destroy();
    },
  };
}
