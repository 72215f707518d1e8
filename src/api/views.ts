import { isHealthy, round1 } from '../domain/health.js';
import type { DeviceMetrics } from '../domain/metrics.js';
import type { Asset, DeviceInfo, Task, TaskStatus } from '../domain/types.js';
import type { AgentView } from '../core/agents.js';
import type { ClusterSnapshot, SeedDeployment } from '../core/seed-facade.js';
import type { TaskAttempt } from '../store/store.js';

/** Renders domain objects in the seed's wire format (snake_case, ISO timestamps). */

/** An instant as an ISO 8601 string; null stays null (typed so that a number is known to give a string). */
export function iso(ms: number): string;
export function iso(ms: number | null): string | null;
export function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The seed knew five states; `dead` and `expired` tasks are `failed` to its clients. */
export function seedStatus(status: TaskStatus): 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled' {
  return status === 'dead' || status === 'expired' ? 'failed' : status;
}

function attemptJson(a: TaskAttempt) {
  return {
    attempt: a.attempt,
    agent_id: a.agentId,
    started_at: iso(a.startedAt),
    ended_at: iso(a.endedAt),
    outcome: a.outcome,
    error: a.error,
  };
}

/** The seed's task object (`/status/{task_id}`), with the engine's own state beside it. */
export function taskJson(task: Task, attempts: TaskAttempt[] = []) {
  return {
    task_id: task.id,
    task_type: task.type,
    parameters: task.parameters,
    priority: task.priority,
    status: seedStatus(task.status),
    state: task.status,
    assigned_to: task.assignedTo,
    created_at: iso(task.createdAt),
    started_at: iso(task.startedAt),
    completed_at: iso(task.completedAt),
    result: task.result ?? null,
    error: task.error,
    attempts: task.attempts,
    max_attempts: task.attemptsBase + task.maxAttempts,
    attempt_history: attempts.map(attemptJson),
  };
}

/** A task in the /api/v1 form (camelCase, like its request). */
export function taskV1Json(task: Task, attempts?: TaskAttempt[]) {
  return {
    id: task.id,
    type: task.type,
    params: task.parameters,
    priority: task.priority,
    status: task.status,
    target: task.target,
    agentId: task.assignedTo,
    attempts: task.attempts,
    maxAttempts: task.maxAttempts,
    attemptsLeft: Math.max(0, task.attemptsBase + task.maxAttempts - task.attempts),
    backoff: task.backoff,
    timeoutMs: task.timeoutMs,
    idempotencyKey: task.idempotencyKey,
    runAfter: iso(task.runAfter),
    deadline: iso(task.deadline),
    leaseExpiresAt: iso(task.leaseExpiresAt),
    createdAt: iso(task.createdAt),
    startedAt: iso(task.startedAt),
    completedAt: iso(task.completedAt),
    result: task.result ?? null,
    error: task.error,
    ...(attempts ? { attemptHistory: attempts.map((a) => ({ attempt: a.attempt, agentId: a.agentId, startedAt: iso(a.startedAt), endedAt: iso(a.endedAt), outcome: a.outcome, error: a.error })) } : {}),
  };
}

/** A device's metrics as the deployment views show them: the reading and the battery drain. */
export function metricsJson(m: DeviceMetrics | null) {
  // To a tenth, as the device view shows them: the fleet keeps readings as float32 (7.4 is 7.400000095367432).
  return m === null ? null : { battery: m.battery === null ? null : round1(m.battery), charging: m.charging, cpu: round1(m.cpu), memory: round1(m.memory), disk: round1(m.disk), drain: round1(m.drain) };
}

/** A device report in the seed's names, with the seed's rule. */
export function deviceJson(d: DeviceInfo | null) {
  if (d === null) return null;
  return {
    name: d.name,
    battery_level: d.battery,
    battery_charging: d.charging,
    cpu_usage: d.cpu,
    memory_usage: d.memory,
    disk_usage: d.disk,
    os_version: d.osVersion,
    is_healthy: isHealthy(d),
  };
}

export function agentJson(v: AgentView) {
  return {
    slave_id: v.agent.id,
    status: v.status,
    connectivity: v.agent.connectivity,
    capabilities: v.agent.capabilities,
    registered_at: iso(v.agent.registeredAt),
    last_heartbeat: iso(v.agent.lastHeartbeatAt),
    assigned_tasks: v.runningTasks,
    completed_tasks: v.succeeded,
    failed_tasks: v.failed,
    device_info: deviceJson(v.agent.device),
    ring_assignment: v.agent.ring,
    asset: v.asset,
    approval: v.agent.approval ?? 'approved',
  };
}

export function clusterJson(c: ClusterSnapshot) {
  const t = c.taskCounts;
  const online = c.agents.filter((a) => a.status !== 'offline');
  return {
    master_id: c.masterId,
    running: c.running,
    total_slaves: c.agents.length,
    active_slaves: c.agents.filter((a) => a.status === 'busy').length,
    idle_slaves: c.agents.filter((a) => a.status === 'idle').length,
    offline_slaves: c.agents.length - online.length,
    healthy_devices: c.healthyDevices,
    total_devices: c.totalDevices,
    total_tasks: t.pending + t.in_progress + t.completed + t.failed + t.dead + t.expired + t.cancelled,
    pending_tasks: t.pending,
    in_progress_tasks: t.in_progress,
    completed_tasks: t.completed,
    // The seed's "failed" covers every task that ended without success and was not cancelled.
    failed_tasks: t.failed + t.dead + t.expired,
    dead_tasks: t.dead,
    expired_tasks: t.expired,
    cancelled_tasks: t.cancelled,
    ring_distribution: c.ringCounts,
    queue_stats: Object.fromEntries(
      Object.entries(c.queueStats).map(([id, s]) => [id, { sent: s.sent, received: s.received, dropped: s.dropped }]),
    ),
  };
}

export function deploymentJson(d: SeedDeployment, c: ClusterSnapshot) {
  const cluster = clusterJson(c);
  return {
    deployment_id: d.id,
    status: d.status,
    start_time: iso(d.startedAt),
    completed_at: iso(d.completedAt),
    total_agents: cluster.total_slaves,
    active_agents: cluster.active_slaves,
    idle_agents: cluster.idle_slaves,
    healthy_devices: cluster.healthy_devices,
    affected_agents: d.affectedAgents,
    recovered_agents: d.recoveredAgents,
    agents: c.agents.map(agentJson),
    assets: c.agents
      .filter((a) => a.asset !== null)
      .map((a) => ({ agent_id: a.agent.id, asset_data: a.asset as Asset, agent_status: a.status })),
    ring_distribution: cluster.ring_distribution,
    spawned_agents: c.agents.filter((a) => a.agent.kind === 'simulated').length,
    registered_slaves: c.agents.filter((a) => a.agent.registeredAt !== null).length,
  };
}

export function metricsSummary(d: DeviceInfo) {
  return { cpu: d.cpu, battery: d.battery, memory: d.memory };
}
