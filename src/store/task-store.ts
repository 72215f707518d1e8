import type { Task, TaskStatus } from '../domain/types.js';

/**
 * How an attempt ended without success. `not_running`: the agent's heartbeats did not list it although it had
 * received it (the process that got it is gone, or never ran it).
 */
export type AttemptEndOutcome = 'failed' | 'timed_out' | 'lease_expired' | 'agent_lost' | 'not_running' | 'interrupted' | 'cancelled';

export interface TaskFilter {
  status?: TaskStatus;
  type?: string;
  agentId?: string;
}

export interface TaskAttempt {
  taskId: string;
  taskSeq: number;
  attempt: number;
  agentId: string;
  startedAt: number;
  endedAt: number | null;
  outcome: 'succeeded' | AttemptEndOutcome | null;
  error: string | null;
}

/**
 * Tasks and their attempts. The task engine decides every transition and holds the live tasks; the store
 * records them. Every verb is atomic, and a write's promise resolves once it is durably committed, after every write
 * made before it (see Store).
 */
export interface TaskStore {
  /** Inserts new tasks (their `seq` already assigned) in one commit. */
  insertTasks(tasks: readonly Task[]): Promise<void>;
  /** Writes a task's current state and, when an attempt just ended, that attempt's record, in one write. */
  saveTask(task: Task, endedAttempt?: TaskAttempt | null): Promise<void>;
  /** Writes that a task started an attempt (the narrow write of the hottest transition). */
  recordStart(task: Task): Promise<void>;
  /** Moves the lease of every task in progress on `agentId` to `until`. */
  renewLeases(agentId: string, until: number): Promise<void>;
  getTask(id: string): Promise<Task | null>;
  findTaskByIdempotencyKey(key: string): Promise<Task | null>;
  getAttempts(taskId: string): Promise<TaskAttempt[]>;
  /** Tasks not yet ended (pending or in progress), in submission order. */
  loadLiveTasks(): Promise<Task[]>;
  /** The highest `seq` stored, 0 when there is none. */
  maxTaskSeq(): Promise<number>;
  /** Newest first; `before` is the `seq` of the last task of the previous page. */
  listTasks(filter: TaskFilter, limit: number, before?: number): Promise<Task[]>;
  countTasksByStatus(): Promise<Record<TaskStatus, number>>;
  /** Ended attempts per agent: how many succeeded and how many did not. */
  countAttemptsByAgent(): Promise<Map<string, { succeeded: number; failed: number }>>;
}
