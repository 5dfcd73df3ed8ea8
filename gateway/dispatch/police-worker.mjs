// The police-client worker thread: does the POSTs the main thread asks for, so
// undici's request building, socket I/O and answer parsing take no time from
// the thread that runs the broker and the store. Messages: see police-client.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { classifyPoliceError, createUndiciPoster } from './police-http.mjs';

const poster = createUndiciPoster({ connectionsPerOrigin: workerData.connectionsPerOrigin });

parentPort.on('message', (msg) => {
  if (msg.close) {
    void poster.close().finally(() => parentPort.close());
    return;
  }
  const { id, url, body, headers, timeoutMs } = msg;
  poster.post(url, body, headers, timeoutMs).then(
    (answer) => parentPort.postMessage({ id, ok: true, status: answer.status, body: answer.body }),
    (err) => parentPort.postMessage({ id, ok: false, ...classifyPoliceError(err) }),
  );
});
parentPort.postMessage({ ready: true });
