// Draining in-process: stop accepting, finish in-flight requests, close idle keep-alive connections.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { drain, installSignalHandlers } from '../src/shutdown.js';
import { RawClient, manualScheduler, startServer } from './helpers.js';

const TIMEOUT = { timeout: 30_000 };

async function assertRefused(port) {
  const socket = net.connect(port, '127.0.0.1');
  const [err] = await once(socket, 'error');
  assert.equal(err.code, 'ECONNREFUSED');
}

describe('drain', TIMEOUT, () => {
  test('an idle server drains at once and stops listening', async (t) => {
    const { server, port } = await startServer(t);
    assert.equal(await drain(server), true);
    assert.equal(server.listening, false);
    await assertRefused(port);
  });

  test('in-flight delayed echoes finish; idle keep-alive connections are closed; new connections refused', async (t) => {
    const clock = manualScheduler();
    const { server, port } = await startServer(t, { delayMs: 1000 }, { schedule: clock.schedule });

    const idle = await RawClient.connect(port);
    t.after(() => idle.destroy());
    await idle.write('GET /health HTTP/1.1\r\nhost: t\r\n\r\n');
    const health = await idle.nextResponse();
    assert.equal(health.status, 200);
    assert.equal(health.headers.connection, 'keep-alive');

    const busy = await RawClient.connect(port);
    t.after(() => busy.destroy());
    await busy.write('POST /slow HTTP/1.1\r\nhost: t\r\ncontent-length: 9\r\n\r\n{"n":42}\n');
    await clock.waitForPending(1);

    let drained = null;
    const draining = drain(server).then((result) => {
      drained = result;
    });
    await idle.serverClosed();
    await assertRefused(port);
    assert.equal(drained, null, 'drained while a request was in flight');

    clock.fire(clock.pending[0]);
    const res = await busy.nextResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), '{"n":42}\n');
    assert.equal(res.headers.connection, 'close');
    await busy.serverClosed();
    await draining;
    assert.equal(drained, true);
  });

  test('the drain is bounded: past the timeout the remaining connections are dropped', async (t) => {
    const clock = manualScheduler();
    const { server, port } = await startServer(t, { delayMs: 600000 }, { schedule: clock.schedule });
    const stuck = await RawClient.connect(port);
    t.after(() => stuck.destroy());
    await stuck.write('POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}');
    await clock.waitForPending(1);
    assert.equal(await drain(server, { timeoutMs: 50 }), false);
    await stuck.closed;
  });
});

describe('signal handlers', TIMEOUT, () => {
  test('the first signal drains and exits 0; later signals only log', async (t) => {
    const clock = manualScheduler();
    const { server, port } = await startServer(t, { delayMs: 10 }, { schedule: clock.schedule });
    const logs = [];
    const exits = [];
    let exited;
    const exitCalled = new Promise((resolve) => {
      exited = resolve;
    });
    const dispose = installSignalHandlers(server, {
      signals: ['SIGUSR2'],
      log: (line) => logs.push(line),
      exit: (code) => {
        exits.push(code);
        exited();
      },
    });
    t.after(dispose);

    const busy = await RawClient.connect(port);
    t.after(() => busy.destroy());
    await busy.write('POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n\r\ntrue');
    await clock.waitForPending(1);

    process.emit('SIGUSR2', 'SIGUSR2');
    process.emit('SIGUSR2', 'SIGUSR2');
    assert.equal(server.listening, false);
    assert.match(logs[0], /^SIGUSR2 received; draining/);
    assert.match(logs[1], /still draining/);
    assert.deepEqual(exits, []);

    clock.fire(clock.pending[0]);
    assert.equal((await busy.nextResponse()).status, 200);
    await exitCalled;
    assert.deepEqual(exits, [0]);
  });

  test('a drain that times out exits 1', async (t) => {
    const clock = manualScheduler();
    const { server, port } = await startServer(t, { delayMs: 10 }, { schedule: clock.schedule });
    const exits = [];
    let exited;
    const exitCalled = new Promise((resolve) => {
      exited = resolve;
    });
    const dispose = installSignalHandlers(server, {
      signals: ['SIGUSR2'],
      timeoutMs: 50,
      log: () => {},
      exit: (code) => {
        exits.push(code);
        exited();
      },
    });
    t.after(dispose);
    const stuck = await RawClient.connect(port);
    t.after(() => stuck.destroy());
    await stuck.write('POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n\r\ntrue');
    await clock.waitForPending(1);
    process.emit('SIGUSR2', 'SIGUSR2');
    await exitCalled;
    assert.deepEqual(exits, [1]);
  });
});
