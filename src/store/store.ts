import type { DeploymentRecord, Execution, GateEvaluation } from '../domain/deployment.js';
import type {
  Agent,
  Connectivity,
  Asset,
  DeviceInfo,
  RingMove,
  Task,
  TaskStatus,
} from '../domain/types.js';
import type { ApiToken, Approval, AuditEntry, AuditQuery, EnrollmentToken } from '../domain/security.js';

/** How long a client is asked to wait before it tries again when the store cannot commit (`retry-after`, seconds). */
export const STORAGE_RETRY_AFTER_S = 2;

/**
 * The storage port: domain verbs, each one atomic. A write that resolves has
 * committed its change durably; writes commit in the order they were made
 * (an adapter may group several into one commit). Reads see committed data.
 * Task state transitions are decided by the task engine, which holds the live
 * tasks; the store records them.
 */
export interface Store {
  readonly kind: string;
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

  getMeta(key: string): Promise<string | null>;

  // Security: operators' API tokens, enrollment tokens, agent approval, the audit log.
  insertApiToken(token: ApiToken, secretHash: string): Promise<void>;
  getApiToken(id: string): Promise<{ token: ApiToken; secretHash: string } | null>;
  listApiTokens(): Promise<ApiToken[]>;
  /** Resolves true when the token existed and was not revoked yet. */
  revokeApiToken(id: string, at: number): Promise<boolean>;
  /** How many API tokens were ever created (revoked ones too): once one was, the API always asks for one. */
  countApiTokens(): Promise<number>;
  insertEnrollmentToken(token: EnrollmentToken, secretHash: string): Promise<void>;
  getEnrollmentToken(id: string): Promise<{ token: EnrollmentToken; secretHash: string } | null>;
  listEnrollmentTokens(): Promise<EnrollmentToken[]>;
  revokeEnrollmentToken(id: string, at: number): Promise<boolean>;
  /** Counts one use, in one commit, if the token is neither revoked, expired at `now` nor used up; resolves whether it did. */
  consumeEnrollmentToken(id: string, now: number): Promise<boolean>;
  setAgentApproval(id: string, approval: Approval): Promise<void>;
  appendAudit(entry: Omit<AuditEntry, 'id'>): Promise<void>;
  /** Entries oldest first, after `afterId`, matching every filter given. */
  listAudit(query: AuditQuery): Promise<AuditEntry[]>;
  setMeta(key: string, value: string): Promise<void>;

  upsertAsset(asset: Asset, now: number): Promise<{ created: boolean }>;
  getAsset(id: string): Promise<Asset | null>;
  listAssets(): Promise<Asset[]>;

  insertAgent(agent: Agent): Promise<void>;
  getAgent(id: string): Promise<Agent | null>;
  /** Every agent that is not decommissioned. */
  listAgents(): Promise<Agent[]>;
  findAgentByAsset(assetId: string): Promise<Agent | null>;
  recordRegistration(id: string, device: DeviceInfo, at: number): Promise<void>;
  recordHeartbeat(id: string, device: DeviceInfo, at: number): Promise<void>;
  /** Many agents' heartbeats in one commit (the write-behind flush). */
  recordHeartbeats(rows: readonly { id: string; device: DeviceInfo; at: number }[]): Promise<void>;
  setConnectivity(id: string, connectivity: Agent['connectivity']): Promise<void>;
  updateAgentDevice(id: string, device: DeviceInfo): Promise<void>;

  /**
   * Appends ring moves to the move log, in one commit. The log is what a
   * device's ring is: `devices.ring` is a snapshot of it up to a watermark
   * (see `snapshotRings`), and `ringMovesAfter` gives what came since.
   */
  applyRingMoves(moves: readonly RingMoveWrite[]): Promise<void>;
  /**
   * Writes devices' current rings into the snapshot and moves the watermark
   * to the newest logged move, in one commit. Every move the rows reflect must
   * have been handed to `applyRingMoves` before this call.
   */
  snapshotRings(rows: readonly { id: string; ring: string | null; movedAt: number }[]): Promise<void>;
  /** Logged moves newer than the snapshot's watermark, oldest first (for loading). */
  ringMovesAfterSnapshot(afterId: number, limit: number): Promise<RingMove[]>;
  /** The id of the newest move the snapshot reflects. */
  ringSnapshotWatermark(): Promise<number>;
  /** All ring moves or one device's, oldest first. */
  listRingMoves(agentId?: string): Promise<RingMove[]>;
  /** Moves at or after `since` (ms), oldest first, after move id `afterId`. */
  listRingMovesSince(since: number, afterId: number, limit: number): Promise<RingMove[]>;

  /** Inserts devices, or updates the attributes of known ones; metrics and ring are written only when given. */
  upsertDevices(devices: readonly DeviceRecord[]): Promise<void>;
  /** Latest metrics and trends of devices, in one commit. */
  saveDeviceSamples(samples: readonly DeviceSample[]): Promise<void>;
  setDevicePin(id: string, ring: string | null): Promise<void>;
  setDeviceConnectivity(id: string, connectivity: Connectivity): Promise<void>;
  /** Devices in id order after `afterId` ('' for the first page). */
  loadDevices(afterId: string, limit: number): Promise<DeviceRecord[]>;

  /** Inserts new tasks (their `seq` already assigned) in one commit. */
  insertTasks(tasks: readonly Task[]): Promise<void>;
  /** Writes a task's current state and, when an attempt just ended, that attempt's record, in one write. */
  saveTask(task: Task, endedAttempt?: TaskAttempt | null): Promise<void>;
  /** Writes that a task started an attempt (the narrow write of the hottest transition). */
  recordStart(task: Task): Promise<void>;
  /** Moves the lease of every task in progress on `agentId` to `until`. */
  renewLeases(agentId: string, until: number): Promise<void>;
  getTask(id: string): Promise<Task | null>;
  findTaskByIdempotencyKey(key: string): Promise<Task | null>;
  getAttempts(taskId: string): Promise<TaskAttempt[]>;
  /** Tasks not yet ended (pending or in progress), in submission order. */
  loadLiveTasks(): Promise<Task[]>;
  /** The highest `seq` stored, 0 when there is none. */
  maxTaskSeq(): Promise<number>;
  /** Newest first; `before` is the `seq` of the last task of the previous page. */
  listTasks(filter: TaskFilter, limit: number, before?: number): Promise<Task[]>;
  countTasksByStatus(): Promise<Record<TaskStatus, number>>;
  /** Ended attempts per agent: how many succeeded and how many did not. */
  countAttemptsByAgent(): Promise<Map<string, { succeeded: number; failed: number }>>;

  /** Stores a new deployment; resolves with its `seq`. */
  insertDeployment(deployment: Omit<DeploymentRecord, 'seq'>): Promise<number>;
  /**
   * Saves the deployment's record and, in the same commit, `also` executions
   * and gate evaluations of it: a deployment's transition (e.g. an abort and
   * the executions it cancels) is all on disk or not at all.
   */
  saveDeployment(deployment: DeploymentRecord, also?: { executions?: readonly Execution[]; evaluations?: readonly GateEvaluation[] }): Promise<void>;
  /** Inserts or replaces executions of one deployment, in one commit. */
  saveExecutions(deploymentSeq: number, executions: readonly Execution[]): Promise<void>;
  insertGateEvaluation(deploymentSeq: number, evaluation: GateEvaluation): Promise<void>;
  getDeployment(id: string): Promise<DeploymentRecord | null>;
  /** Newest first; `before` is the `seq` of the last deployment of the previous page. */
  listDeployments(limit: number, before?: number): Promise<DeploymentRecord[]>;
  /** Deployments not yet ended (scheduled, in progress, paused or halted). */
  loadActiveDeployments(): Promise<DeploymentRecord[]>;
  getExecutions(deploymentSeq: number): Promise<Execution[]>;
  getGateEvaluations(deploymentSeq: number): Promise<GateEvaluation[]>;
}

/**
 * The verbs that change what is stored. Everything else on the port reads (or manages the connection).
 * `StorageGuard` refuses these while the store cannot commit; a test checks that every verb is in one list.
 */
export const WRITE_VERBS = [
  'setMeta', 'insertApiToken', 'revokeApiToken', 'insertEnrollmentToken', 'revokeEnrollmentToken', 'consumeEnrollmentToken',
  'setAgentApproval', 'appendAudit', 'upsertAsset', 'insertAgent', 'recordRegistration', 'recordHeartbeat', 'recordHeartbeats',
  'setConnectivity', 'updateAgentDevice', 'applyRingMoves', 'snapshotRings', 'upsertDevices', 'saveDeviceSamples', 'setDevicePin',
  'setDeviceConnectivity', 'insertTasks', 'saveTask', 'recordStart', 'renewLeases', 'insertDeployment', 'saveDeployment',
  'saveExecutions', 'insertGateEvaluation',
] as const satisfies readonly (keyof Store)[];

/** The verbs that only read. */
export const READ_VERBS = [
  'getMeta', 'getApiToken', 'listApiTokens', 'countApiTokens', 'getEnrollmentToken', 'listEnrollmentTokens', 'listAudit', 'getAsset',
  'listAssets', 'getAgent', 'listAgents', 'findAgentByAsset', 'ringMovesAfterSnapshot', 'ringSnapshotWatermark', 'listRingMoves',
  'listRingMovesSince', 'loadDevices', 'getTask', 'findTaskByIdempotencyKey', 'getAttempts', 'loadLiveTasks', 'maxTaskSeq', 'listTasks',
  'countTasksByStatus', 'countAttemptsByAgent', 'getDeployment', 'listDeployments', 'loadActiveDeployments', 'getExecutions',
  'getGateEvaluations',
] as const satisfies readonly (keyof Store)[];

/**
 * How an attempt ended without success. `not_running`: the agent's heartbeats did not list it although it had
 * received it (the process that got it is gone, or never ran it).
 */
/** Compile-time check: every verb of the port is in WRITE_VERBS or READ_VERBS (or manages the connection). */
type Unclassified = Exclude<keyof Store, (typeof WRITE_VERBS)[number] | (typeof READ_VERBS)[number] | 'kind' | 'close' | 'probe' | 'idle' | 'onWriteFailure'>;
export const EVERY_VERB_CLASSIFIED: [Unclassified] extends [never] ? true : Unclassified = true;

export type AttemptEndOutcome = 'failed' | 'timed_out' | 'lease_expired' | 'agent_lost' | 'not_running' | 'interrupted' | 'cancelled';

export interface TaskFilter {
  status?: TaskStatus;
  type?: string;
  agentId?: string;
}

export interface TaskAttempt {
  taskId: string;
  taskSeq: number;
  attempt: number;
  agentId: string;
  startedAt: number;
  endedAt: number | null;
  outcome: 'succeeded' | AttemptEndOutcome | null;
  error: string | null;
}


/** A device as stored. */
export interface DeviceRecord {
  id: string;
  site: string | null;
  department: string | null;
  manufacturer: string | null;
  model: string | null;
  osName: string | null;
  tags: string[] | null;
  /** Latest metrics; null until the first sample. */
  metrics: { battery: number | null; charging: boolean | null; cpu: number; memory: number; disk: number } | null;
  drain: number;
  cpuTrend: number;
  impact: number;
  sampledAt: number | null;
  ring: string | null;
  movedAt: number;
  /** A manual pin. */
  pinRing: string | null;
  connectivity: Connectivity;
  createdAt: number;
}

export interface DeviceSample {
  id: string;
  /** Null on a machine without a battery, as `charging`. */
  battery: number | null;
  charging: boolean | null;
  cpu: number;
  memory: number;
  disk: number;
  drain: number;
  cpuTrend: number;
  impact: number;
  sampledAt: number;
}

/** A ring move to store; `movedAt` is the device's dwell start after it (default `at`). */
export type RingMoveWrite = Omit<RingMove, 'id'> & { movedAt?: number };
