// Docker HEALTHCHECK: GET /health on this container; exit 0 on 200, 1 otherwise.
// Uses the same PORT and HOST variables as server.js.

import http from 'node:http';

const port = process.env.PORT || '8082';
const configured = process.env.HOST || '0.0.0.0';
// A wildcard listener is reachable on loopback; a specific address only on itself.
const host = configured === '0.0.0.0' || configured === '::' ? '127.0.0.1' : configured;

const req = http.get({ host, port, path: '/health', timeout: 2_000 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (err) => {
  process.stderr.write(`healthcheck: ${err.message}\n`);
  process.exit(1);
});
