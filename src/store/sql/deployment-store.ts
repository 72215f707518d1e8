import type { DeploymentRecord, Execution, GateEvaluation } from '../../domain/deployment.js';
import type { DeploymentStore } from '../deployment-store.js';
import type { SqlContext } from './context.js';
import type { DeploymentRow, ExecutionRow, GateRow } from './rows.js';
import { toDeployment, toExecution } from './rows.js';
import type { Step } from './write-op.js';

/** The statements of the deployment writes a batch may hold many of (see postgres/bulk.ts). */
export const DEPLOYMENT_SQL = {
  // An update in place (not a delete and insert): the index of executions by device is left alone.
  saveExecution: `INSERT INTO deployment_executions (deployment_seq, device_id, stage, state, task_id, reason, baseline, observed,
     cpu_delta, memory_delta, drain_delta, rollback_task_id, queued_at, started_at, ended_at, observed_at)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
   ON CONFLICT (deployment_seq, device_id) DO UPDATE SET stage = excluded.stage, state = excluded.state, task_id = excluded.task_id,
     reason = excluded.reason, baseline = excluded.baseline, observed = excluded.observed, cpu_delta = excluded.cpu_delta,
     memory_delta = excluded.memory_delta, drain_delta = excluded.drain_delta, rollback_task_id = excluded.rollback_task_id,
     queued_at = excluded.queued_at, started_at = excluded.started_at, ended_at = excluded.ended_at, observed_at = excluded.observed_at`,
} as const;

const ACTIVE = "('scheduled', 'in_progress', 'paused', 'halted')";

/** The DeploymentStore verbs, for any SQL adapter. */
export function sqlDeploymentStore(ctx: SqlContext): DeploymentStore {
  function executionSteps(deploymentSeq: number, executions: readonly Execution[]): Step[] {
    return executions.map((e) => ({
      sql: DEPLOYMENT_SQL.saveExecution,
      params: [
        deploymentSeq, e.deviceId, e.stage, e.state, e.taskId, e.reason,
        e.baseline === null ? null : JSON.stringify(e.baseline), e.observed === null ? null : JSON.stringify(e.observed),
        e.cpuDelta, e.memoryDelta, e.drainDelta, e.rollbackTaskId, e.queuedAt, e.startedAt, e.endedAt, e.observedAt,
      ],
    }));
  }

  function gateStep(deploymentSeq: number, e: GateEvaluation): Step {
    return {
      sql: 'INSERT INTO gate_evaluations (deployment_seq, stage, ring, at, verdict, reason, figures) VALUES (?, ?, ?, ?, ?, ?, ?)',
      params: [deploymentSeq, e.stage, e.ring, e.at, e.verdict, e.reason, JSON.stringify(e.figures)],
    };
  }

  return {
    insertDeployment(d: Omit<DeploymentRecord, 'seq'>): Promise<number> {
      return ctx.write([
        {
          sql: `INSERT INTO deployments (id, kind, spec, status, stage, phase, soak_until, gate_reset_at, halt_reason, detail, created_at, started_at, ended_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
          params: [d.id, d.kind, JSON.stringify(d.spec), d.status, d.stage, d.phase, d.soakUntil, d.gateResetAt, d.haltReason, JSON.stringify(d.detail), d.createdAt, d.startedAt, d.endedAt],
          want: 'row',
        },
      ]).then(([row]) => Number((row as { seq: number }).seq));
    },

    saveDeployment(d: DeploymentRecord, also: { executions?: readonly Execution[]; evaluations?: readonly GateEvaluation[] } = {}): Promise<void> {
      // One write of several steps: the writer runs a write's steps in one transaction (or savepoint), so all or none commit.
      return ctx.write([
        {
          sql: `UPDATE deployments SET status = ?, stage = ?, phase = ?, soak_until = ?, gate_reset_at = ?, halt_reason = ?, detail = ?, started_at = ?, ended_at = ?
                WHERE seq = ?`,
          params: [d.status, d.stage, d.phase, d.soakUntil, d.gateResetAt, d.haltReason, JSON.stringify(d.detail), d.startedAt, d.endedAt, d.seq],
        },
        ...executionSteps(d.seq, also.executions ?? []),
        ...(also.evaluations ?? []).map((e) => gateStep(d.seq, e)),
      ]).then(() => undefined);
    },

    saveExecutions(deploymentSeq: number, executions: readonly Execution[]): Promise<void> {
      if (executions.length === 0) return Promise.resolve();
      return ctx.write(executionSteps(deploymentSeq, executions)).then(() => undefined);
    },

    insertGateEvaluation(deploymentSeq: number, e: GateEvaluation): Promise<void> {
      return ctx.write([gateStep(deploymentSeq, e)]).then(() => undefined);
    },

    async getDeployment(id: string): Promise<DeploymentRecord | null> {
      const row = await ctx.one<DeploymentRow>('SELECT * FROM deployments WHERE id = ?', [id]);
      return row ? toDeployment(row) : null;
    },

    async listDeployments(limit: number, before?: number): Promise<DeploymentRecord[]> {
      const rows = await ctx.all<DeploymentRow>('SELECT * FROM deployments WHERE seq < ? ORDER BY seq DESC LIMIT ?', [before ?? Number.MAX_SAFE_INTEGER, limit]);
      return rows.map(toDeployment);
    },

    async loadActiveDeployments(): Promise<DeploymentRecord[]> {
      return (await ctx.all<DeploymentRow>(`SELECT * FROM deployments WHERE status IN ${ACTIVE} ORDER BY seq`)).map(toDeployment);
    },

    async getExecutions(deploymentSeq: number): Promise<Execution[]> {
      return (await ctx.all<ExecutionRow>('SELECT * FROM deployment_executions WHERE deployment_seq = ? ORDER BY queued_at, device_id', [deploymentSeq])).map(toExecution);
    },

    async deviceExecutions(deviceId: string, limit: number): Promise<{ deploymentId: string; execution: Execution }[]> {
      const rows = await ctx.all<ExecutionRow & { deployment_id: string }>(
        `SELECT e.*, d.id AS deployment_id FROM deployment_executions e JOIN deployments d ON d.seq = e.deployment_seq
         WHERE e.device_id = ? ORDER BY e.deployment_seq DESC LIMIT ?`,
        [deviceId, limit],
      );
      return rows.map((r) => ({ deploymentId: r.deployment_id, execution: toExecution(r) }));
    },

    async getGateEvaluations(deploymentSeq: number): Promise<GateEvaluation[]> {
      const rows = await ctx.all<GateRow>('SELECT * FROM gate_evaluations WHERE deployment_seq = ? ORDER BY id', [deploymentSeq]);
      return rows.map((r) => ({ stage: r.stage, ring: r.ring, at: r.at, verdict: r.verdict as GateEvaluation['verdict'], reason: r.reason, figures: JSON.parse(r.figures) as Record<string, number> }));
    },
  };
}
