import type { AdviceApplied, AdviceRecord, AdviceTrigger } from '../../domain/advice.js';
import type { Agent, BackoffPolicy, Connectivity, DeviceInfo, RingMove, Task, TaskStatus, TaskTarget, TaskType } from '../../domain/types.js';
import type { DeploymentRecord, DeploymentSpec, DeploymentState, Execution, ExecutionState } from '../../domain/deployment.js';
import type { DeviceMetrics } from '../../domain/metrics.js';
import type { ApiToken, AuditEntry, EnrollmentToken, Role } from '../../domain/security.js';
import type { DeviceHistoryPoint, DeviceRecord } from '../fleet-store.js';
import type { TaskAttempt } from '../task-store.js';

/*
 * Rows of the tables as the SQL adapters read them, and the mappers between them and the domain's types. Both
 * schemas keep the same columns in the same representation (times as integer milliseconds, JSON as text,
 * booleans as 0 and 1), so that one set of mappers serves SQLite and PostgreSQL.
 */

export interface AgentRow {
  id: string;
  kind: string;
  capabilities: string;
  connectivity: string;
  registered_at: number | null;
  last_heartbeat_at: number | null;
  device: string | null;
  ring: string;
  asset_id: string | null;
  created_at: number;
  credential_hash: string | null;
  approval: string;
}

export interface TaskRow {
  seq: number;
  id: string;
  type: string;
  parameters: string;
  priority: number;
  status: string;
  assigned_to: string | null;
  attempts: number;
  max_attempts: number;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  result: string | null;
  error: string | null;
  target: string | null;
  attempts_base: number;
  backoff: string;
  timeout_ms: number;
  idempotency_key: string | null;
  run_after: number | null;
  deadline: number | null;
  lease_expires_at: number | null;
}

export interface AttemptRow {
  task_id: string;
  task_seq: number;
  attempt: number;
  agent_id: string;
  started_at: number;
  ended_at: number | null;
  outcome: string | null;
  error: string | null;
}

export interface DeviceRow {
  id: string;
  site: string | null;
  department: string | null;
  manufacturer: string | null;
  model: string | null;
  os_name: string | null;
  tags: string | null;
  battery: number | null;
  charging: number | null;
  cpu: number | null;
  memory: number | null;
  disk: number | null;
  drain: number;
  cpu_trend: number;
  impact: number;
  sampled_at: number | null;
  ring: string | null;
  moved_at: number;
  pin_ring: string | null;
  connectivity: string;
  created_at: number;
}

export function toDevice(r: DeviceRow): DeviceRecord {
  return {
    id: r.id,
    site: r.site,
    department: r.department,
    manufacturer: r.manufacturer,
    model: r.model,
    osName: r.os_name,
    tags: r.tags === null ? null : (JSON.parse(r.tags) as string[]),
    metrics:
      // A sample has cpu and memory; a machine without a battery has battery and charging null.
      r.cpu === null || r.memory === null
        ? null
        : { battery: r.battery, charging: r.battery === null ? null : r.charging === 1, cpu: r.cpu, memory: r.memory, disk: r.disk ?? 0 },
    drain: r.drain,
    cpuTrend: r.cpu_trend,
    impact: r.impact,
    sampledAt: r.sampled_at,
    ring: r.ring,
    movedAt: r.moved_at,
    pinRing: r.pin_ring,
    connectivity: r.connectivity as Connectivity,
    createdAt: r.created_at,
  };
}

export interface MoveRow {
  id: number;
  agent_id: string;
  from_ring: string;
  to_ring: string;
  reason: string;
  at: number;
}

export interface HistoryRow {
  device_id: string;
  at: number;
  battery: number | null;
  charging: number | null;
  cpu: number;
  memory: number;
  disk: number;
  score: number | null;
}

export interface DeploymentRow {
  seq: number;
  id: string;
  kind: string;
  spec: string;
  status: string;
  stage: number;
  phase: string;
  soak_until: number | null;
  gate_reset_at: number;
  halt_reason: string | null;
  detail: string;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
}

export interface ExecutionRow {
  deployment_seq: number;
  device_id: string;
  stage: number;
  state: string;
  task_id: string | null;
  reason: string | null;
  baseline: string | null;
  observed: string | null;
  cpu_delta: number | null;
  memory_delta: number | null;
  drain_delta: number | null;
  rollback_task_id: string | null;
  queued_at: number;
  started_at: number | null;
  ended_at: number | null;
  observed_at: number | null;
}

export interface GateRow {
  stage: number;
  ring: string;
  at: number;
  verdict: string;
  reason: string;
  figures: string;
}

export interface ApiTokenRow {
  id: string;
  name: string;
  role: string;
  secret_hash: string;
  created_at: number;
  created_by: string;
  revoked_at: number | null;
}

export interface EnrollmentTokenRow {
  id: string;
  name: string;
  secret_hash: string;
  max_uses: number | null;
  uses: number;
  expires_at: number | null;
  require_approval: number;
  created_at: number;
  created_by: string;
  revoked_at: number | null;
}

export interface AuditRow {
  id: number;
  at: number;
  actor: string;
  actor_token_id: string | null;
  role: string | null;
  action: string;
  target: string | null;
  outcome: string;
  status: number;
  address: string | null;
}

export function toApiToken(r: ApiTokenRow): ApiToken {
  return { id: r.id, name: r.name, role: r.role as Role, createdAt: r.created_at, createdBy: r.created_by, revokedAt: r.revoked_at };
}

export function toEnrollmentToken(r: EnrollmentTokenRow): EnrollmentToken {
  return {
    id: r.id,
    name: r.name,
    maxUses: r.max_uses,
    uses: r.uses,
    expiresAt: r.expires_at,
    requireApproval: r.require_approval === 1,
    createdAt: r.created_at,
    createdBy: r.created_by,
    revokedAt: r.revoked_at,
  };
}

export function toAudit(r: AuditRow): AuditEntry {
  return {
    id: r.id,
    at: r.at,
    actor: r.actor,
    actorTokenId: r.actor_token_id,
    role: r.role as Role | null,
    action: r.action,
    target: r.target,
    outcome: r.outcome as AuditEntry['outcome'],
    status: r.status,
    address: r.address,
  };
}

export function toAgent(r: AgentRow): Agent {
  return {
    id: r.id,
    kind: r.kind as Agent['kind'],
    capabilities: JSON.parse(r.capabilities) as TaskType[],
    connectivity: r.connectivity as Agent['connectivity'],
    registeredAt: r.registered_at,
    lastHeartbeatAt: r.last_heartbeat_at,
    device: r.device === null ? null : (JSON.parse(r.device) as DeviceInfo),
    ring: r.ring,
    assetId: r.asset_id,
    createdAt: r.created_at,
    ...(r.credential_hash !== null ? { credentialHash: r.credential_hash } : {}),
    ...(r.approval === 'pending' ? { approval: 'pending' as const } : {}),
  };
}

export function toTask(r: TaskRow): Task {
  return {
    id: r.id,
    seq: r.seq,
    type: r.type as TaskType,
    parameters: JSON.parse(r.parameters) as Record<string, unknown>,
    priority: r.priority,
    status: r.status as TaskStatus,
    assignedTo: r.assigned_to,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    createdAt: r.created_at,
    startedAt: r.started_at,
    completedAt: r.completed_at,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    error: r.error,
    target: r.target === null ? null : (JSON.parse(r.target) as TaskTarget),
    attemptsBase: r.attempts_base,
    backoff: JSON.parse(r.backoff) as BackoffPolicy,
    timeoutMs: r.timeout_ms,
    idempotencyKey: r.idempotency_key,
    runAfter: r.run_after,
    deadline: r.deadline,
    leaseExpiresAt: r.lease_expires_at,
  };
}

export function toMove(r: MoveRow): RingMove {
  return {
    id: r.id,
    agentId: r.agent_id,
    from: r.from_ring,
    to: r.to_ring,
    reason: r.reason,
    at: r.at,
  };
}

export function toHistoryPoint(r: HistoryRow): DeviceHistoryPoint {
  return { at: r.at, battery: r.battery, charging: r.charging === null ? null : r.charging === 1, cpu: r.cpu, memory: r.memory, disk: r.disk, score: r.score };
}

export function toDeployment(r: DeploymentRow): DeploymentRecord {
  return {
    seq: r.seq,
    id: r.id,
    kind: r.kind as DeploymentRecord['kind'],
    spec: JSON.parse(r.spec) as DeploymentSpec,
    status: r.status as DeploymentState,
    stage: r.stage,
    phase: r.phase as DeploymentRecord['phase'],
    soakUntil: r.soak_until,
    gateResetAt: r.gate_reset_at,
    haltReason: r.halt_reason,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
  };
}

export function toExecution(r: ExecutionRow): Execution {
  return {
    deviceId: r.device_id,
    stage: r.stage,
    state: r.state as ExecutionState,
    taskId: r.task_id,
    reason: r.reason,
    baseline: r.baseline === null ? null : (JSON.parse(r.baseline) as DeviceMetrics),
    observed: r.observed === null ? null : (JSON.parse(r.observed) as DeviceMetrics),
    cpuDelta: r.cpu_delta,
    memoryDelta: r.memory_delta,
    drainDelta: r.drain_delta,
    rollbackTaskId: r.rollback_task_id,
    queuedAt: r.queued_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    observedAt: r.observed_at,
  };
}

/** A task's columns in the order of the INSERT. */
export function taskRow(t: Task): unknown[] {
  return [
    t.seq,
    t.id,
    t.type,
    JSON.stringify(t.parameters),
    t.priority,
    t.status,
    t.assignedTo,
    t.attempts,
    t.maxAttempts,
    t.createdAt,
    t.startedAt,
    t.completedAt,
    t.result === null || t.result === undefined ? null : JSON.stringify(t.result),
    t.error,
    t.target === null ? null : JSON.stringify(t.target),
    t.attemptsBase,
    JSON.stringify(t.backoff),
    t.timeoutMs,
    t.idempotencyKey,
    t.runAfter,
    t.deadline,
    t.leaseExpiresAt,
  ];
}

/** The mutable columns, in the order of the UPDATE. */
export function taskStateRow(t: Task): unknown[] {
  return [
    t.status,
    t.assignedTo,
    t.attempts,
    t.maxAttempts,
    t.startedAt,
    t.completedAt,
    t.result === null || t.result === undefined ? null : JSON.stringify(t.result),
    t.error,
    t.attemptsBase,
    t.runAfter,
    t.leaseExpiresAt,
    t.priority,
    t.seq,
  ];
}

export function attemptRow(a: TaskAttempt): unknown[] {
  return [a.taskSeq, a.attempt, a.agentId, a.startedAt, a.endedAt, a.outcome, a.error];
}

export interface AdviceRow {
  seq: number;
  id: string;
  subject: string;
  trigger: string;
  created_at: number;
  /** The record but its id, trigger, time and application, as JSON. */
  body: string;
  applied: string | null;
}

export function toAdvice(r: AdviceRow): AdviceRecord {
  const body = JSON.parse(r.body) as Omit<AdviceRecord, 'seq' | 'id' | 'trigger' | 'createdAt' | 'applied'>;
  return { ...body, seq: r.seq, id: r.id, trigger: r.trigger as AdviceTrigger, createdAt: r.created_at, applied: r.applied === null ? null : (JSON.parse(r.applied) as AdviceApplied) };
}
