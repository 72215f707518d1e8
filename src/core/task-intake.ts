import { OrchestratorError } from '../domain/errors.js';
import { selectorMatches } from '../domain/task-order.js';
import type { BackoffPolicy, Task } from '../domain/types.js';
import { isTaskType, TASK_TYPES } from '../domain/types.js';
import { newTaskId } from '../util/ids.js';
import type { SubmitInput, TaskEngineSettings, Worker } from './task-types.js';

/**
 * A submitted task, checked and built: refused (with the field at fault) when its type is unknown, its
 * backoff contradicts itself, its ring or agent does not exist, or its deadline cannot be met.
 */
export function buildTask(input: SubmitInput, now: number, seq: number, ctx: { settings: TaskEngineSettings; agentExists: (id: string) => boolean }): Task {
  if (!isTaskType(input.type)) {
    throw new OrchestratorError('ORCH_UNKNOWN_TASK_TYPE', `unknown task_type "${input.type}"; expected one of ${TASK_TYPES.join(', ')}`);
  }
  const backoff: BackoffPolicy = { ...ctx.settings.defaultBackoff, ...input.backoff };
  if (backoff.maxMs < backoff.initialMs) {
    throw new OrchestratorError('ORCH_VALIDATION', 'backoff.maxMs must not be smaller than backoff.initialMs');
  }
  const target = input.target;
  if (target && 'ring' in target && ctx.settings.ringExists && !ctx.settings.ringExists(target.ring)) {
    throw new OrchestratorError('ORCH_UNKNOWN_RING', `target.ring "${target.ring}" is not a configured ring`);
  }
  // An agent that does not exist (or was decommissioned) will never take it: refused, not left waiting forever.
  if (target && 'agentId' in target && !ctx.agentExists(target.agentId)) {
    throw new OrchestratorError('ORCH_AGENT_NOT_FOUND', `target.agentId: no agent ${target.agentId}`);
  }
  if (input.deadline !== undefined && input.runAfter !== undefined && input.deadline <= input.runAfter) {
    throw new OrchestratorError('ORCH_VALIDATION', 'deadline must be later than runAfter');
  }
  // A task that could only ever expire is a mistake of its sender (often a clock far behind): said at once.
  if (input.deadline !== undefined && input.deadline <= now) {
    throw new OrchestratorError('ORCH_VALIDATION', `deadline ${new Date(input.deadline).toISOString()} has already passed (the orchestrator's time is ${new Date(now).toISOString()})`);
  }
  return {
    id: newTaskId(),
    seq,
    type: input.type,
    parameters: input.parameters ?? {},
    priority: input.priority ?? 0,
    status: 'pending',
    target: input.target ?? null,
    assignedTo: null,
    attempts: 0,
    attemptsBase: 0,
    maxAttempts: input.maxAttempts ?? ctx.settings.taskRetryLimit + 1,
    backoff,
    timeoutMs: input.timeoutMs ?? ctx.settings.taskTimeoutMs,
    idempotencyKey: input.idempotencyKey ?? null,
    runAfter: input.runAfter !== undefined && input.runAfter > now ? input.runAfter : null,
    deadline: input.deadline ?? null,
    leaseExpiresAt: null,
    createdAt: now,
    startedAt: null,
    completedAt: null,
    result: null,
    error: null,
  };
}

/**
 * Why no known agent could ever take this task as things stand (none offers its type, or none of those
 * is in its ring or matches its selector), or null when one could. Offline agents count: they come back.
 */
export function unmatched(task: Pick<Task, 'type' | 'target'>, workers: ReadonlyMap<string, Worker>): string | null {
  // A task for one agent (the common case): one lookup, not a pass over the whole fleet on every submit.
  const target = task.target;
  if (target !== null && 'agentId' in target && workers.get(target.agentId)?.capabilities.has(task.type) === true) return null;
  let offers = 0;
  for (const w of workers.values()) {
    if (!w.capabilities.has(task.type)) continue;
    offers++;
    const t = task.target;
    if (t === null || ('agentId' in t && t.agentId === w.id) || ('ring' in t && t.ring === w.ring) || ('selector' in t && selectorMatches(t.selector, w.asset))) return null;
  }
  if (offers === 0) return `no agent offers ${task.type} now; the task waits until one does`;
  const t = task.target;
  const where = t === null ? '' : 'ring' in t ? ` in ring ${t.ring}` : 'selector' in t ? ' matching its selector' : ` as ${t.agentId}`;
  return `no agent that offers ${task.type} is${where} now; the task waits until one is`;
}
