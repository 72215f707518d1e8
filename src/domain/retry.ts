/**
 * What happens to a task whose attempt ended without success: it goes back to
 * the queue while attempts remain and the failure is retryable, otherwise it
 * fails with the last error.
 */
export type AttemptOutcome = { kind: 'retry' } | { kind: 'fail' };

export function afterFailedAttempt(attempts: number, maxAttempts: number, retryable: boolean): AttemptOutcome {
  return retryable && attempts < maxAttempts ? { kind: 'retry' } : { kind: 'fail' };
}

/** `TASK_RETRY_LIMIT` counts retries; the first run is not a retry. */
export function maxAttemptsFor(retryLimit: number): number {
  return retryLimit + 1;
}
