import { OrchestratorError } from '../domain/errors.js';
import type { AdviceStore } from './advice-store.js';
import type { AgentStore } from './agent-store.js';
import type { DeploymentStore } from './deployment-store.js';
import type { FleetStore } from './fleet-store.js';
import type { Leadership } from './leadership.js';
import type { SecurityStore } from './security-store.js';
import type { TaskStore } from './task-store.js';

export type { AdviceFilter, AdviceStore } from './advice-store.js';
export type { AgentStore } from './agent-store.js';
export type { DeploymentStore } from './deployment-store.js';
export type { LeaseHolder, Leadership } from './leadership.js';
export type { DeviceHistoryPoint, DeviceRecord, DeviceSample, FleetStore, RingMoveWrite } from './fleet-store.js';
export type { SecurityStore } from './security-store.js';
export type { AttemptEndOutcome, TaskAttempt, TaskFilter, TaskStore } from './task-store.js';

/** The store cannot be opened (a file or a database that is unusable, unreachable, or of a newer version): said in one line. */
export class StoreOpenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreOpenError';
  }
}

/** How long a client is asked to wait before it tries again when the store cannot commit (`retry-after`, seconds). */
export const STORAGE_RETRY_AFTER_S = 2;

/** The error of a change refused because the store cannot commit now (503, with `retry-after`); `why` in the store's words. */
export function storageUnavailable(why: string): OrchestratorError {
  return new OrchestratorError('ORCH_STORAGE_UNAVAILABLE', `the store cannot commit changes now (${why}); nothing was changed, try again later`, {
    retryAfterSeconds: STORAGE_RETRY_AFTER_S,
  });
}

/** What differs between adapters, for the code that must know (operations, replicas). */
export interface StoreCapabilities {
  /** Several orchestrator processes may use the store at once (a database server), or only one (a file). */
  readonly sharedByProcesses: boolean;
  /** An online copy can be taken while the orchestrator runs (`orchestrator backup`). */
  readonly onlineBackup: boolean;
}

/** The connection itself: opening and closing, recovery after failed writes, and small settings. */
export interface StoreConnection {
  /** Which adapter: `sqlite` (later `postgres`). */
  readonly kind: string;
  readonly capabilities: StoreCapabilities;
  /** Resolves once every write made before it has committed or failed, and the connection is closed. */
  close(): Promise<void>;
  /**
   * After failed writes: frees what the adapter can (SQLite checkpoints and truncates its WAL) and commits
   * one small write. Resolves once that write committed; rejects while writes still fail.
   */
  probe(): Promise<void>;
  /** Resolves once every write made so far has committed or failed. */
  idle(): Promise<void>;
  /**
   * `listener` hears of every write that fails to commit, before that write's promise rejects. A write that
   * fails because the disk or the database cannot take it now rejects with ORCH_STORAGE_UNAVAILABLE.
   */
  onWriteFailure(listener: (err: Error) => void): void;
  /** The leader lease, where several processes share the store (`capabilities.sharedByProcesses`); null otherwise. */
  readonly leadership: Leadership | null;
  getMeta(key: string): Promise<string | null>;
  setMeta(key: string, value: string): Promise<void>;
}

/**
 * The storage port: domain verbs grouped by aggregate, composed. What every adapter must guarantee:
 *
 * - **Atomic verbs.** Each verb is one transaction: a multi-row verb (a batch of tasks, a deployment with the
 *   executions and evaluations of its transition, a flush of heartbeats) is all committed or not at all.
 * - **Commit order.** Writes commit in the order they were made (an adapter may group several into one
 *   commit, never reorder them); a write made after another's promise was created never commits before it.
 * - **Durability on resolve.** A write's promise resolves only once its commit is durable (it survives a
 *   crash of the process and of the machine); a write that fails rejects, and changed nothing. A failure of
 *   the disk or the database (not of the write itself) rejects with ORCH_STORAGE_UNAVAILABLE, and the
 *   `onWriteFailure` listener hears of it first.
 * - **Reads see committed data.**
 *
 * The contract suite (`test/store/contract.ts`) checks every verb of every aggregate against an adapter; each
 * adapter runs it from a file of its own (`test/store/sqlite.contract.test.ts`). Task state transitions are
 * decided by the task engine, which holds the live tasks; the store records them.
 */
export interface Store extends StoreConnection, TaskStore, FleetStore, DeploymentStore, SecurityStore, AgentStore, AdviceStore {}

/**
 * The verbs that change what is stored. Everything else on the port reads (or manages the connection).
 * `StorageGuard` refuses these while the store cannot commit; a test checks that every verb is in one list.
 */
export const WRITE_VERBS = [
  'setMeta', 'insertApiToken', 'revokeApiToken', 'insertEnrollmentToken', 'revokeEnrollmentToken', 'consumeEnrollmentToken',
  'setAgentApproval', 'appendAudit', 'upsertAsset', 'insertAgent', 'recordRegistration', 'recordHeartbeat', 'recordHeartbeats',
  'setConnectivity', 'updateAgentDevice', 'applyRingMoves', 'snapshotRings', 'upsertDevices', 'saveDeviceSamples', 'setDevicePin',
  'setDeviceConnectivity', 'insertTasks', 'saveTask', 'recordStart', 'renewLeases', 'insertDeployment', 'saveDeployment',
  'saveExecutions', 'insertGateEvaluation', 'insertAdvice', 'recordAdviceApplied', 'pruneDeviceHistory',
] as const satisfies readonly (keyof Store)[];

/** The verbs that only read. */
export const READ_VERBS = [
  'getMeta', 'getApiToken', 'listApiTokens', 'countApiTokens', 'getEnrollmentToken', 'listEnrollmentTokens', 'listAudit', 'getAsset',
  'listAssets', 'getAgent', 'listAgents', 'findAgentByAsset', 'ringMovesAfterSnapshot', 'ringSnapshotWatermark', 'listRingMoves',
  'listRingMovesSince', 'loadDevices', 'getTask', 'findTaskByIdempotencyKey', 'getAttempts', 'loadLiveTasks', 'maxTaskSeq', 'listTasks',
  'countTasksByStatus', 'countAttemptsByAgent', 'getDeployment', 'listDeployments', 'loadActiveDeployments', 'getExecutions',
  'getGateEvaluations', 'getAdvice', 'listAdvice', 'deviceHistory', 'deviceExecutions',
] as const satisfies readonly (keyof Store)[];

/** Compile-time check: every verb of the port is in WRITE_VERBS or READ_VERBS (or manages the connection). */
type Unclassified = Exclude<keyof Store, (typeof WRITE_VERBS)[number] | (typeof READ_VERBS)[number] | 'kind' | 'capabilities' | 'leadership' | 'close' | 'probe' | 'idle' | 'onWriteFailure'>;
export const EVERY_VERB_CLASSIFIED: [Unclassified] extends [never] ? true : Unclassified = true;

