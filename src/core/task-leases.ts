import type { Task } from '../domain/types.js';
import type { HeldAttempt, RunningTask, Worker } from './task-types.js';
import { UNLISTED_GRACE_MS } from './task-types.js';

/**
 * What an agent's heartbeat says of the attempts the engine believes it runs. An attempt it lists keeps its
 * lease (`renewed`, its lease already extended to `mono + leaseMs`). An attempt it does not list although it
 * must have received it is `over` (the assignment never reached a process that runs it, or that process is
 * gone). `ack` is the last command the agent had handled when it wrote the heartbeat; without it, an
 * assignment counts as received UNLISTED_GRACE_MS after it was handed over. An attempt not received yet keeps
 * no lease: if it never arrives, its lease runs out.
 */
export function judgeHeldAttempts(
  running: ReadonlyMap<string, RunningTask>,
  held: readonly HeldAttempt[],
  ack: number | undefined,
  mono: number,
  leaseMs: number,
): { renewed: string[]; over: [string, RunningTask][] } {
  const renewed: string[] = [];
  const over: [string, RunningTask][] = [];
  for (const [taskId, run] of running) {
    if (held.some((h) => h.taskId === taskId && (h.attempt === undefined || h.attempt === run.attempt))) {
      run.leaseUntil = mono + leaseMs;
      renewed.push(taskId);
      continue;
    }
    const received = ack !== undefined ? ack >= run.ref : mono - run.assignedAt > UNLISTED_GRACE_MS;
    if (received) over.push([taskId, run]);
  }
  return { renewed, over };
}

/**
 * The orchestrator could not hear its agents for `ms` (it stalled, or the store could not commit and results
 * were refused): neither a lease nor a timeout runs out for that time.
 */
export function discountRuns(workers: Iterable<Worker>, ms: number): void {
  for (const worker of workers) {
    for (const run of worker.running.values()) {
      run.leaseUntil += ms;
      run.timeoutAt += ms;
    }
  }
}

/**
 * The agent's process started again: the assignments the previous process had acknowledged (command ids up
 * to `acked`) count as received by the new one, whose next heartbeat with an `ack` lists what it still holds.
 */
export function forgetDelivered(worker: Worker, acked: number): void {
  for (const run of worker.running.values()) {
    if (run.ref <= acked) {
      run.ref = 0;
      run.assignedAt = -Infinity;
    }
  }
}

/**
 * Attempts past their timeout or their lease (monotonic `mono`), with the outcome and the reason to end them
 * with. Attempts whose task is no longer live are dropped from their worker on the way.
 */
export function overdueAttempts(
  workers: Iterable<Worker>,
  live: (taskId: string) => Task | undefined,
  mono: number,
  leaseMs: number,
): { worker: Worker; task: Task; attempt: number; outcome: 'timed_out' | 'lease_expired'; reason: string }[] {
  const out: { worker: Worker; task: Task; attempt: number; outcome: 'timed_out' | 'lease_expired'; reason: string }[] = [];
  for (const worker of workers) {
    for (const [taskId, run] of worker.running) {
      const task = live(taskId);
      if (!task) {
        worker.running.delete(taskId);
        continue;
      }
      if (mono > run.timeoutAt) {
        out.push({ worker, task, attempt: run.attempt, outcome: 'timed_out', reason: `attempt ${run.attempt} timed out after ${formatMs(task.timeoutMs)} on ${worker.id}` });
      } else if (mono > run.leaseUntil) {
        out.push({ worker, task, attempt: run.attempt, outcome: 'lease_expired', reason: `attempt ${run.attempt} lost its lease on ${worker.id} (no heartbeat or progress for ${formatMs(leaseMs)})` });
      }
    }
  }
  return out;
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
