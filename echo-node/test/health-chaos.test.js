// GET /health, the /_chaos routes, fail_rate and the added delay.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RawClient, json, manualScheduler, postJson, request, startServer } from './helpers.js';

const TIMEOUT = { timeout: 30_000 };
const INITIAL = { delay_ms: 0, fail_rate: 0, healthy: true };

function assertCommonHeaders(res, name = 'echo-node') {
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['x-echo-service'], name);
}

async function getChaos(port) {
  const res = await request(port, { path: '/_chaos' });
  assert.equal(res.status, 200);
  assertCommonHeaders(res);
  return json(res);
}

describe('health', TIMEOUT, () => {
  test('GET /health is 200 ok with the service name', async (t) => {
    const { port } = await startServer(t);
    const res = await request(port, { path: '/health' });
    assert.equal(res.status, 200);
    assertCommonHeaders(res);
    assert.equal(res.body.toString(), '{"status":"ok","service":"echo-node"}');
    const withQuery = await request(port, { path: '/health?probe=1' });
    assert.equal(withQuery.status, 200);
  });

  test('the service name follows SERVICE_NAME', async (t) => {
    const { port } = await startServer(t, { serviceName: 'node-2' });
    const res = await request(port, { path: '/health' });
    assertCommonHeaders(res, 'node-2');
    assert.deepEqual(json(res), { status: 'ok', service: 'node-2' });
  });

  test('other methods on /health are 405 with allow: GET', async (t) => {
    const { port } = await startServer(t);
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']) {
      const res = await request(port, { method, path: '/health', body: method === 'HEAD' ? undefined : '{}' });
      assert.equal(res.status, 405, method);
      assertCommonHeaders(res);
      assert.equal(res.headers.allow, 'GET');
      if (method !== 'HEAD') assert.deepEqual(json(res), { error: 'method not allowed' });
    }
  });

  test('/health is 503 unhealthy while made unhealthy, and ok again after', async (t) => {
    const { port } = await startServer(t, { chaos: true });
    assert.equal((await postJson(port, '/_chaos', { healthy: false })).status, 200);
    const down = await request(port, { path: '/health' });
    assert.equal(down.status, 503);
    assertCommonHeaders(down);
    assert.equal(down.body.toString(), '{"status":"unhealthy","service":"echo-node"}');
    // Echoes still work while unhealthy.
    assert.equal((await postJson(port, '/', [1])).status, 200);

    assert.equal((await postJson(port, '/_chaos', { healthy: true })).status, 200);
    assert.equal((await request(port, { path: '/health' })).status, 200);

    await postJson(port, '/_chaos', { healthy: false });
    assert.equal((await request(port, { method: 'DELETE', path: '/_chaos' })).status, 200);
    assert.equal((await request(port, { path: '/health' })).status, 200);
  });
});

describe('chaos routes', TIMEOUT, () => {
  test('chaos is off by default: /_chaos is an ordinary echo path', async (t) => {
    const { port } = await startServer(t);
    const posted = await postJson(port, '/_chaos', { healthy: false, fail_rate: 1 });
    assert.equal(posted.status, 200);
    assert.deepEqual(json(posted), { healthy: false, fail_rate: 1 });
    const get = await request(port, { path: '/_chaos' });
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST');
    const del = await request(port, { method: 'DELETE', path: '/_chaos' });
    assert.equal(del.status, 405);
    // Nothing changed.
    assert.equal((await request(port, { path: '/health' })).status, 200);
    assert.equal((await postJson(port, '/', { ok: 1 })).status, 200);
  });

  test('GET /_chaos shows the initial settings', async (t) => {
    const { port } = await startServer(t, { chaos: true });
    const res = await request(port, { path: '/_chaos' });
    assert.equal(res.status, 200);
    assertCommonHeaders(res);
    assert.equal(res.body.toString(), '{"delay_ms":0,"fail_rate":0,"healthy":true}');
  });

  test('the initial delay_ms is ECHO_DELAY_MS, and DELETE returns to it', async (t) => {
    const { port } = await startServer(t, { chaos: true, delayMs: 7 });
    assert.deepEqual(await getChaos(port), { delay_ms: 7, fail_rate: 0, healthy: true });
    await postJson(port, '/_chaos', { delay_ms: 0, healthy: false });
    const reset = await request(port, { method: 'DELETE', path: '/_chaos' });
    assert.equal(reset.status, 200);
    assertCommonHeaders(reset);
    assert.deepEqual(json(reset), { delay_ms: 7, fail_rate: 0, healthy: true });
    assert.deepEqual(await getChaos(port), { delay_ms: 7, fail_rate: 0, healthy: true });
  });

  test('POST /_chaos replaces only the given fields and answers the new settings', async (t) => {
    const { port } = await startServer(t, { chaos: true });
    const first = await postJson(port, '/_chaos', { delay_ms: 500 });
    assert.equal(first.status, 200);
    assertCommonHeaders(first);
    assert.deepEqual(json(first), { delay_ms: 500, fail_rate: 0, healthy: true });
    const second = await postJson(port, '/_chaos', { fail_rate: 0.25, healthy: false });
    assert.deepEqual(json(second), { delay_ms: 500, fail_rate: 0.25, healthy: false });
    const empty = await postJson(port, '/_chaos', {});
    assert.deepEqual(json(empty), { delay_ms: 500, fail_rate: 0.25, healthy: false });
    const all = await postJson(port, '/_chaos', { delay_ms: 600000, fail_rate: 1, healthy: true });
    assert.deepEqual(json(all), { delay_ms: 600000, fail_rate: 1, healthy: true });
    const edges = await postJson(port, '/_chaos', { delay_ms: 0, fail_rate: 0 });
    assert.deepEqual(json(edges), { delay_ms: 0, fail_rate: 0, healthy: true });
    assert.deepEqual(await getChaos(port), { delay_ms: 0, fail_rate: 0, healthy: true });
    const del = await request(port, { method: 'DELETE', path: '/_chaos' });
    assert.deepEqual(json(del), INITIAL);
  });

  test('bad POST /_chaos bodies are 400 naming the field, and nothing changes', async (t) => {
    const { port } = await startServer(t, { chaos: true });
    const before = { delay_ms: 5, fail_rate: 0.5, healthy: false };
    assert.equal((await postJson(port, '/_chaos', before)).status, 200);

    const cases = [
      // [body, a word the error must contain]
      ['[]', 'object'],
      ['"delay_ms"', 'object'],
      ['null', 'object'],
      ['42', 'object'],
      ['true', 'object'],
      ['{"delay_ms":"5"}', 'delay_ms'],
      ['{"delay_ms":1.5}', 'delay_ms'],
      ['{"delay_ms":-1}', 'delay_ms'],
      ['{"delay_ms":600001}', 'delay_ms'],
      ['{"delay_ms":null}', 'delay_ms'],
      ['{"delay_ms":true}', 'delay_ms'],
      ['{"fail_rate":"0.5"}', 'fail_rate'],
      ['{"fail_rate":-0.1}', 'fail_rate'],
      ['{"fail_rate":1.01}', 'fail_rate'],
      ['{"fail_rate":true}', 'fail_rate'],
      ['{"fail_rate":null}', 'fail_rate'],
      ['{"healthy":"false"}', 'healthy'],
      ['{"healthy":0}', 'healthy'],
      ['{"healthy":null}', 'healthy'],
      ['{"unknown":1}', 'unknown'],
      ['{"Delay_ms":1}', 'Delay_ms'],
      ['{"__proto__":{"healthy":true}}', '__proto__'],
      // A valid field next to an invalid one: the update is all or nothing.
      ['{"delay_ms":9,"fail_rate":2}', 'fail_rate'],
      ['{"healthy":true,"extra":1}', 'extra'],
      ['{"delay_ms":', 'invalid JSON'],
      ['', 'invalid JSON'],
    ];
    for (const [body, word] of cases) {
      const res = await request(port, { method: 'POST', path: '/_chaos', body });
      assert.equal(res.status, 400, body);
      assertCommonHeaders(res);
      const { error } = json(res);
      assert.equal(typeof error, 'string');
      assert.ok(error.includes(word), `error ${JSON.stringify(error)} for ${body} should name ${word}`);
      assert.deepEqual(await getChaos(port), before, `settings changed by ${body}`);
    }
  });

  test('other methods on /_chaos are 405 with allow: GET, POST, DELETE', async (t) => {
    const { port } = await startServer(t, { chaos: true });
    for (const method of ['PUT', 'PATCH', 'OPTIONS', 'HEAD']) {
      const res = await request(port, { method, path: '/_chaos' });
      assert.equal(res.status, 405, method);
      assertCommonHeaders(res);
      assert.equal(res.headers.allow, 'GET, POST, DELETE');
    }
  });

  test('with chaos on, other paths still echo', async (t) => {
    const { port } = await startServer(t, { chaos: true });
    const res = await postJson(port, '/_chaos/sub', { x: 1 });
    assert.equal(res.status, 200);
    assert.deepEqual(json(res), { x: 1 });
  });
});

describe('fail_rate', TIMEOUT, () => {
  test('fail_rate 1 fails every echo with 500, but not /health or /_chaos', async (t) => {
    const { port } = await startServer(t, { chaos: true });
    await postJson(port, '/_chaos', { fail_rate: 1 });
    for (let i = 0; i < 20; i++) {
      const res = await postJson(port, `/${i}`, { i });
      assert.equal(res.status, 500);
      assertCommonHeaders(res);
      assert.equal(res.body.toString(), '{"error":"chaos: injected failure"}');
    }
    assert.equal((await request(port, { path: '/health' })).status, 200);
    assert.equal((await request(port, { path: '/_chaos' })).status, 200);
    // Validation comes first: an invalid body is still a 400.
    assert.equal((await request(port, { method: 'POST', path: '/', body: '{' })).status, 400);
  });

  test('fail_rate 0 fails no echo', async (t) => {
    const { port } = await startServer(t, { chaos: true });
    await postJson(port, '/_chaos', { fail_rate: 1 });
    await postJson(port, '/_chaos', { fail_rate: 0 });
    for (let i = 0; i < 50; i++) {
      const res = await postJson(port, '/', { i });
      assert.equal(res.status, 200);
    }
  });

  test('a fractional fail_rate fails the echoes whose draw is below it', async (t) => {
    const draws = [0.1, 0.9, 0.24999, 0.25, 0.5];
    const { port } = await startServer(t, { chaos: true }, { random: () => draws.shift() });
    await postJson(port, '/_chaos', { fail_rate: 0.25 });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await postJson(port, '/', i)).status);
    assert.deepEqual(statuses, [500, 200, 500, 200, 200]);
  });
});

describe('delay', TIMEOUT, () => {
  test('ECHO_DELAY_MS delays echoes without blocking other requests', async (t) => {
    const clock = manualScheduler();
    const { port } = await startServer(t, { delayMs: 250 }, { schedule: clock.schedule });
    const order = [];
    const first = postJson(port, '/first', 1).then((res) => {
      order.push('first');
      return res;
    });
    await clock.waitForPending(1);
    assert.equal(clock.pending[0].ms, 250);

    const second = postJson(port, '/second', 2).then((res) => {
      order.push('second');
      return res;
    });
    await clock.waitForPending(2);

    // Both echoes are waiting; /health is answered meanwhile, without a delay.
    const health = await request(port, { path: '/health' });
    order.push('health');
    assert.equal(health.status, 200);
    assert.equal(clock.pending.length, 2);

    // Finish the second before the first: each delay is independent.
    const [firstTimer, secondTimer] = clock.pending;
    clock.fire(secondTimer);
    const secondRes = await second;
    assert.deepEqual(order, ['health', 'second']);
    clock.fire(firstTimer);
    const firstRes = await first;
    assert.deepEqual(order, ['health', 'second', 'first']);
    assert.equal(firstRes.status, 200);
    assert.equal(firstRes.body.toString(), '1');
    assert.equal(secondRes.body.toString(), '2');
  });

  test('chaos delay_ms applies to echoes, not to /health or /_chaos', async (t) => {
    const clock = manualScheduler();
    const { port } = await startServer(t, { chaos: true }, { schedule: clock.schedule });
    await postJson(port, '/_chaos', { delay_ms: 500 });
    assert.equal((await request(port, { path: '/health' })).status, 200);
    assert.equal((await request(port, { path: '/_chaos' })).status, 200);
    assert.equal((await postJson(port, '/_chaos', { healthy: false })).status, 200);
    assert.equal((await request(port, { path: '/health' })).status, 503);
    assert.equal(clock.pending.length, 0);

    const echo = postJson(port, '/', 'late');
    await clock.waitForPending(1);
    assert.equal(clock.pending[0].ms, 500);
    clock.fire(clock.pending[0]);
    const res = await echo;
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), '"late"');
  });

  test('an injected failure comes after the delay', async (t) => {
    const clock = manualScheduler();
    let draws = 0;
    const random = () => {
      draws++;
      return 0.5;
    };
    const { port } = await startServer(t, { chaos: true }, { schedule: clock.schedule, random });
    await postJson(port, '/_chaos', { delay_ms: 100, fail_rate: 1 });
    const echo = postJson(port, '/', {});
    await clock.waitForPending(1);
    assert.equal(draws, 0);
    clock.fire(clock.pending[0]);
    const res = await echo;
    assert.equal(draws, 1);
    assert.equal(res.status, 500);
    assert.deepEqual(json(res), { error: 'chaos: injected failure' });
  });

  test('invalid and too-large bodies are answered without the delay', async (t) => {
    const clock = manualScheduler();
    const { port } = await startServer(t, { delayMs: 1000 }, { schedule: clock.schedule });
    assert.equal((await request(port, { method: 'POST', path: '/', body: 'nope' })).status, 400);
    assert.equal((await request(port, { method: 'GET', path: '/' })).status, 405);
    assert.equal(clock.pending.length, 0);
  });

  test('a client that goes away during the delay cancels its timer', async (t) => {
    const clock = manualScheduler();
    const { port } = await startServer(t, { delayMs: 1000 }, { schedule: clock.schedule });
    const client = await RawClient.connect(port);
    await client.write('POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}');
    await clock.waitForPending(1);
    const entry = clock.pending[0];
    client.destroy();
    await clock.waitForCancel(entry);
    assert.equal(clock.pending.length, 0);
  });

  test('the default scheduler really waits', async (t) => {
    const { port } = await startServer(t, { delayMs: 40 });
    const started = process.hrtime.bigint();
    const res = await postJson(port, '/', 'slow');
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(res.status, 200);
    // A lower bound only (timers never fire early by more than the 1 ms clock granularity).
    assert.ok(elapsedMs >= 38, `answered after ${elapsedMs} ms`);
  });
});
