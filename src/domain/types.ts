/**
 * The domain's vocabulary. Field names follow the seed's wire format where the
 * seed API exposes them, so that mapping to the HTTP edge stays thin.
 */

export const TASK_TYPES = ['process_data', 'health_check', 'deploy', 'analyze_risk', 'monitor'] as const;
export type TaskType = (typeof TASK_TYPES)[number];

export function isTaskType(value: unknown): value is TaskType {
  return typeof value === 'string' && (TASK_TYPES as readonly string[]).includes(value);
}

export const RINGS = ['canary', 'dev', 'stage', 'prod'] as const;
export type Ring = (typeof RINGS)[number];
export type RingOrUnassigned = Ring | 'unassigned';

/** Connectivity, kept apart from health: an offline device may be perfectly healthy. */
export type Connectivity = 'online' | 'offline' | 'decommissioned';

/** What the seed calls an agent's status: connectivity folded with whether it is running a task. */
export type AgentStatus = 'idle' | 'busy' | 'offline' | 'decommissioned';

export interface DeviceMetrics {
  battery_level: number;
  battery_charging: boolean;
  cpu_usage: number;
  memory_usage: number;
  disk_usage: number;
}

/** The device facts an agent reports about itself. */
export interface DeviceInfo extends DeviceMetrics {
  name: string;
  os_version: string;
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

export type AgentKind = 'simulated';

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
}

export type TaskStatus = 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled';

export interface Task {
  id: string;
  /** Monotonic submission order; FIFO within a priority. */
  seq: number;
  type: TaskType;
  parameters: Record<string, unknown>;
  priority: number;
  status: TaskStatus;
  assignedTo: string | null;
  /** Attempts started so far. The current attempt number is the fencing token for results. */
  attempts: number;
  maxAttempts: number;
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

export type DeploymentStatus = 'active' | 'completed';

export interface Deployment {
  id: string;
  status: DeploymentStatus;
  startedAt: number;
  completedAt: number | null;
  affectedAgents: string[];
  recoveredAgents: string[];
}
