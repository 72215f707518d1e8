/**
 * The domain's vocabulary. Task fields keep the seed's names, which its API exposes; a device's metrics
 * are ours (metrics.ts), mapped to the seed's names in the API's views.
 */
import type { Reading } from './metrics.js';
import type { Approval } from './security.js';

export const TASK_TYPES = ['process_data', 'health_check', 'deploy', 'analyze_risk', 'monitor'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

export function isTaskType(value: unknown): value is TaskType {
  return typeof value === 'string' && (TASK_TYPES as readonly string[]).includes(value);
}

/** The default rings; the rings in use are configuration (`PUT /api/v1/rings`). */
export const RINGS = ['canary', 'dev', 'stage', 'prod'] as const;
/** The name of a configured ring. */
export type Ring = string;
/** A ring name or 'unassigned'. */
export type RingOrUnassigned = string;

/** Connectivity, kept apart from health: an offline device may be perfectly healthy. */
export type Connectivity = 'online' | 'offline' | 'decommissioned';

/** What the seed calls an agent's status: connectivity folded with whether it is running a task. */
export type AgentStatus = 'idle' | 'busy' | 'offline' | 'decommissioned';

/** The device an agent runs on, as it reports itself: its name, OS version and latest reading. */
export interface DeviceInfo extends Reading {
  name: string;
  osVersion: string;
}

export interface Asset {
  id: string;
  name?: string;
  manufacturer?: string;
  model?: string;
  osName?: string;
  site?: string;
  department?: string;
  [field: string]: unknown;
}

/** `simulated`: an in-process agent the orchestrator launched; `network`: an agent process that enrolled over HTTP. */
export type AgentKind = 'simulated' | 'network';

export interface Agent {
  id: string;
  kind: AgentKind;
  capabilities: TaskType[];
  connectivity: Connectivity;
  registeredAt: number | null;
  lastHeartbeatAt: number | null;
  /** Latest reported device facts; null until the first registration or heartbeat. */
  device: DeviceInfo | null;
  ring: RingOrUnassigned;
  assetId: string | null;
  createdAt: number;
  /** A network agent's credential, hashed (SHA-256, hex). */
  credentialHash?: string | null;
  /** `pending` until an admin approves it (enrolled with a token that requires approval); absent: approved. */
  approval?: Approval;
}

/**
 * `failed`: ended by a failure the agent marked non-retryable. `dead`: every
 * attempt used up (the dead letter). `expired`: its deadline passed before it
 * could start.
 */
export const TASK_STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'dead', 'cancelled', 'expired'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const TERMINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['completed', 'failed', 'dead', 'cancelled', 'expired']);

export interface AssetSelector {
  site?: string;
  department?: string;
  manufacturer?: string;
  model?: string;
  osName?: string;
}

/** Where a task may run: one agent, any agent of a ring, agents whose asset matches, or (null) any capable agent. */
export type TaskTarget = { agentId: string } | { ring: Ring } | { selector: AssetSelector };

export interface BackoffPolicy {
  strategy: 'exponential' | 'fixed';
  /** Delay before the first retry. */
  initialMs: number;
  /** Longest delay between attempts. */
  maxMs: number;
  /** Spread each delay uniformly over [delay/2, delay], so that retries of many tasks do not arrive together. */
  jitter: boolean;
}

export interface Task {
  id: string;
  /** Monotonic submission order; FIFO within a priority. */
  seq: number;
  type: TaskType;
  parameters: Record<string, unknown>;
  priority: number;
  status: TaskStatus;
  target: TaskTarget | null;
  assignedTo: string | null;
  /** Attempts started so far, ever. The current attempt number is the fencing token for results. */
  attempts: number;
  /** `attempts` when the current run began (0, or its value at the last manual retry). */
  attemptsBase: number;
  /** Attempts allowed per run. */
  maxAttempts: number;
  backoff: BackoffPolicy;
  /** How long one attempt may run. */
  timeoutMs: number;
  idempotencyKey: string | null;
  /** Not started before this instant (ms since epoch). */
  runAfter: number | null;
  /** Expires if not started by this instant. */
  deadline: number | null;
  /** While in progress: the instant its agent's lease runs out unless renewed. */
  leaseExpiresAt: number | null;
  createdAt: number;
  startedAt: number | null;
  completedAt: number | null;
  result: unknown;
  error: string | null;
}

export interface RingMove {
  id: number;
  agentId: string;
  from: RingOrUnassigned;
  to: RingOrUnassigned;
  reason: string;
  at: number;
}

