import type {
  Agent,
  Asset,
  Deployment,
  DeviceInfo,
  RingMove,
  RingOrUnassigned,
  Task,
  TaskStatus,
} from '../domain/types.js';

/**
 * The storage port: domain verbs, each one atomic. A method that resolves has
 * committed its change durably. State transitions are conditional (a task's
 * result is recorded only for its current attempt on its current agent), so
 * callers racing each other cannot corrupt a task.
 */
export interface Store {
  readonly kind: string;
  close(): Promise<void>;

  getMeta(key: string): Promise<string | null>;
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
  setConnectivity(id: string, connectivity: Agent['connectivity']): Promise<void>;
  updateAgentDevice(id: string, device: DeviceInfo): Promise<void>;

  /** Stores a ring move and the agent's new ring in one transaction. */
  moveRing(move: Omit<RingMove, 'id'>): Promise<RingMove>;
  listRingMoves(agentId?: string): Promise<RingMove[]>;

  /** Inserts a task and assigns its submission order. */
  insertTask(task: Omit<Task, 'seq'>): Promise<Task>;
  getTask(id: string): Promise<Task | null>;
  getAttempts(taskId: string): Promise<TaskAttempt[]>;
  /** Pending tasks in dispatch order (priority desc, seq asc), starting after `afterSeq` in that order. */
  listPending(limit: number, after?: { priority: number; seq: number }): Promise<Task[]>;
  listInProgress(): Promise<Task[]>;
  countTasksByStatus(): Promise<Record<TaskStatus, number>>;
  /** Ended attempts per agent: how many succeeded and how many did not. */
  countAttemptsByAgent(): Promise<Map<string, { succeeded: number; failed: number }>>;
  /** pending → in_progress for `agentId`, opening attempt `attempts + 1`. Null if the task was no longer pending. */
  startAttempt(taskId: string, agentId: string, at: number): Promise<Task | null>;
  /** Records success of the current attempt. Null (and no change) when the attempt is stale. */
  completeAttempt(taskId: string, attempt: number, agentId: string, result: unknown, at: number): Promise<Task | null>;
  /**
   * Ends the current attempt unsuccessfully: back to pending when `retry`,
   * otherwise failed with `error`. Null (and no change) when the attempt is stale.
   */
  failAttempt(
    taskId: string,
    attempt: number,
    agentId: string,
    outcome: AttemptEndOutcome,
    error: string,
    retry: boolean,
    at: number,
  ): Promise<Task | null>;

  insertDeployment(deployment: Deployment): Promise<void>;
  getDeployment(id: string): Promise<Deployment | null>;
  completeDeployment(id: string, recoveredAgents: string[], at: number): Promise<Deployment | null>;
}

export type AttemptEndOutcome = 'failed' | 'timed_out' | 'agent_lost' | 'interrupted';

export interface TaskAttempt {
  taskId: string;
  attempt: number;
  agentId: string;
  startedAt: number;
  endedAt: number | null;
  outcome: 'succeeded' | AttemptEndOutcome | null;
  error: string | null;
}

export type { RingOrUnassigned };
