// Environment parsing for echo-node (docs/echo-contract.md, "Environment").

export const DEFAULT_PORT = 8082;
export const DEFAULT_HOST = '0.0.0.0';
export const DEFAULT_SERVICE_NAME = 'echo-node';
/** Largest added latency accepted, from ECHO_DELAY_MS or from `POST /_chaos {"delay_ms":…}`. */
export const MAX_DELAY_MS = 600_000;

/** A bad environment value; server.js prints the message to stderr and exits with code 2. */
export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Parses the service's environment variables.
 * An unset or empty variable takes its default.
 *
 * @param {Record<string, string | undefined>} env usually `process.env`
 * @returns {{port: number, host: string, serviceName: string, delayMs: number, chaos: boolean}}
 * @throws {ConfigError} naming the variable and the bad value
 */
export function parseConfig(env) {
  const get = (key) => {
    const value = env[key];
    return value === undefined || value === '' ? undefined : value;
  };

  const port = parseInteger('PORT', get('PORT'), DEFAULT_PORT, 0, 65_535);
  const host = get('HOST') ?? DEFAULT_HOST;
  if (/\s/.test(host)) {
    throw new ConfigError(`HOST must be an IP address or host name, got ${JSON.stringify(host)}`);
  }

  const serviceName = get('SERVICE_NAME') ?? DEFAULT_SERVICE_NAME;
  // The name goes into the x-echo-service header: visible ASCII, inner spaces allowed.
  if (!/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(serviceName) || serviceName.length > 200) {
    throw new ConfigError(
      `SERVICE_NAME must be 1 to 200 printable ASCII characters without leading or trailing spaces, got ${JSON.stringify(serviceName)}`,
    );
  }

  const delayMs = parseInteger('ECHO_DELAY_MS', get('ECHO_DELAY_MS'), 0, 0, MAX_DELAY_MS);

  // Contract: "1" enables the chaos routes; anything else means off.
  const chaos = env.ECHO_CHAOS === '1';

  return { port, host, serviceName, delayMs, chaos };
}

function parseInteger(key, raw, fallback, min, max) {
  if (raw === undefined) return fallback;
  if (!/^[0-9]+$/.test(raw)) {
    throw new ConfigError(`${key} must be an integer in ${min}..=${max}, got ${JSON.stringify(raw)}`);
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${key} must be an integer in ${min}..=${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
