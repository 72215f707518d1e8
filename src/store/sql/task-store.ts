import type { Task, TaskStatus } from '../../domain/types.js';
import { TASK_STATUSES } from '../../domain/types.js';
import type { TaskAttempt, TaskFilter, TaskStore } from '../task-store.js';
import type { SqlContext } from './context.js';
import { whereOf } from './context.js';
import type { AttemptRow, TaskRow } from './rows.js';
import { attemptRow, taskRow, taskStateRow, toTask } from './rows.js';
import type { Step } from './write-op.js';

/** The statements of the task writes, by name: an adapter may run a batch of one of them as one statement (see postgres/bulk.ts). */
export const TASK_SQL = {
  insertTask: `INSERT INTO tasks (seq, id, type, parameters, priority, status, assigned_to, attempts, max_attempts, created_at, started_at,
     completed_at, result, error, target, attempts_base, backoff, timeout_ms, idempotency_key, run_after, deadline, lease_expires_at)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  saveTask: `UPDATE tasks SET status = ?, assigned_to = ?, attempts = ?, max_attempts = ?, started_at = ?, completed_at = ?, result = ?,
     error = ?, attempts_base = ?, run_after = ?, lease_expires_at = ?, priority = ?
   WHERE seq = ?`,
  recordStart: "UPDATE tasks SET status = 'in_progress', assigned_to = ?, attempts = ?, started_at = ?, run_after = NULL, lease_expires_at = ? WHERE seq = ?",
  saveAttempt: `INSERT INTO task_attempts (task_seq, attempt, agent_id, started_at, ended_at, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?)
   ON CONFLICT(task_seq, attempt) DO UPDATE SET ended_at = excluded.ended_at, outcome = excluded.outcome, error = excluded.error`,
} as const;

const READ = {
  getTask: 'SELECT * FROM tasks WHERE id = ?',
  byIdempotencyKey: 'SELECT * FROM tasks WHERE idempotency_key = ?',
  attempts: 'SELECT t.id AS task_id, a.* FROM task_attempts a JOIN tasks t ON t.seq = a.task_seq WHERE t.id = ? ORDER BY a.attempt',
  live: "SELECT * FROM tasks WHERE status IN ('pending', 'in_progress') ORDER BY seq",
  maxSeq: 'SELECT MAX(seq) AS m FROM tasks',
  countByStatus: 'SELECT status, COUNT(*) AS n FROM tasks GROUP BY status',
  attemptsByAgent: `SELECT agent_id, SUM(succeeded) AS succeeded, SUM(failed) AS failed FROM (
     SELECT assigned_to AS agent_id, COUNT(*) AS succeeded, 0 AS failed FROM tasks WHERE status = 'completed' AND assigned_to IS NOT NULL GROUP BY assigned_to
     UNION ALL
     SELECT agent_id, 0, COUNT(*) FROM task_attempts WHERE outcome IS NOT NULL AND outcome <> 'succeeded' GROUP BY agent_id
   ) AS per_agent GROUP BY agent_id`,
} as const;

/** The TaskStore verbs, for any SQL adapter. */
export function sqlTaskStore(ctx: SqlContext): TaskStore {
  return {
    insertTasks(tasks: readonly Task[]): Promise<void> {
      return ctx.write(tasks.map((t) => ({ sql: TASK_SQL.insertTask, params: taskRow(t) }))).then(() => undefined);
    },

    saveTask(task: Task, endedAttempt: TaskAttempt | null = null): Promise<void> {
      const steps: Step[] = [{ sql: TASK_SQL.saveTask, params: taskStateRow(task) }];
      // A successful attempt is the completed task's last one: its record is read from the task row.
      if (endedAttempt && endedAttempt.outcome !== 'succeeded') steps.push({ sql: TASK_SQL.saveAttempt, params: attemptRow(endedAttempt) });
      // It sets every column a later write changes, so a task start queued before it need not run.
      return ctx.write(steps, { key: `task:${task.seq}`, supersedable: steps.length === 1, full: true }).then(() => undefined);
    },

    recordStart(task: Task): Promise<void> {
      return ctx.write(
        [{ sql: TASK_SQL.recordStart, params: [task.assignedTo, task.attempts, task.startedAt, task.leaseExpiresAt, task.seq] }],
        { key: `task:${task.seq}`, supersedable: true, full: false },
      ).then(() => undefined);
    },

    renewLeases(agentId: string, until: number): Promise<void> {
      return ctx.write([{ sql: "UPDATE tasks SET lease_expires_at = ? WHERE assigned_to = ? AND status = 'in_progress'", params: [until, agentId] }]).then(() => undefined);
    },

    async getTask(id: string): Promise<Task | null> {
      const row = await ctx.one<TaskRow>(READ.getTask, [id]);
      return row ? toTask(row) : null;
    },

    async findTaskByIdempotencyKey(key: string): Promise<Task | null> {
      const row = await ctx.one<TaskRow>(READ.byIdempotencyKey, [key]);
      return row ? toTask(row) : null;
    },

    async getAttempts(taskId: string): Promise<TaskAttempt[]> {
      const [rows, row] = await Promise.all([ctx.all<AttemptRow>(READ.attempts, [taskId]), ctx.one<TaskRow>(READ.getTask, [taskId])]);
      const attempts: TaskAttempt[] = rows.map((r) => ({
        taskId: r.task_id,
        taskSeq: r.task_seq,
        attempt: r.attempt,
        agentId: r.agent_id,
        startedAt: r.started_at,
        endedAt: r.ended_at,
        outcome: r.outcome as TaskAttempt['outcome'],
        error: r.error,
      }));
      if (row && row.status === 'completed' && row.assigned_to !== null && !attempts.some((a) => a.attempt === row.attempts)) {
        attempts.push({
          taskId,
          taskSeq: row.seq,
          attempt: row.attempts,
          agentId: row.assigned_to,
          startedAt: row.started_at ?? row.created_at,
          endedAt: row.completed_at,
          outcome: 'succeeded',
          error: null,
        });
      }
      return attempts;
    },

    async loadLiveTasks(): Promise<Task[]> {
      return (await ctx.all<TaskRow>(READ.live)).map(toTask);
    },

    async maxTaskSeq(): Promise<number> {
      return (await ctx.one<{ m: number | null }>(READ.maxSeq))?.m ?? 0;
    },

    async listTasks(filter: TaskFilter, limit: number, before?: number): Promise<Task[]> {
      const { where, params } = whereOf([
        filter.status !== undefined ? ['status = ?', filter.status] : null,
        filter.type !== undefined ? ['type = ?', filter.type] : null,
        filter.agentId !== undefined ? ['assigned_to = ?', filter.agentId] : null,
        before !== undefined ? ['seq < ?', before] : null,
      ]);
      return (await ctx.all<TaskRow>(`SELECT * FROM tasks ${where} ORDER BY seq DESC LIMIT ?`, [...params, limit])).map(toTask);
    },

    async countTasksByStatus(): Promise<Record<TaskStatus, number>> {
      const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
      for (const r of await ctx.all<{ status: string; n: number }>(READ.countByStatus)) counts[r.status as TaskStatus] = r.n;
      return counts;
    },

    async countAttemptsByAgent(): Promise<Map<string, { succeeded: number; failed: number }>> {
      const rows = await ctx.all<{ agent_id: string; succeeded: number; failed: number }>(READ.attemptsByAgent);
      return new Map(rows.map((r) => [r.agent_id, { succeeded: r.succeeded, failed: r.failed }] as const));
    },
  };
}
