// `node server.js` as a real process: environment, startup line, signals, exit codes, healthcheck.js.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PACKAGE_DIR, RawClient, json, postJson, request, spawnServer } from './helpers.js';

const TIMEOUT = { timeout: 30_000 };
const HEALTHCHECK_JS = fileURLToPath(new URL('../healthcheck.js', import.meta.url));

async function runHealthcheck(t, env) {
  const child = spawn(process.execPath, [HEALTHCHECK_JS], {
    cwd: PACKAGE_DIR,
    env: { PATH: process.env.PATH, ...env },
    stdio: 'ignore',
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const [code] = await once(child, 'exit');
  return code;
}

describe('server.js', TIMEOUT, () => {
  test('prints one startup line with the actual port, serves, and exits 0 on SIGTERM', async (t) => {
    const proc = spawnServer(t);
    const { name, host, port } = await proc.started();
    assert.equal(name, 'echo-node');
    assert.equal(host, '127.0.0.1');
    assert.ok(port > 0 && port < 65536);

    const echo = await postJson(port, '/hello', { hello: 'world' });
    assert.equal(echo.status, 200);
    assert.equal(echo.headers['x-echo-service'], 'echo-node');
    assert.deepEqual(json(echo), { hello: 'world' });
    // Chaos is off unless ECHO_CHAOS=1.
    assert.equal((await request(port, { path: '/_chaos' })).status, 405);

    proc.child.kill('SIGTERM');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
    assert.equal(proc.stdout(), `echo-node listening on 127.0.0.1:${port}\n`);
  });

  test('SERVICE_NAME, ECHO_DELAY_MS and ECHO_CHAOS come from the environment; SIGINT exits 0', async (t) => {
    const proc = spawnServer(t, { SERVICE_NAME: 'echo-node-7', ECHO_DELAY_MS: '3', ECHO_CHAOS: '1' });
    const { name, port } = await proc.started();
    assert.equal(name, 'echo-node-7');
    const chaos = await request(port, { path: '/_chaos' });
    assert.equal(chaos.status, 200);
    assert.equal(chaos.headers['x-echo-service'], 'echo-node-7');
    assert.deepEqual(json(chaos), { delay_ms: 3, fail_rate: 0, healthy: true });
    const health = await request(port, { path: '/health' });
    assert.deepEqual(json(health), { status: 'ok', service: 'echo-node-7' });

    proc.child.kill('SIGINT');
    assert.deepEqual(await proc.exited, { code: 0, signal: null });
  });

  for (const [key, value] of [
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['ECHO_DELAY_MS', '-1'],
    ['ECHO_DELAY_MS', 'soon'],
    ['SERVICE_NAME', 'two\nlines'],
  ]) {
    test(`${key}=${JSON.stringify(value)} is an error on stderr and exit code 2`, async (t) => {
      const proc = spawnServer(t, { [key]: value });
      assert.deepEqual(await proc.exited, { code: 2, signal: null });
      assert.equal(proc.stdout(), '');
      assert.match(proc.stderr(), new RegExp(`invalid configuration: ${key} `));
    });
  }

  test('a port already in use is an error on stderr and exit code 1', async (t) => {
    const blocker = net.createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    t.after(() => blocker.close());
    const proc = spawnServer(t, { PORT: String(blocker.address().port) });
    assert.deepEqual(await proc.exited, { code: 1, signal: null });
    assert.equal(proc.stdout(), '');
    assert.match(proc.stderr(), /cannot listen on 127\.0\.0\.1:\d+/);
  });

  test('SIGTERM: stops accepting, closes idle connections, finishes the in-flight delayed echo, exits 0', async (t) => {
    const proc = spawnServer(t, { ECHO_DELAY_MS: '50' });
    const { port } = await proc.started();

    // An idle keep-alive connection.
    const idle = await RawClient.connect(port);
    t.after(() => idle.destroy());
    await idle.write('GET /health HTTP/1.1\r\nhost: t\r\n\r\n');
    assert.equal((await idle.nextResponse()).status, 200);

    // An in-flight request: `100 Continue` proves the server is handling it.
    const busy = await RawClient.connect(port);
    t.after(() => busy.destroy());
    const body = '{"in":"flight"}';
    await busy.write(
      `POST /slow HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: ${body.length}\r\n\r\n`,
    );
    assert.equal((await busy.nextResponse()).status, 100);

    proc.child.kill('SIGTERM');
    // Logged once the listener is closed.
    await proc.waitForLine('stderr', /SIGTERM received; draining/);
    await idle.serverClosed();
    const refused = net.connect(port, '127.0.0.1');
    const [err] = await once(refused, 'error');
    assert.equal(err.code, 'ECONNREFUSED');

    // A second signal (npm start forwards Ctrl-C, so it arrives twice) does not cut the drain short.
    proc.child.kill('SIGINT');
    await proc.waitForLine('stderr', /SIGINT received again; still draining/);

    await busy.write(body);
    const res = await busy.nextResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), body);
    assert.equal(res.headers.connection, 'close');
    await busy.serverClosed();

    assert.deepEqual(await proc.exited, { code: 0, signal: null });
  });
});

describe('healthcheck.js', TIMEOUT, () => {
  test('exits 0 while /health is 200, 1 while it is 503 or unreachable', async (t) => {
    const proc = spawnServer(t, { ECHO_CHAOS: '1' });
    const { port } = await proc.started();
    const env = { PORT: String(port), HOST: '127.0.0.1' };
    assert.equal(await runHealthcheck(t, env), 0);
    assert.equal(await runHealthcheck(t, { PORT: String(port), HOST: '0.0.0.0' }), 0);

    await postJson(port, '/_chaos', { healthy: false });
    assert.equal(await runHealthcheck(t, env), 1);

    proc.child.kill('SIGTERM');
    assert.equal((await proc.exited).code, 0);
    assert.equal(await runHealthcheck(t, env), 1);
  });
});
