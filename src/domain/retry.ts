import type { BackoffPolicy, Task } from './types.js';
import type { Rng } from './random.js';

/**
 * What happens to a task whose attempt ended without success: back to the
 * queue after a backoff while attempts remain in this run and the failure is
 * retryable; `failed` when the agent said retrying cannot help; `dead` (the
 * dead letter) when the attempts are used up.
 */
export type AttemptOutcome = { kind: 'retry'; delayMs: number } | { kind: 'failed' } | { kind: 'dead' };

export function afterFailedAttempt(task: Pick<Task, 'attempts' | 'attemptsBase' | 'maxAttempts' | 'backoff'>, retryable: boolean, rng: Rng): AttemptOutcome {
  if (!retryable) return { kind: 'failed' };
  const used = task.attempts - task.attemptsBase;
  if (used >= task.maxAttempts) return { kind: 'dead' };
  return { kind: 'retry', delayMs: backoffDelay(task.backoff, used, rng) };
}

/**
 * Delay before retry number `retry` (1 for the first retry). Exponential:
 * initial × 2^(retry−1), capped at max; fixed: initial. With jitter the delay
 * is drawn uniformly from [delay/2, delay].
 */
export function backoffDelay(policy: BackoffPolicy, retry: number, rng: Rng): number {
  const base =
    policy.strategy === 'fixed'
      ? policy.initialMs
      : Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(0, retry - 1), 52));
  const capped = Math.min(policy.maxMs, base);
  return Math.round(policy.jitter ? capped / 2 + (capped / 2) * rng() : capped);
}

/** `TASK_RETRY_LIMIT` counts retries; the first run is not a retry. */
export function maxAttemptsFor(retryLimit: number): number {
  return retryLimit + 1;
}
