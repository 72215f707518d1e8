import { EventEmitter } from 'node:events';
import type { RingMove, Task } from '../domain/types.js';
import type { StorageStatus } from './storage-guard.js';

/** Everything the core announces. Logs, metrics and streams subscribe; the core imports none of them. */
export interface OrchestratorEvents {
  'agent.spawned': { agentId: string; assetId: string | null };
  'agent.approved': { agentId: string };
  'agent.registered': { agentId: string };
  'agent.online': { agentId: string };
  'agent.offline': { agentId: string; silentMs: number };
  'agent.removed': { agentId: string };
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
  'deployment.changed': { deploymentId: string; status: string; action: string };
  'deployment.completed': { deploymentId: string; recovered: string[] };
  /** Writes started failing (`writable: false`) or succeed again. */
  'storage.changed': StorageStatus;
  /** The orchestrator's own process stalled (paused, or busy without reading its sockets) for `ms`. */
  'orchestrator.stalled': { ms: number };
}

export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(100);
  }

  on<K extends keyof OrchestratorEvents>(event: K, listener: (payload: OrchestratorEvents[K]) => void): () => void {
    this.emitter.on(event, listener);
    return () => this.emitter.off(event, listener);
  }

  emit<K extends keyof OrchestratorEvents>(event: K, payload: OrchestratorEvents[K]): void {
    this.emitter.emit(event, payload);
  }
}
