// Graceful shutdown: stop accepting, let in-flight requests finish, close idle keep-alive connections.

/** Upper bound on the drain (docs/echo-contract.md: "Bound the drain at 30 s"). */
export const DRAIN_TIMEOUT_MS = 30_000;

/**
 * Stops accepting connections and waits for the open ones to finish.
 * Idle keep-alive connections are closed now; busy ones answer with `connection: close` and then close.
 *
 * @param {import('node:http').Server} server
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<boolean>} true once drained; false if `timeoutMs` passed first (the remaining connections are then destroyed)
 */
export function drain(server, { timeoutMs = DRAIN_TIMEOUT_MS } = {}) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.closeAllConnections();
      resolve(false);
    }, timeoutMs);
    // The timer alone must not keep the process alive.
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve(true);
    });
    // server.close() already closes the connections idle right now; connections that become idle
    // later are closed after their response, which carries `connection: close` while draining.
    server.closeIdleConnections();
  });
}

/**
 * On the first SIGTERM or SIGINT: drain, then call `exit(0)` (or `exit(1)` if the drain timed out).
 * Later signals are only logged: `npm start` forwards the terminal's SIGINT, so Ctrl-C arrives twice.
 *
 * @param {import('node:http').Server} server
 * @param {{timeoutMs?: number, log?: (line: string) => void, exit?: (code: number) => void, signals?: string[]}} [options]
 */
export function installSignalHandlers(
  server,
  {
    timeoutMs = DRAIN_TIMEOUT_MS,
    log = (line) => process.stderr.write(`${line}\n`),
    exit = (code) => process.exit(code),
    signals = ['SIGTERM', 'SIGINT'],
  } = {},
) {
  let draining = false;
  const onSignal = (signal) => {
    if (draining) {
      log(`${signal} received again; still draining`);
      return;
    }
    draining = true;
    const done = drain(server, { timeoutMs });
    // Logged after the listener is closed: once this line is out, new connections are refused.
    log(`${signal} received; draining in-flight requests (at most ${timeoutMs / 1000} s)`);
    done.then((drained) => {
      if (drained) {
        log('drained; exiting');
        exit(0);
      } else {
        log(`drain timed out after ${timeoutMs / 1000} s; exiting`);
        exit(1);
      }
    });
  };
  for (const signal of signals) process.on(signal, onSignal);
  return () => {
    for (const signal of signals) process.off(signal, onSignal);
  };
}
