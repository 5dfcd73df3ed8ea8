// The police receiver's HTTP server, on a thread of its own: the bench's main
// thread also runs thousands of simulated devices, and a receipt stamped there
// would wait behind their work (its event loop lags by up to tens of ms under
// load). Each request is stamped here, as its headers arrive, on the absolute
// clock (timeOrigin + now), and reported to the main thread.
import { createServer } from 'node:http';
import { parentPort } from 'node:worker_threads';

const seen = new Set();
const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const at = performance.timeOrigin + performance.now();
  const key = String(req.headers['idempotency-key'] ?? '');
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (!seen.has(key)) {
      seen.add(key);
      parentPort.postMessage({ key, at, first: true });
    } else {
      parentPort.postMessage({ key, at, first: false, attempt: attemptOf(Buffer.concat(chunks)) });
    }
    res.writeHead(201, { 'content-type': 'application/json' }).end('{"caseId":"BENCH"}');
  });
});

function attemptOf(body) {
  try {
    return Number(JSON.parse(body.toString('utf8')).attempt) || 0;
  } catch {
    // Not JSON (the baseline forwarder posts the device's event): attempt unknown, 0.
    return 0;
  }
}

parentPort.on('message', (msg) => {
  if (msg === 'stop') {
    server.closeAllConnections();
    server.close(() => parentPort.close());
  }
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
