import type { Asset, BackoffPolicy, RingOrUnassigned, Task, TaskTarget, TaskType } from '../domain/types.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { Rng } from '../domain/random.js';
import type { EventBus } from '../domain/events.js';

/** The most tasks one page of a list holds. */
export const LIST_LIMIT_MAX = 500;

export interface TaskEngineSettings {
  /** Default time one attempt may run. */
  taskTimeoutMs: number;
  /** Default retries after the first attempt. */
  taskRetryLimit: number;
  /** How long an agent holds a task without a heartbeat or progress report. */
  leaseMs: number;
  /** Waiting this long counts as one priority level (Infinity: no aging). */
  agingMs: number;
  defaultBackoff: BackoffPolicy;
  /** Whether a ring of that name is configured (for `{ ring }` targets). @default any name */
  ringExists?: (name: string) => boolean;
}

export interface SubmitInput {
  type: string;
  parameters?: Record<string, unknown>;
  priority?: number;
  target?: TaskTarget | null;
  maxAttempts?: number;
  backoff?: Partial<BackoffPolicy>;
  timeoutMs?: number;
  idempotencyKey?: string;
  runAfter?: number;
  deadline?: number;
}

/** A task in progress on a worker. Times are on the monotonic clock but `startedAt`. */
export interface RunningTask {
  attempt: number;
  /** Wall clock, for the attempt's record. */
  startedAt: number;
  /** When the attempt has run too long. */
  timeoutAt: number;
  /** When the attempt is over unless the agent says it runs it (a heartbeat that lists it, or progress). */
  leaseUntil: number;
  /** When the assignment was handed to the agent's channel. */
  assignedAt: number;
  /**
   * The channel's reference of the assignment: a network agent's command id, which the agent's heartbeat
   * says it has handled (`ack`); 0 where there is none (in-process agents, attempts restored after a restart).
   */
  ref: number;
}

/** An attempt the agent says it holds: running, or ended with its result not yet delivered. */
export interface HeldAttempt {
  taskId: string;
  /** Missing from agents that list task ids only. */
  attempt?: number;
}

/**
 * How long after an assignment was handed over an agent that does not say which commands it has handled
 * (`ack`) may leave it out of its heartbeats before it counts as not running.
 */
export const UNLISTED_GRACE_MS = 2000;

/**
 * An agent as the engine sees it: what it can run, where it sits, how many
 * tasks it may hold, and how to reach it. The agent directory (agents.ts) makes the object; the pieces that
 * hear of agents (heartbeats, sweeper, ring moves, operators) keep `online`, `ring` and `asset` current; the
 * engine owns `running`.
 */
export interface Worker {
  readonly id: string;
  capabilities: ReadonlySet<TaskType>;
  ring: RingOrUnassigned;
  asset: Asset | null;
  concurrency: number;
  online: boolean;
  readonly running: Map<string, RunningTask>;
  /** Monotonic. */
  lastAssignedAt: number;
  /**
   * Hands a started attempt to the agent; reads the task at once and keeps no reference to it. Returns the
   * assignment's reference (see RunningTask.ref), or null when the agent cannot be reached now (nothing sent).
   */
  assign(task: Task): number | null;
  /** Tells the agent to stop an attempt. */
  cancel(taskId: string, attempt: number): void;
}

export type ResultReport = { success: true; result?: unknown } | { success: false; error: string; retryable?: boolean };

export interface TaskEngineOptions {
  store: Store;
  clock: Clock;
  rng: Rng;
  settings: TaskEngineSettings;
  events: EventBus;
  log: Logger;
  /** False while the store cannot commit: nothing is dispatched then. @default always true */
  canWrite?: () => boolean;
}
