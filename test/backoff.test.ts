import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from '../src/channels/http.js';
import { retryDelayMs } from '../src/dispatcher/backoff.js';

const SCHEDULE = [30, 120, 300];
// random() = 0.5 is the middle of the jitter band, i.e. no jitter.
const middle = () => 0.5;
const lowest = () => 0;
const highest = () => 1 - Number.EPSILON;
const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

describe('retryDelayMs', () => {
  test('follows the schedule, retry 1 taking its first entry', () => {
    assert.deepEqual(
      [1, 2, 3].map((n) => retryDelayMs(n, SCHEDULE, undefined, middle)),
      [30_000, 120_000, 300_000],
    );
  });

  test('doubles the last entry past the end of the schedule, up to a day', () => {
    assert.deepEqual(
      [4, 5, 6].map((n) => retryDelayMs(n, SCHEDULE, undefined, middle)),
      [600_000, 1_200_000, 2_400_000],
    );
    assert.equal(retryDelayMs(30, SCHEDULE, undefined, middle), DAY_MS);
    // An empty schedule starts at 30 s and doubles from there.
    assert.deepEqual(
      [1, 2, 3].map((n) => retryDelayMs(n, [], undefined, middle)),
      [30_000, 60_000, 120_000],
    );
  });

  test('jitter stays within ±20 % of the scheduled delay', () => {
    assert.equal(retryDelayMs(2, SCHEDULE, undefined, lowest), 96_000);
    assert.equal(retryDelayMs(2, SCHEDULE, undefined, highest), 144_000);
    const seen = Array.from({ length: 1_000 }, () => retryDelayMs(2, SCHEDULE));
    assert.ok(seen.every((ms) => ms >= 96_000 && ms <= 144_000));
    assert.ok(new Set(seen).size > 100, 'delays of one retry number are spread, not equal');
  });

  test("the provider's Retry-After wins over the schedule, never shortened, at most 10 % longer", () => {
    assert.equal(retryDelayMs(1, SCHEDULE, 5_000, lowest), 5_000);
    assert.equal(retryDelayMs(1, SCHEDULE, 5_000, highest), 5_500);
    assert.equal(retryDelayMs(3, SCHEDULE, 600_000, lowest), 600_000, 'longer than the schedule');
    assert.equal(retryDelayMs(3, SCHEDULE, 0, highest), 0, 'retry now when the provider says so');
  });

  test('a Retry-After hint beyond an hour is held to an hour', () => {
    assert.equal(retryDelayMs(1, SCHEDULE, 10 * HOUR_MS, lowest), HOUR_MS);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('Sun, 06 Nov 1994 08:49:37 GMT');

  test('reads delta-seconds', () => {
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 1 ', now), 1_000);
    assert.equal(parseRetryAfter('0', now), 0);
    assert.equal(parseRetryAfter('1.5', now), 1_500);
    assert.equal(parseRetryAfter(['7', '9'], now), 7_000);
  });

  test('reads an HTTP-date in all three forms, relative to now', () => {
    assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:51:37 GMT', now), 120_000);
    assert.equal(parseRetryAfter('Sunday, 06-Nov-94 08:51:37 GMT', now), 120_000);
    assert.equal(parseRetryAfter('Sun Nov  6 08:51:37 1994', now), 120_000);
    assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:00:00 GMT', now), 0, 'a past date means now');
  });

  test('ignores what is neither', () => {
    for (const value of [undefined, '', '  ', 'soon', '-5', '1 2', '12abc', '2024-01-01T00:00:00Z', 'Sun, 06 Nov 1994']) {
      assert.equal(parseRetryAfter(value, now), undefined, JSON.stringify(value));
    }
  });

  test('clamps to an hour', () => {
    assert.equal(MAX_RETRY_AFTER_MS, HOUR_MS);
    assert.equal(parseRetryAfter('86400', now), HOUR_MS);
    assert.equal(parseRetryAfter('Mon, 07 Nov 1994 08:49:37 GMT', now), HOUR_MS);
  });
});
