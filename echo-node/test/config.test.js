// Environment parsing (unit level; test/process.test.js checks exit code 2 end to end).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, parseConfig } from '../src/config.js';

describe('parseConfig', () => {
  test('defaults', () => {
    assert.deepEqual(parseConfig({}), {
      port: 8082,
      host: '0.0.0.0',
      serviceName: 'echo-node',
      delayMs: 0,
      chaos: false,
    });
  });

  test('empty values take the defaults', () => {
    assert.deepEqual(
      parseConfig({ PORT: '', HOST: '', SERVICE_NAME: '', ECHO_DELAY_MS: '', ECHO_CHAOS: '' }),
      parseConfig({}),
    );
  });

  test('every variable is read', () => {
    assert.deepEqual(
      parseConfig({ PORT: '9000', HOST: '127.0.0.1', SERVICE_NAME: 'echo blue', ECHO_DELAY_MS: '25', ECHO_CHAOS: '1' }),
      { port: 9000, host: '127.0.0.1', serviceName: 'echo blue', delayMs: 25, chaos: true },
    );
  });

  test('PORT=0 and the range ends are accepted', () => {
    assert.equal(parseConfig({ PORT: '0' }).port, 0);
    assert.equal(parseConfig({ PORT: '65535' }).port, 65535);
    assert.equal(parseConfig({ ECHO_DELAY_MS: '600000' }).delayMs, 600000);
    assert.equal(parseConfig({ HOST: '::1' }).host, '::1');
  });

  test('only ECHO_CHAOS=1 enables chaos', () => {
    for (const value of ['0', 'true', 'yes', 'on', ' 1', '1 ', '01', 'TRUE']) {
      assert.equal(parseConfig({ ECHO_CHAOS: value }).chaos, false, value);
    }
    assert.equal(parseConfig({ ECHO_CHAOS: '1' }).chaos, true);
  });

  test('bad values are ConfigErrors naming the variable and the value', () => {
    const bad = [
      ['PORT', 'abc'],
      ['PORT', '-1'],
      ['PORT', '65536'],
      ['PORT', '80.5'],
      ['PORT', ' 80'],
      ['PORT', '1e3'],
      ['PORT', '0x50'],
      ['ECHO_DELAY_MS', '-1'],
      ['ECHO_DELAY_MS', 'abc'],
      ['ECHO_DELAY_MS', '1.5'],
      ['ECHO_DELAY_MS', '600001'],
      ['ECHO_DELAY_MS', '99999999999999999999'],
      ['SERVICE_NAME', ' padded'],
      ['SERVICE_NAME', 'line\nbreak'],
      ['SERVICE_NAME', 'tab\tname'],
      ['SERVICE_NAME', 'naïve'],
      ['SERVICE_NAME', 'x'.repeat(201)],
      ['HOST', 'a host'],
    ];
    for (const [key, value] of bad) {
      assert.throws(
        () => parseConfig({ [key]: value }),
        (err) => err instanceof ConfigError && err.message.startsWith(key) && err.message.includes(JSON.stringify(value)),
        `${key}=${JSON.stringify(value)}`,
      );
    }
  });
});
