import { describe, expect, it } from 'vitest';
import { seededRng } from '../../src/domain/random.js';
import { afterFailedAttempt, backoffDelay, maxAttemptsFor } from '../../src/domain/retry.js';
import type { BackoffPolicy } from '../../src/domain/types.js';

const exp: BackoffPolicy = { strategy: 'exponential', initialMs: 1000, maxMs: 10_000, jitter: false };

describe('retry decisions', () => {
  it('TASK_RETRY_LIMIT counts retries after the first attempt', () => {
    expect(maxAttemptsFor(3)).toBe(4);
    expect(maxAttemptsFor(0)).toBe(1);
  });

  it.each([
    [1, 0, 4, true, 'retry'],
    [3, 0, 4, true, 'retry'],
    [4, 0, 4, true, 'dead'],
    [1, 0, 4, false, 'failed'],
    [1, 0, 1, true, 'dead'],
    // After a manual retry the run starts again from attemptsBase.
    [5, 4, 4, true, 'retry'],
    [8, 4, 4, true, 'dead'],
  ] as const)('attempt %i (base %i) of %i, retryable=%s → %s', (attempts, attemptsBase, maxAttempts, retryable, kind) => {
    expect(afterFailedAttempt({ attempts, attemptsBase, maxAttempts, backoff: exp }, retryable, seededRng(1)).kind).toBe(kind);
  });

  it.each([
    [exp, 1, 1000],
    [exp, 2, 2000],
    [exp, 4, 8000],
    [exp, 5, 10_000],
    [exp, 60, 10_000],
    [{ ...exp, strategy: 'fixed' as const }, 7, 1000],
  ])('backoff %o before retry %i is %i ms', (policy, retry, ms) => {
    expect(backoffDelay(policy, retry, seededRng(1))).toBe(ms);
  });

  it('jitter spreads a delay over its upper half', () => {
    const rng = seededRng(9);
    const delays = Array.from({ length: 500 }, () => backoffDelay({ ...exp, jitter: true }, 3, rng));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(2000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(4000);
    expect(new Set(delays).size).toBeGreaterThan(100);
  });
});
