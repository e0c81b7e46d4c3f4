// POST <any path>: echo, 400, 413, 405, headers, keep-alive.

import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { MAX_BODY_BYTES } from '../src/app.js';
import { MiB, RawClient, jsonStringOfSize, json, request, startServer } from './helpers.js';

const TIMEOUT = { timeout: 30_000 };

function assertCommonHeaders(res, name = 'echo-node') {
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.headers['x-echo-service'], name);
}

function assertTooLarge(res) {
  assert.equal(res.status, 413);
  assertCommonHeaders(res);
  assert.deepEqual(json(res), { error: 'body exceeds 1048576 bytes' });
  assert.equal(res.headers.connection, 'close');
}

describe('echo', TIMEOUT, () => {
  test('the limit is 1 MiB', () => {
    assert.equal(MAX_BODY_BYTES, MiB);
    assert.equal(MiB, 1_048_576);
  });

  test('every kind of JSON value comes back byte for byte', async (t) => {
    const { port } = await startServer(t);
    const bodies = [
      '{"a":1,"b":[true,false,null],"c":{"d":"e"}}',
      '{ "spaced" :  [ 1 , 2 ] }',
      '[]',
      '{}',
      '[1,"two",3.0,{"four":4},[5]]',
      '"a string with \\"escapes\\", \\u00e9, \\ud83d\\ude00 and \\n"',
      '"raw UTF-8: é ü 日本 😀"',
      '12345678901234567890123456789012345678901234567890',
      '-0',
      '1.0',
      '1.5e+300',
      '2E-5',
      '1e400',
      '0.1000000000000000055511151231257827',
      'true',
      'false',
      'null',
      '{"dup":1,"dup":2}',
      ' \t\r\n {"surrounding":"whitespace"} \r\n\t ',
      '{"\\u0000":"nul escape"}',
    ];
    for (const text of bodies) {
      const body = Buffer.from(text, 'utf8');
      const res = await request(port, { method: 'POST', path: '/', body });
      assert.equal(res.status, 200, text);
      assertCommonHeaders(res);
      assert.equal(res.headers['content-length'], String(body.length), text);
      assert.ok(res.body.equals(body), `echoed ${JSON.stringify(res.body.toString())} for ${JSON.stringify(text)}`);
    }
  });

  test('any path is an echo path (including /_chaos when chaos is off)', async (t) => {
    const { port } = await startServer(t);
    for (const path of ['/', '/echo', '/a/b/c', '/with?query=1&x=y', '/health/', '/healthz', '/_chaos', '/%20']) {
      const res = await request(port, { method: 'POST', path, body: '{"path":true}' });
      assert.equal(res.status, 200, path);
      assertCommonHeaders(res);
      assert.equal(res.body.toString(), '{"path":true}', path);
    }
  });

  test('invalid or empty JSON is 400 with an error', async (t) => {
    const { port } = await startServer(t);
    const invalid = [
      Buffer.alloc(0),
      Buffer.from('   \r\n\t '),
      Buffer.from('{'),
      Buffer.from('{"a":1,}'),
      Buffer.from('[1 2]'),
      Buffer.from("{'single':'quotes'}"),
      Buffer.from('{"a":1} {"b":2}'),
      Buffer.from('{"a":1} x'),
      Buffer.from('NaN'),
      Buffer.from('Infinity'),
      Buffer.from('01'),
      Buffer.from('.5'),
      Buffer.from('"unterminated'),
      Buffer.from('"tab\tinside"'),
      Buffer.from('undefined'),
      Buffer.from('\u00a0{}'),
      Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), // BOM + {}
      Buffer.from([0x22, 0xff, 0x22]), // invalid UTF-8 inside a string
      Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22]), // UTF-8-encoded surrogate
    ];
    for (const body of invalid) {
      const res = await request(port, { method: 'POST', path: '/x', body });
      const label = JSON.stringify(body.toString('latin1'));
      assert.equal(res.status, 400, label);
      assertCommonHeaders(res);
      const { error } = json(res);
      assert.match(error, /^invalid JSON: .+/, label);
    }
    const empty = await request(port, { method: 'POST', path: '/', body: '' });
    assert.deepEqual(json(empty), { error: 'invalid JSON: empty body' });
  });

  test('a body of exactly 1 MiB is accepted (content-length)', async (t) => {
    const { port } = await startServer(t);
    const body = jsonStringOfSize(MiB);
    assert.equal(body.length, 1_048_576);
    const res = await request(port, { method: 'POST', path: '/', body });
    assert.equal(res.status, 200);
    assertCommonHeaders(res);
    assert.ok(res.body.equals(body));
  });

  test('a body of exactly 1 MiB is accepted (chunked)', async (t) => {
    const { port } = await startServer(t);
    const body = jsonStringOfSize(MiB);
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write('POST / HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n');
    for (let offset = 0; offset < body.length; offset += 100_000) {
      const chunk = body.subarray(offset, offset + 100_000);
      await client.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
    }
    await client.write('0\r\n\r\n');
    const res = await client.nextResponse();
    assert.equal(res.status, 200);
    assertCommonHeaders(res);
    assert.ok(res.body.equals(body));
  });

  test('1 MiB + 1 is 413 (content-length, client writes everything before reading)', async (t) => {
    const { port } = await startServer(t);
    const body = jsonStringOfSize(MiB + 1);
    // One write of headers and body, then read: the 413 must not be lost to a connection reset.
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write(
      Buffer.concat([Buffer.from(`POST / HTTP/1.1\r\nhost: test\r\ncontent-length: ${body.length}\r\n\r\n`), body]),
    );
    const res = await client.nextResponse();
    assertTooLarge(res);
    await client.serverClosed();
    assert.equal(client.error, null);
  });

  test('1 MiB + 1 is 413 through node:http as well', async (t) => {
    const { port } = await startServer(t);
    const res = await request(port, { method: 'POST', path: '/', body: jsonStringOfSize(MiB + 1) });
    assertTooLarge(res);
  });

  test('content-length over the limit is refused up front, before any body byte', async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write(`POST / HTTP/1.1\r\nhost: test\r\ncontent-length: ${MiB + 1}\r\n\r\n`);
    // No body was sent, so only the header check can have produced this answer.
    assertTooLarge(await client.nextResponse());
  });

  test('a huge content-length is refused up front', async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write('POST /big HTTP/1.1\r\nhost: test\r\ncontent-length: 99999999999999\r\n\r\n');
    assertTooLarge(await client.nextResponse());
  });

  test('chunked body over 1 MiB is 413 as soon as byte 1 MiB + 1 arrives', async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write('POST / HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n');
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let sent = 0; sent < MiB; sent += chunk.length) {
      await client.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
    }
    // Exactly 1 MiB so far; one more byte crosses the limit. The body is never terminated: the
    // answer can only come from counting while reading, not from buffering the whole body first.
    await client.write('1\r\na\r\n');
    const res = await client.nextResponse();
    assertTooLarge(res);
    // The server keeps discarding (not buffering) what the client still sends, then closes.
    for (let i = 0; i < 8; i++) {
      await client.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
    }
    await client.write('0\r\n\r\n');
    await client.serverClosed();
    assert.equal(client.error, null);
  });

  test('a refused body is discarded for at most the linger time, then the connection is closed', async (t) => {
    const { port } = await startServer(t, {}, { lingerMs: 50 });
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write(`POST / HTTP/1.1\r\nhost: test\r\ncontent-length: ${MiB + 1}\r\n\r\n`);
    assertTooLarge(await client.nextResponse());
    // The client never sends the body nor closes: the server gives up and closes the connection.
    await client.closed;
  });

  test('expect: 100-continue with a too-large body gets 413 instead of 100 Continue', async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write(`POST / HTTP/1.1\r\nhost: test\r\nexpect: 100-continue\r\ncontent-length: ${MiB + 1}\r\n\r\n`);
    assertTooLarge(await client.nextResponse());
  });

  test('expect: 100-continue with an acceptable body gets 100 Continue, then the echo', async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write('POST / HTTP/1.1\r\nhost: test\r\nexpect: 100-continue\r\ncontent-length: 7\r\n\r\n');
    const interim = await client.nextResponse();
    assert.equal(interim.status, 100);
    await client.write('[1,2,3]');
    const res = await client.nextResponse();
    assert.equal(res.status, 200);
    assertCommonHeaders(res);
    assert.equal(res.body.toString(), '[1,2,3]');
  });

  test('other methods on echo paths are 405 with allow: POST', async (t) => {
    const { port } = await startServer(t);
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']) {
      for (const path of ['/', '/anything', '/_chaos']) {
        const res = await request(port, { method, path, body: method === 'GET' || method === 'HEAD' ? undefined : '{}' });
        assert.equal(res.status, 405, `${method} ${path}`);
        assertCommonHeaders(res);
        assert.equal(res.headers.allow, 'POST');
        if (method === 'HEAD') {
          assert.equal(res.body.length, 0);
        } else {
          assert.deepEqual(json(res), { error: 'method not allowed' });
        }
      }
    }
  });

  test('SERVICE_NAME sets x-echo-service on every response', async (t) => {
    const { port } = await startServer(t, { serviceName: 'echo-blue' });
    const responses = [
      await request(port, { method: 'POST', path: '/', body: '{}' }),
      await request(port, { method: 'POST', path: '/', body: '{' }),
      await request(port, { method: 'GET', path: '/' }),
      await request(port, { method: 'GET', path: '/health' }),
      await request(port, { method: 'POST', path: '/', body: jsonStringOfSize(MiB + 1) }),
    ];
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 400, 405, 200, 413],
    );
    for (const res of responses) assertCommonHeaders(res, 'echo-blue');
  });

  test('requests node cannot parse get a JSON 400 with x-echo-service', async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write('THIS IS NOT HTTP\r\n\r\n');
    const res = await client.nextResponse();
    assert.equal(res.status, 400);
    assertCommonHeaders(res);
    assert.match(json(res).error, /^bad request/);
  });

  test('keep-alive connections are reused across requests', async (t) => {
    const { port } = await startServer(t);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const sockets = new Set();
    for (let i = 0; i < 5; i++) {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/${i}`, agent });
      req.on('socket', (s) => sockets.add(s));
      req.end(`{"n":${i}}`);
      const [res] = await once(req, 'response');
      const chunks = [];
      for await (const c of res) chunks.push(c);
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers.connection, 'keep-alive');
      assert.equal(Buffer.concat(chunks).toString(), `{"n":${i}}`);
    }
    assert.equal(sockets.size, 1);
  });

  test('a raw keep-alive connection serves several requests, including after errors', async (t) => {
    const { port } = await startServer(t);
    const client = await RawClient.connect(port);
    t.after(() => client.destroy());
    await client.write('POST /a HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}');
    assert.equal((await client.nextResponse()).status, 200);
    await client.write('POST /b HTTP/1.1\r\nhost: t\r\ncontent-length: 1\r\n\r\n{');
    assert.equal((await client.nextResponse()).status, 400);
    await client.write('PUT /c HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}');
    assert.equal((await client.nextResponse()).status, 405);
    await client.write('GET /health HTTP/1.1\r\nhost: t\r\n\r\n');
    assert.equal((await client.nextResponse()).status, 200);
    await client.write('POST /d HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n\r\nnull');
    const last = await client.nextResponse();
    assert.equal(last.status, 200);
    assert.equal(last.body.toString(), 'null');
  });
});
