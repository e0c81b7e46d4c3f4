// The echo service as an in-process `http.Server` (docs/echo-contract.md).
// server.js adds the environment, the startup line and signal handling on top.

import http from 'node:http';
import { DEFAULT_SERVICE_NAME, MAX_DELAY_MS } from './config.js';

/** Largest accepted request body; exactly this many bytes is still accepted. */
export const MAX_BODY_BYTES = 1_048_576;

/** How long a connection rejected with 413 keeps discarding the rest of the body before it is closed. */
export const DEFAULT_LINGER_MS = 5_000;

/**
 * Idle keep-alive connections stay open this long. Longer than the idle timeouts of common
 * connection pools (hyper 90 s), so a pooled connection is not closed under a proxy's feet.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 120_000;

const CHAOS_FIELDS = ['delay_ms', 'fail_rate', 'healthy'];

// fatal: invalid UTF-8 is invalid JSON (RFC 8259 §8.1). ignoreBOM: keep a leading BOM so JSON.parse rejects it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Default for `hooks.schedule`: run `fn` after `ms` without blocking the event loop; returns a cancel function. */
function scheduleWithTimer(ms, fn) {
  const timer = setTimeout(fn, ms);
  return () => clearTimeout(timer);
}

/**
 * Creates the echo server (not yet listening).
 *
 * @param {object} [config]
 * @param {string} [config.serviceName] value of `x-echo-service` and of `service` in /health (default echo-node)
 * @param {number} [config.delayMs] added latency per echo, also the initial chaos `delay_ms` (default 0)
 * @param {boolean} [config.chaos] enables the `/_chaos` routes (default false)
 * @param {object} [hooks] test seams
 * @param {(ms: number, fn: () => void) => () => void} [hooks.schedule] delays an echo; returns a cancel function
 * @param {() => number} [hooks.random] uniform in [0, 1), decides chaos failures (default Math.random)
 * @param {number} [hooks.lingerMs] see DEFAULT_LINGER_MS
 * @returns {http.Server}
 */
export function createServer(config = {}, hooks = {}) {
  const name = config.serviceName ?? DEFAULT_SERVICE_NAME;
  const chaosEnabled = config.chaos === true;
  const initialSettings = Object.freeze({ delay_ms: config.delayMs ?? 0, fail_rate: 0, healthy: true });
  let settings = initialSettings;

  const schedule = hooks.schedule ?? scheduleWithTimer;
  const random = hooks.random ?? Math.random;
  const lingerMs = hooks.lingerMs ?? DEFAULT_LINGER_MS;

  const server = http.createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS });
  server.on('request', (req, res) => handle(req, res, false));
  // Registering this listener stops node from sending `100 Continue` by itself: a request that
  // announces a body over the limit is answered 413 before the client sends it.
  server.on('checkContinue', (req, res) => handle(req, res, true));
  server.on('clientError', onClientError);
  return server;

  function handle(req, res, expectsContinue) {
    const path = pathOf(req.url);
    if (path === '/health') {
      if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
      return sendJson(
        res,
        settings.healthy ? 200 : 503,
        { status: settings.healthy ? 'ok' : 'unhealthy', service: name },
      );
    }
    if (chaosEnabled && path === '/_chaos') {
      switch (req.method) {
        case 'GET':
          return sendJson(res, 200, settings);
        case 'DELETE':
          settings = initialSettings;
          return sendJson(res, 200, settings);
        case 'POST':
          return readJsonBody(req, res, expectsContinue, (_raw, value) => updateChaos(res, value));
        default:
          return methodNotAllowed(res, 'GET, POST, DELETE');
      }
    }
    if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
    return readJsonBody(req, res, expectsContinue, (raw) => echo(res, raw));
  }

  function echo(res, raw) {
    const answer = () => {
      if (random() < settings.fail_rate) {
        sendJson(res, 500, { error: 'chaos: injected failure' });
      } else {
        send(res, 200, raw);
      }
    };
    const delayMs = settings.delay_ms;
    if (delayMs === 0) return answer();
    const cancel = schedule(delayMs, answer);
    // The client went away while we waited: drop the timer. ('close' also follows a normal answer; then this is a no-op.)
    res.once('close', cancel);
  }

  function updateChaos(res, value) {
    const result = parseChaosUpdate(value);
    if (result.error) return sendJson(res, 400, { error: result.error });
    settings = Object.freeze({ ...settings, ...result.update });
    return sendJson(res, 200, settings);
  }

  /**
   * Reads at most MAX_BODY_BYTES, validates it as JSON and calls `onJson(rawBytes, value)`.
   * Answers 413 (without buffering more than the limit) or 400 itself.
   */
  function readJsonBody(req, res, expectsContinue, onJson) {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) return tooLarge(req, res);
    if (expectsContinue) res.writeContinue();

    const chunks = [];
    let size = 0;
    const onData = (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.off('data', onData);
        req.off('end', onEnd);
        chunks.length = 0;
        // The stream stays in flowing mode without listeners: what still arrives is discarded.
        tooLarge(req, res);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      const raw = Buffer.concat(chunks, size);
      const parsed = parseJson(raw);
      if ('error' in parsed) return sendJson(res, 400, { error: `invalid JSON: ${parsed.error}` });
      return onJson(raw, parsed.value);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    // 'error' here means the client aborted the request; there is nobody left to answer.
    req.on('error', () => {});
  }

  function tooLarge(req, res) {
    if (req.socket) lingerOnClose(req.socket, lingerMs);
    sendJson(res, 413, { error: `body exceeds ${MAX_BODY_BYTES} bytes` }, { connection: 'close' });
  }

  function methodNotAllowed(res, allow) {
    sendJson(res, 405, { error: 'method not allowed' }, { allow });
  }

  function sendJson(res, status, value, extraHeaders) {
    send(res, status, Buffer.from(JSON.stringify(value)), extraHeaders);
  }

  function send(res, status, body, extraHeaders) {
    // The client is gone (the connection closed while we read or waited): nobody to answer.
    if (res.destroyed) return;
    const headers = {
      'content-type': 'application/json',
      'content-length': body.length,
      'x-echo-service': name,
      ...extraHeaders,
    };
    // Draining (server.close() was called): do not keep this connection for another request.
    if (!server.listening) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(body);
  }

  // Requests node's parser rejects never reach `handle`; answer them in the same style (JSON + x-echo-service).
  function onClientError(err, socket) {
    // `_httpMessage` is set while a response is pending on this socket: writing now would corrupt it.
    if (err.code === 'ECONNRESET' || !socket.writable || socket._httpMessage) {
      socket.destroy();
      return;
    }
    let status = 400;
    let message = `bad request: ${err.code ?? err.message}`;
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      message = 'request header fields too large';
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      message = 'request timeout';
    }
    const body = JSON.stringify({ error: message });
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
        'content-type: application/json\r\n' +
        `x-echo-service: ${name}\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        'connection: close\r\n\r\n' +
        body,
      () => socket.destroy(),
    );
  }
}

/**
 * `node:http` closes a `connection: close` socket with `socket.destroySoon()` as soon as the
 * response is flushed. If the client is still sending the body we refused, closing a socket with
 * unread input makes the kernel answer with a RST, and a client that writes its whole body before
 * reading never sees the 413. Like nginx's lingering close (and Go's closeWriteAndWait) this
 * sends FIN instead, keeps discarding input, and closes when the client closes or after `lingerMs`.
 * Nothing is buffered: node's parser drops the remaining body bytes.
 */
function lingerOnClose(socket, lingerMs) {
  socket.destroySoon = function lingeringDestroySoon() {
    if (this.writable) this.end();
    const timer = setTimeout(() => this.destroy(), lingerMs);
    this.once('close', () => clearTimeout(timer));
  };
}

/** The path of a request target, without the query; also accepts the absolute form. */
function pathOf(target) {
  if (target.startsWith('/')) {
    const query = target.indexOf('?');
    return query === -1 ? target : target.slice(0, query);
  }
  try {
    return new URL(target).pathname;
  } catch {
    return target;
  }
}

/** @returns {{value: unknown} | {error: string}} */
export function parseJson(raw) {
  if (raw.length === 0) return { error: 'empty body' };
  let text;
  try {
    text = utf8.decode(raw);
  } catch {
    return { error: 'body is not valid UTF-8' };
  }
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: err.message };
  }
}

/** A value for an error message, cut short so a huge body does not come back in full. */
function describe(value) {
  const text = JSON.stringify(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

/**
 * Validates a `POST /_chaos` body: an object with optional `delay_ms`, `fail_rate`, `healthy`.
 * @returns {{update: object} | {error: string}}
 */
export function parseChaosUpdate(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { error: `chaos settings must be a JSON object with fields ${CHAOS_FIELDS.join(', ')}` };
  }
  const update = {};
  for (const [field, v] of Object.entries(value)) {
    switch (field) {
      case 'delay_ms':
        if (!Number.isInteger(v) || v < 0 || v > MAX_DELAY_MS) {
          return { error: `field "delay_ms" must be an integer in 0..=${MAX_DELAY_MS}, got ${describe(v)}` };
        }
        break;
      case 'fail_rate':
        if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
          return { error: `field "fail_rate" must be a number in 0.0..=1.0, got ${describe(v)}` };
        }
        break;
      case 'healthy':
        if (typeof v !== 'boolean') {
          return { error: `field "healthy" must be a boolean, got ${describe(v)}` };
        }
        break;
      default:
        return { error: `unknown field ${describe(field)}; expected ${CHAOS_FIELDS.join(', ')}` };
    }
    update[field] = v;
  }
  return { update };
}
