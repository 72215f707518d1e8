import type Database from 'better-sqlite3';
import type { Task, TaskStatus } from '../../domain/types.js';
import { TASK_STATUSES } from '../../domain/types.js';
import type { TaskAttempt, TaskFilter, TaskStore } from '../task-store.js';
import type { SqliteContext } from './context.js';
import { run } from './context.js';
import type { AttemptRow, TaskRow } from './rows.js';
import { attemptRow, taskRow, taskStateRow, toTask } from './rows.js';
import type { Step } from './writer.js';

/** The TaskStore verbs on SQLite: its statements, prepared once on the reading connection (writes send their SQL to the writer). */
export function sqliteTaskStore(ctx: SqliteContext): TaskStore {
  const db = ctx.db;
  const st = {
    insertTask: db.prepare(
      `INSERT INTO tasks (seq, id, type, parameters, priority, status, assigned_to, attempts, max_attempts, created_at, started_at,
         completed_at, result, error, target, attempts_base, backoff, timeout_ms, idempotency_key, run_after, deadline, lease_expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    saveTask: db.prepare(
      `UPDATE tasks SET status = ?, assigned_to = ?, attempts = ?, max_attempts = ?, started_at = ?, completed_at = ?, result = ?,
         error = ?, attempts_base = ?, run_after = ?, lease_expires_at = ?, priority = ?
       WHERE seq = ?`,
    ),
    recordStart: db.prepare(
      "UPDATE tasks SET status = 'in_progress', assigned_to = ?, attempts = ?, started_at = ?, run_after = NULL, lease_expires_at = ? WHERE seq = ?",
    ),
    renewLeases: db.prepare("UPDATE tasks SET lease_expires_at = ? WHERE assigned_to = ? AND status = 'in_progress'"),
    getTask: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE id = ?'),
    byIdempotencyKey: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE idempotency_key = ?'),
    attempts: db.prepare<[string], AttemptRow>(
      'SELECT t.id AS task_id, a.* FROM task_attempts a JOIN tasks t ON t.seq = a.task_seq WHERE t.id = ? ORDER BY a.attempt',
    ),
    saveAttempt: db.prepare(
      `INSERT INTO task_attempts (task_seq, attempt, agent_id, started_at, ended_at, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(task_seq, attempt) DO UPDATE SET ended_at = excluded.ended_at, outcome = excluded.outcome, error = excluded.error`,
    ),
    live: db.prepare<[], TaskRow>("SELECT * FROM tasks WHERE status IN ('pending', 'in_progress') ORDER BY seq"),
    maxSeq: db.prepare<[], { m: number | null }>('SELECT MAX(seq) AS m FROM tasks'),
    countByStatus: db.prepare<[], { status: string; n: number }>('SELECT status, COUNT(*) AS n FROM tasks GROUP BY status'),
    attemptsByAgent: db.prepare<[], { agent_id: string; succeeded: number; failed: number }>(
      `SELECT agent_id, SUM(succeeded) AS succeeded, SUM(failed) AS failed FROM (
         SELECT assigned_to AS agent_id, COUNT(*) AS succeeded, 0 AS failed FROM tasks WHERE status = 'completed' AND assigned_to IS NOT NULL GROUP BY assigned_to
         UNION ALL
         SELECT agent_id, 0, COUNT(*) FROM task_attempts WHERE outcome IS NOT NULL AND outcome <> 'succeeded' GROUP BY agent_id
       ) GROUP BY agent_id`,
    ),
  };
  const listCache = new Map<string, Database.Statement<unknown[], TaskRow>>();

  const self: TaskStore = {
    insertTasks(tasks: readonly Task[]): Promise<void> {
      const sql = st.insertTask.source;
      return ctx.write(tasks.map((t) => ({ sql, params: taskRow(t) }))).then(() => undefined);
    },

    saveTask(task: Task, endedAttempt: TaskAttempt | null = null): Promise<void> {
      const steps: Step[] = [{ sql: st.saveTask.source, params: taskStateRow(task) }];
      // A successful attempt is the completed task's last one: its record is read from the task row.
      if (endedAttempt && endedAttempt.outcome !== 'succeeded') steps.push({ sql: st.saveAttempt.source, params: attemptRow(endedAttempt) });
      // It sets every column a later write changes, so a task start queued before it need not run.
      return ctx.write(steps, { key: `task:${task.seq}`, supersedable: steps.length === 1, full: true }).then(() => undefined);
    },

    recordStart(task: Task): Promise<void> {
      return ctx.write(
        [{ sql: st.recordStart.source, params: [task.assignedTo, task.attempts, task.startedAt, task.leaseExpiresAt, task.seq] }],
        { key: `task:${task.seq}`, supersedable: true, full: false },
      ).then(() => undefined);
    },

    renewLeases(agentId: string, until: number): Promise<void> {
      return ctx.write([{ sql: st.renewLeases.source, params: [until, agentId] }]).then(() => undefined);
    },

    getTask(id: string): Promise<Task | null> {
      return run(() => {
        const row = st.getTask.get(id);
        return row ? toTask(row) : null;
      });
    },

    findTaskByIdempotencyKey(key: string): Promise<Task | null> {
      return run(() => {
        const row = st.byIdempotencyKey.get(key);
        return row ? toTask(row) : null;
      });
    },

    getAttempts(taskId: string): Promise<TaskAttempt[]> {
      return run(() => {
        const attempts: TaskAttempt[] = st.attempts.all(taskId).map((r) => ({
          taskId: r.task_id,
          taskSeq: r.task_seq,
          attempt: r.attempt,
          agentId: r.agent_id,
          startedAt: r.started_at,
          endedAt: r.ended_at,
          outcome: r.outcome as TaskAttempt['outcome'],
          error: r.error,
        }));
        const row = st.getTask.get(taskId);
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
      });
    },

    loadLiveTasks(): Promise<Task[]> {
      return run(() => st.live.all().map(toTask));
    },

    maxTaskSeq(): Promise<number> {
      return run(() => st.maxSeq.get()?.m ?? 0);
    },

    listTasks(filter: TaskFilter, limit: number, before?: number): Promise<Task[]> {
      return run(() => {
        const where: string[] = [];
        const args: (string | number)[] = [];
        if (filter.status !== undefined) {
          where.push('status = ?');
          args.push(filter.status);
        }
        if (filter.type !== undefined) {
          where.push('type = ?');
          args.push(filter.type);
        }
        if (filter.agentId !== undefined) {
          where.push('assigned_to = ?');
          args.push(filter.agentId);
        }
        if (before !== undefined) {
          where.push('seq < ?');
          args.push(before);
        }
        const sql = `SELECT * FROM tasks ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
        let stmt = listCache.get(sql);
        if (!stmt) {
          stmt = ctx.db.prepare<unknown[], TaskRow>(sql);
          listCache.set(sql, stmt);
        }
        return stmt.all(...args, limit).map(toTask);
      });
    },

    countTasksByStatus(): Promise<Record<TaskStatus, number>> {
      return run(() => {
        const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
        for (const r of st.countByStatus.all()) counts[r.status as TaskStatus] = r.n;
        return counts;
      });
    },

    countAttemptsByAgent(): Promise<Map<string, { succeeded: number; failed: number }>> {
      return run(
        () =>
          new Map(
            st.attemptsByAgent.all().map((r) => [r.agent_id, { succeeded: r.succeeded, failed: r.failed }] as const),
          ),
      );
    },
  };
  return self;
}
