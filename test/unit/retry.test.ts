import { describe, expect, it } from 'vitest';
import { afterFailedAttempt, maxAttemptsFor } from '../../src/domain/retry.js';

describe('retry decisions', () => {
  it('TASK_RETRY_LIMIT counts retries after the first attempt', () => {
    expect(maxAttemptsFor(3)).toBe(4);
    expect(maxAttemptsFor(0)).toBe(1);
  });

  it.each([
    [1, 4, true, 'retry'],
    [3, 4, true, 'retry'],
    [4, 4, true, 'fail'],
    [1, 4, false, 'fail'],
    [1, 1, true, 'fail'],
  ] as const)('attempt %i of %i, retryable=%s → %s', (attempt, max, retryable, kind) => {
    expect(afterFailedAttempt(attempt, max, retryable).kind).toBe(kind);
  });
});
