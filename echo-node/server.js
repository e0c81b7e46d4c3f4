// Entry point: `node server.js` (or `npm start`). Configuration from the environment, see README.md.

import { ConfigError, parseConfig } from './src/config.js';
import { createServer } from './src/app.js';
import { installSignalHandlers } from './src/shutdown.js';

let config;
try {
  config = parseConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`echo-node: invalid configuration: ${err.message}\n`);
  process.exit(2);
}

const server = createServer(config);

server.once('error', (err) => {
  process.stderr.write(`${config.serviceName}: cannot listen on ${config.host}:${config.port}: ${err.message}\n`);
  process.exit(1);
});

installSignalHandlers(server, {
  log: (line) => process.stderr.write(`${config.serviceName}: ${line}\n`),
});

server.listen(config.port, config.host, () => {
  const { port } = server.address();
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  // The one line on stdout (stdout writes are synchronous for files and pipes on Linux).
  process.stdout.write(`${config.serviceName} listening on ${host}:${port}\n`);
});
