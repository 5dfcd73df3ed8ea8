// The police POST itself (undici): keep-alive connections, a hard deadline,
// a capped answer. Plain JavaScript, because it also runs in the police-client
// worker thread, which has no TypeScript loader (under vitest neither would
// tsx's). Types: police-http.d.mts.
import { Agent, request } from 'undici';

/** A police answer is a small JSON object; more than this is not read. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** The failure class of an undici error: TIMEOUT, CONNECTION or HTTP_CLIENT, with a readable text. */
export function classifyPoliceError(err) {
  const text = `${err?.code ?? err?.name ?? 'error'}: ${err?.message ?? String(err)}`;
  const name = err?.name;
  const code = err?.code ?? '';
  if (name === 'TimeoutError' || name === 'AbortError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return { code: 'TIMEOUT', text };
  }
  if (/^(ECONN|EPIPE|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|UND_ERR_SOCKET|UND_ERR_CLOSED)/.test(code)) {
    return { code: 'CONNECTION', text };
  }
  return { code: 'HTTP_CLIENT', text };
}

async function readCapped(body) {
  const chunks = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) break;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** POSTs over one keep-alive agent; `post` rejects with the undici error, unclassified. */
export function createUndiciPoster({ connectionsPerOrigin }) {
  const agent = new Agent({ connections: connectionsPerOrigin, keepAliveTimeout: 30_000, pipelining: 1 });
  return {
    async post(url, body, headers, timeoutMs) {
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
    },
    // destroy, not close: close waits for in-flight requests, and shutdown has already given them their grace.
    close: () => agent.destroy(),
  };
}
