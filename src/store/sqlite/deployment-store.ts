import type { DeploymentRecord, Execution, GateEvaluation } from '../../domain/deployment.js';
import type { DeploymentStore } from '../deployment-store.js';
import type { SqliteContext } from './context.js';
import { run } from './context.js';
import type { DeploymentRow, ExecutionRow, GateRow } from './rows.js';
import { toDeployment, toExecution } from './rows.js';
import type { Step } from './writer.js';

/** The DeploymentStore verbs on SQLite: its statements, prepared once on the reading connection (writes send their SQL to the writer). */
export function sqliteDeploymentStore(ctx: SqliteContext): DeploymentStore {
  const db = ctx.db;
  const st = {
    insertDeployment: db.prepare(
      `INSERT INTO deployments (id, kind, spec, status, stage, phase, soak_until, gate_reset_at, halt_reason, detail, created_at, started_at, ended_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    saveDeployment: db.prepare(
      `UPDATE deployments SET status = ?, stage = ?, phase = ?, soak_until = ?, gate_reset_at = ?, halt_reason = ?, detail = ?, started_at = ?, ended_at = ?
       WHERE seq = ?`,
    ),
    // An update in place (not REPLACE's delete and insert): the index of executions by device is left alone.
    saveExecution: db.prepare(
      `INSERT INTO deployment_executions (deployment_seq, device_id, stage, state, task_id, reason, baseline, observed,
         cpu_delta, memory_delta, drain_delta, rollback_task_id, queued_at, started_at, ended_at, observed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (deployment_seq, device_id) DO UPDATE SET stage = excluded.stage, state = excluded.state, task_id = excluded.task_id,
         reason = excluded.reason, baseline = excluded.baseline, observed = excluded.observed, cpu_delta = excluded.cpu_delta,
         memory_delta = excluded.memory_delta, drain_delta = excluded.drain_delta, rollback_task_id = excluded.rollback_task_id,
         queued_at = excluded.queued_at, started_at = excluded.started_at, ended_at = excluded.ended_at, observed_at = excluded.observed_at`,
    ),
    insertGate: db.prepare('INSERT INTO gate_evaluations (deployment_seq, stage, ring, at, verdict, reason, figures) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    getDeployment: db.prepare<[string], DeploymentRow>('SELECT * FROM deployments WHERE id = ?'),
    listDeployments: db.prepare<[number, number], DeploymentRow>('SELECT * FROM deployments WHERE seq < ? ORDER BY seq DESC LIMIT ?'),
    activeDeployments: db.prepare<[], DeploymentRow>("SELECT * FROM deployments WHERE status IN ('scheduled', 'in_progress', 'paused', 'halted') ORDER BY seq"),
    executions: db.prepare<[number], ExecutionRow>('SELECT * FROM deployment_executions WHERE deployment_seq = ? ORDER BY queued_at, device_id'),
    deviceExecutions: db.prepare<[string, number], ExecutionRow & { deployment_id: string }>(
      `SELECT e.*, d.id AS deployment_id FROM deployment_executions e JOIN deployments d ON d.seq = e.deployment_seq
       WHERE e.device_id = ? ORDER BY e.deployment_seq DESC LIMIT ?`,
    ),
    gates: db.prepare<[number], GateRow>('SELECT * FROM gate_evaluations WHERE deployment_seq = ? ORDER BY id'),
  };
  function executionSteps(deploymentSeq: number, executions: readonly Execution[]): Step[] {
    const sql = st.saveExecution.source;
    return executions.map((e) => ({
      sql,
      params: [
        deploymentSeq, e.deviceId, e.stage, e.state, e.taskId, e.reason,
        e.baseline === null ? null : JSON.stringify(e.baseline), e.observed === null ? null : JSON.stringify(e.observed),
        e.cpuDelta, e.memoryDelta, e.drainDelta, e.rollbackTaskId, e.queuedAt, e.startedAt, e.endedAt, e.observedAt,
      ],
    }));
  }

  function gateStep(deploymentSeq: number, e: GateEvaluation): Step {
    return { sql: st.insertGate.source, params: [deploymentSeq, e.stage, e.ring, e.at, e.verdict, e.reason, JSON.stringify(e.figures)] };
  }

  const self: DeploymentStore = {
    insertDeployment(d: Omit<DeploymentRecord, 'seq'>): Promise<number> {
      return ctx.write([
        {
          sql: st.insertDeployment.source,
          params: [d.id, d.kind, JSON.stringify(d.spec), d.status, d.stage, d.phase, d.soakUntil, d.gateResetAt, d.haltReason, JSON.stringify(d.detail), d.createdAt, d.startedAt, d.endedAt],
          want: 'rowid',
        },
      ]).then(([seq]) => seq as number);
    },

    saveDeployment(d: DeploymentRecord, also: { executions?: readonly Execution[]; evaluations?: readonly GateEvaluation[] } = {}): Promise<void> {
      // One write of several steps: the writer runs a write's steps in one transaction (or savepoint), so all or none commit.
      return ctx.write([
        { sql: st.saveDeployment.source, params: [d.status, d.stage, d.phase, d.soakUntil, d.gateResetAt, d.haltReason, JSON.stringify(d.detail), d.startedAt, d.endedAt, d.seq] },
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

    getDeployment(id: string): Promise<DeploymentRecord | null> {
      return run(() => {
        const row = st.getDeployment.get(id);
        return row ? toDeployment(row) : null;
      });
    },

    listDeployments(limit: number, before?: number): Promise<DeploymentRecord[]> {
      return run(() => st.listDeployments.all(before ?? Number.MAX_SAFE_INTEGER, limit).map(toDeployment));
    },

    loadActiveDeployments(): Promise<DeploymentRecord[]> {
      return run(() => st.activeDeployments.all().map(toDeployment));
    },

    getExecutions(deploymentSeq: number): Promise<Execution[]> {
      return run(() => st.executions.all(deploymentSeq).map(toExecution));
    },

    deviceExecutions(deviceId: string, limit: number): Promise<{ deploymentId: string; execution: Execution }[]> {
      return run(() => st.deviceExecutions.all(deviceId, limit).map((r) => ({ deploymentId: r.deployment_id, execution: toExecution(r) })));
    },

    getGateEvaluations(deploymentSeq: number): Promise<GateEvaluation[]> {
      return run(() =>
        st.gates.all(deploymentSeq).map((r) => ({ stage: r.stage, ring: r.ring, at: r.at, verdict: r.verdict as GateEvaluation['verdict'], reason: r.reason, figures: JSON.parse(r.figures) as Record<string, number> })),
      );
    },
  };
  return self;
}
