import assert from 'node:assert/strict';
import { ConfigError } from '../../src/channels/channel.js';

/**
 * A check for assert.throws / assert.rejects: the error is a ConfigError naming `key`, and its
 * message quotes none of `secrets` (config errors are logged, so they must never carry one).
 */
export function configErrorNaming(key: string, ...secrets: string[]): (error: unknown) => true {
  return (error) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.key, key);
    for (const secret of secrets) assert.ok(!error.message.includes(secret), `${key}: the message quotes a secret: ${error.message}`);
    return true;
  };
}
