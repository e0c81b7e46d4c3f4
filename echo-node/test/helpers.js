// Shared test helpers (node --test also loads this file; it has no tests of its own).

import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { createServer } from '../src/app.js';

export const SERVER_JS = fileURLToPath(new URL('../server.js', import.meta.url));
export const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
export const MiB = 1_048_576;

/** Starts the app in-process on 127.0.0.1:0; stopped after the test. */
export async function startServer(t, config = {}, hooks = {}) {
  const server = createServer(config, hooks);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { server, port: server.address().port };
}

/** One request on a fresh connection; resolves with status, headers and the body bytes. */
export function request(port, { method = 'GET', path = '/', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** `request` with a JSON value as the body. */
export function postJson(port, path, value) {
  return request(port, { method: 'POST', path, body: JSON.stringify(value) });
}

export function json(response) {
  return JSON.parse(response.body.toString('utf8'));
}

/**
 * A raw TCP client that can send partial requests and parse the responses as they arrive
 * (content-length bodies and 1xx interim responses only, which is all the service sends).
 */
export class RawClient {
  static async connect(port) {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.ended = false;
    this.error = null;
    this.events = new EventEmitter();
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.events.emit('change');
    });
    socket.on('end', () => {
      this.ended = true;
      this.events.emit('change');
    });
    socket.on('error', (err) => {
      this.error = err;
      this.events.emit('change');
    });
    this.closed = once(socket, 'close');
  }

  write(data) {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Resolves with the next complete response; rejects if the connection ends first. */
  nextResponse() {
    return new Promise((resolve, reject) => {
      const check = () => {
        const parsed = parseResponse(this.buffer);
        if (parsed) {
          this.buffer = this.buffer.subarray(parsed.length);
          this.events.off('change', check);
          resolve(parsed.response);
        } else if (this.error || this.ended) {
          this.events.off('change', check);
          reject(this.error ?? new Error(`connection ended; unparsed: ${JSON.stringify(this.buffer.toString())}`));
        }
      };
      this.events.on('change', check);
      check();
    });
  }

  /** Resolves once the server has closed its side (FIN) or the connection failed. */
  async serverClosed() {
    while (!this.ended && !this.error) await once(this.events, 'change');
  }

  destroy() {
    this.socket.destroy();
  }
}

function parseResponse(buffer) {
  const headEnd = buffer.indexOf('\r\n\r\n');
  if (headEnd === -1) return null;
  const [statusLine, ...lines] = buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(statusLine.split(' ')[1]);
  const headers = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const bodyStart = headEnd + 4;
  const length = status < 200 ? 0 : Number(headers['content-length'] ?? 0);
  if (buffer.length < bodyStart + length) return null;
  return {
    length: bodyStart + length,
    response: { status, headers, body: buffer.subarray(bodyStart, bodyStart + length) },
  };
}

/** A JSON string value of exactly `size` bytes. */
export function jsonStringOfSize(size) {
  return Buffer.from(`"${'a'.repeat(size - 2)}"`);
}

/**
 * A stand-in for the echo delay timer: records each scheduled delay and fires it only when the
 * test says so, which makes ordering assertions deterministic.
 */
export function manualScheduler() {
  const events = new EventEmitter();
  const pending = [];
  return {
    pending,
    schedule(ms, fn) {
      const entry = { ms, fn, cancelled: false };
      pending.push(entry);
      events.emit('scheduled');
      return () => {
        entry.cancelled = true;
        const i = pending.indexOf(entry);
        if (i !== -1) pending.splice(i, 1);
        events.emit('cancelled');
      };
    },
    async waitForPending(count) {
      while (pending.length < count) await once(events, 'scheduled');
    },
    async waitForCancel(entry) {
      while (!entry.cancelled) await once(events, 'cancelled');
    },
    fire(entry) {
      pending.splice(pending.indexOf(entry), 1);
      entry.fn();
    },
  };
}

/**
 * Runs `node server.js` with the given environment (PORT=0, HOST=127.0.0.1 unless overridden).
 * The child is killed when the test ends, whatever happened.
 */
export function spawnServer(t, env = {}) {
  const child = spawn(process.execPath, [SERVER_JS], {
    cwd: PACKAGE_DIR,
    env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const output = { stdout: '', stderr: '' };
  const changes = new EventEmitter();
  for (const name of ['stdout', 'stderr']) {
    child[name].setEncoding('utf8');
    child[name].on('data', (text) => {
      output[name] += text;
      changes.emit('change');
    });
  }
  let exitStatus = null;
  const exited = new Promise((resolve) => {
    // 'close': the process exited and its stdout/stderr were read to the end.
    child.on('close', (code, signal) => {
      exitStatus = { code, signal };
      changes.emit('change');
      resolve(exitStatus);
    });
  });

  /** Resolves with the first complete line of `name` matching `pattern`; rejects if the child exits first. */
  async function waitForLine(name, pattern) {
    for (;;) {
      const lines = output[name].split('\n').slice(0, -1);
      for (const line of lines) {
        const match = line.match(pattern);
        if (match) return match;
      }
      if (exitStatus) {
        throw new Error(
          `server exited (${JSON.stringify(exitStatus)}) before printing ${pattern} on ${name}; ` +
            `stdout: ${JSON.stringify(output.stdout)} stderr: ${JSON.stringify(output.stderr)}`,
        );
      }
      await once(changes, 'change');
    }
  }

  return {
    child,
    exited,
    stdout: () => output.stdout,
    stderr: () => output.stderr,
    waitForLine,
    /** Resolves with name, host and port from the startup line. */
    async started() {
      const match = await waitForLine('stdout', /^(\S+) listening on (\S+):(\d+)$/);
      return { name: match[1], host: match[2], port: Number(match[3]) };
    },
  };
}
