import type { GateEvaluation } from './deployment.js';
import type { RingMove, Task } from './types.js';

/** Whether the store commits, as the storage guard tracks it. */
export interface StorageStatus {
  writable: boolean;
  /** When writes started failing (wall clock, ms), or null. */
  since: number | null;
  /** The last failure's message, or null. */
  error: string | null;
  /** Times writes started failing since the process started, and times it recovered. */
  outages: number;
  recoveries: number;
}

/**
 * Everything the orchestrator announces, by name: the one event map. Logs, metrics, the event stream and the
 * advisor subscribe; the core imports none of them. Each event is emitted once what it says is true in memory
 * (for changes that need a commit: once it is committed, unless said otherwise).
 */
export interface OrchestratorEvents {
  'agent.spawned': { agentId: string; assetId: string | null };
  'agent.approved': { agentId: string };
  'agent.registered': { agentId: string };
  'agent.online': { agentId: string };
  'agent.offline': { agentId: string; silentMs: number };
  'agent.removed': { agentId: string };
  /** Emitted as the task is taken in, with its insert under way (a failed insert leaves nothing of it). */
  'task.submitted': { task: Task };
  'task.started': { task: Task; agentId: string };
  'task.completed': { task: Task };
  'task.requeued': { task: Task; reason: string };
  /** `failed` or `dead`; `outcome` is how its last attempt ended. */
  'task.failed': { task: Task; outcome: string };
  'task.cancelled': { task: Task };
  'task.expired': { task: Task };
  'task.attempt_ended': { taskId: string; attempt: number; agentId: string; outcome: string };
  'task.stale_result': { taskId: string; attempt: number; agentId: string };
  'ring.moved': { move: Omit<RingMove, 'id'> };
  'rings.rebalanced': { trigger: string; moves: number; planMs: number; totalMs: number };
  'deployment.started': { deploymentId: string; affected: string[] };
  /** A staged deployment's status changed (`action`: what changed it: an operator's action, a gate, completion). */
  'deployment.changed': { deploymentId: string; status: string; action: string };
  /** A gate of a staged deployment was evaluated (pass, fail, wait, skip, insufficient evidence, override), committed. */
  'deployment.gate_evaluated': { deploymentId: string; evaluation: GateEvaluation };
  'deployment.completed': { deploymentId: string; recovered: string[] };
  /** The advisor stored advice (asked for, explaining a halt, or from its own watch). */
  'advice.created': { adviceId: string; subject: string; trigger: string; decision: string | null; risk: string };
  /** Advice was applied (by an operator, or by the advisor itself to halt): `actions` what it did, `failed` how many of them failed. */
  'advice.applied': { adviceId: string; by: string; actions: number; failed: number };
  /** Writes started failing (`writable: false`) or succeed again. */
  'storage.changed': StorageStatus;
  /** The orchestrator's own process stalled (paused, or busy without reading its sockets) for `ms`. */
  'orchestrator.stalled': { ms: number };
}

/** Where events are announced and heard (util/event-bus.ts implements it). */
export interface EventBus {
  /** Listens to one event; returns what stops listening. */
  on<K extends keyof OrchestratorEvents>(event: K, listener: (payload: OrchestratorEvents[K]) => void): () => void;
  emit<K extends keyof OrchestratorEvents>(event: K, payload: OrchestratorEvents[K]): void;
}

/** Every event's name, in the map's order (the event stream validates its `kinds` filter against it). */
export const EVENT_KINDS = [
  'agent.spawned',
  'agent.approved',
  'agent.registered',
  'agent.online',
  'agent.offline',
  'agent.removed',
  'task.submitted',
  'task.started',
  'task.completed',
  'task.requeued',
  'task.failed',
  'task.cancelled',
  'task.expired',
  'task.attempt_ended',
  'task.stale_result',
  'ring.moved',
  'rings.rebalanced',
  'deployment.started',
  'deployment.changed',
  'deployment.gate_evaluated',
  'deployment.completed',
  'advice.created',
  'advice.applied',
  'storage.changed',
  'orchestrator.stalled',
] as const satisfies readonly (keyof OrchestratorEvents)[];

export type EventKind = (typeof EVENT_KINDS)[number];

type ExpectNever<T extends never> = T;
/** Fails to compile when an event is added to the map and not to EVENT_KINDS. */
export type EveryEventListed = ExpectNever<Exclude<keyof OrchestratorEvents, EventKind>>;
