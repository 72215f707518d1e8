import type { Task, TaskType } from '../domain/types.js';
import type { AgentDirectory } from './agents.js';
import type { CoreState } from './core-state.js';
import type { EventBus } from '../domain/events.js';
import type { ExecutionDriver, ExecutionOutcome } from './rollout-state.js';

/**
 * Deployments run their payloads as tasks on the devices' agents, one attempt each: a deployment's execution
 * is a task that names its device's agent and carries its deployment in its parameters.
 */
export function taskExecutionDriver(state: CoreState, agents: AgentDirectory): ExecutionDriver {
  return {
    online: (id) => agents.get(id)?.agent.connectivity === 'online',
    metrics: (id) => state.fleet.metrics(id),
    refuses: (id, payload) => {
      const live = agents.get(id);
      if (!live) return 'no agent runs on this device';
      return live.agent.capabilities.includes(payload.type as TaskType) ? null : `the agent does not offer task type ${payload.type}`;
    },
    start: (deploymentId, deviceId, payload, rollback) => {
      const { tasks, committed } = state.tasks.enqueue([
        { type: payload.type, parameters: { ...payload.params, _deployment: { id: deploymentId, rollback } }, target: { agentId: deviceId }, maxAttempts: 1 },
      ]);
      return { handle: (tasks[0] as Task).id, committed };
    },
    cancel: (handle, reason) => {
      state.tasks.cancel(handle, reason).catch(() => undefined);
    },
  };
}

/** The outcomes of deployment tasks go back to the deployments (the other half of the driver). */
export function reportExecutionOutcomes(events: EventBus, state: CoreState): void {
  events.on('task.completed', ({ task }) => {
    const d = deploymentOf(task);
    if (d) state.deployments.report(d.id, d.deviceId, { kind: 'succeeded' }, d.rollback);
  });
  events.on('task.failed', ({ task, outcome }) => {
    const d = deploymentOf(task);
    if (!d) return;
    const reason = task.error ?? outcome;
    // A failure the agent marked non-retryable is the device refusing the update: `rejected`.
    const mapped: ExecutionOutcome =
      outcome === 'timed_out'
        ? { kind: 'timed_out', reason }
        : outcome === 'agent_lost' || outcome === 'lease_expired' || outcome === 'interrupted' || outcome === 'not_running'
          ? { kind: 'lost', reason: `the device went away during the update (${reason}); it is updated when it returns` }
          : task.status === 'failed'
            ? { kind: 'rejected', reason }
            : { kind: 'failed', reason };
    state.deployments.report(d.id, d.deviceId, mapped, d.rollback);
  });
}

/** The deployment a task belongs to, from its parameters. */
function deploymentOf(task: Task): { id: string; deviceId: string; rollback: boolean } | null {
  const d = task.parameters._deployment as { id?: unknown; rollback?: unknown } | undefined;
  if (!d || typeof d.id !== 'string' || !task.target || !('agentId' in task.target)) return null;
  return { id: d.id, deviceId: task.target.agentId, rollback: d.rollback === true };
}
