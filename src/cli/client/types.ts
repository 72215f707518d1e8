/** The API's answers as the command line reads them (docs/api.md, and GET /openapi.json for every field). */

export interface Whoami {
  actor: string;
  tokenId?: string;
  role: string;
  open: boolean;
}

export type ExecutionCounts = Record<string, number>;

export interface DeploymentSummary {
  id: string;
  kind: string;
  name: string;
  status: string;
  stage: { index: number; ring: string | null; phase: string; soakUntil: string | null } | null;
  haltReason: string | null;
  pauseReason: string | null;
  outcome: { devices: number; updated: number; notUpdated: number; counts: ExecutionCounts; summary: string } | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
}

export interface Overview {
  at: string;
  devices: { total: number; online: number; offline: number; missing: number; missingAfterSeconds: number; decommissioned: number; unscored: number; unhealthy: number; health: number[] };
  rings: { name: string; size: number; target: number; online: number; p10: number | null; p50: number | null; p90: number | null; unhealthy: number }[];
  unassigned: number;
  tasks: Record<string, number>;
  deployments: (DeploymentSummary & { progress: { devices: number; counts: ExecutionCounts } })[];
  halts: DeploymentSummary[];
}

export interface Agent {
  slave_id: string;
  status: string;
  connectivity: string;
  capabilities: string[];
  registered_at: string | null;
  last_heartbeat: string | null;
  assigned_tasks: string[];
  completed_tasks: number;
  failed_tasks: number;
  device_info: { name: string; battery_level: number | null; battery_charging: boolean | null; cpu_usage: number; memory_usage: number; disk_usage: number; os_version: string; is_healthy: boolean } | null;
  ring_assignment: string;
  asset: Record<string, unknown> | null;
  approval: string;
}

export interface DeviceSummary {
  id: string;
  ring: string;
  pinned: boolean;
  held: boolean;
  status: string;
  score: number | null;
  healthy: boolean | null;
  site: string | null;
  department: string | null;
  manufacturer: string | null;
  model: string | null;
  osName: string | null;
  tags: string[];
}

export interface DeviceDetail extends DeviceSummary {
  health: { score: number; factors: { factor: string; value: number; weight: number; badness: number; contribution: number }[]; healthy: boolean | null } | null;
  metrics: { battery: number | null; charging: boolean | null; cpu: number; memory: number; disk: number; batteryDrainPerHour: number; cpuTrendPerHour: number; deploymentImpact: number; sampledAt: string } | null;
  pin: { ring: string; source: string } | null;
  inflightExecutions: number;
  movedAt: string | null;
}

export interface RingMove {
  id?: number;
  deviceId?: string;
  from: string;
  to: string;
  reason: string;
  at: string;
}

export interface RingView {
  name: string;
  share: number;
  min: number | null;
  max: number | null;
  allowUnhealthy: boolean;
  target: number;
  size: number;
  online: number;
  health: { p10: number | null; p50: number | null; p90: number | null; unhealthy: number; unknown: number };
  bySite: Record<string, number>;
  byModel: Record<string, number>;
}

export interface Rings {
  policy: string;
  hysteresis: number;
  dwellMs: number;
  unassigned: number;
  held: number;
  total: number;
  rings: RingView[];
  config: { rings: unknown[]; pins: { rule: string; ring: string }[]; holds: string[] };
}

export interface Attempt {
  attempt: number;
  agentId: string;
  startedAt: string;
  endedAt: string | null;
  outcome: string | null;
  error: string | null;
}

export interface Task {
  id: string;
  type: string;
  params: Record<string, unknown>;
  priority: number;
  status: string;
  target: { agentId?: string; ring?: string; selector?: Record<string, string> } | null;
  agentId: string | null;
  attempts: number;
  maxAttempts: number;
  attemptsLeft: number;
  timeoutMs: number;
  idempotencyKey: string | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  runAfter: string | null;
  deadline: string | null;
  result: unknown;
  error: string | null;
  attemptHistory?: Attempt[];
  notice?: string;
}

/** The task as an event of the stream carries it (its state, never its parameters or result); times in ms. */
export interface TaskEventTask {
  id: string;
  type: string;
  status: string;
  priority: number;
  attempts: number;
  agentId: string | null;
  error: string | null;
}

export interface GateEvaluation {
  stage: number;
  ring: string;
  at: string;
  verdict: string;
  reason: string;
  figures: Record<string, number>;
}

export interface DeploymentDetail extends DeploymentSummary {
  plan: { name: string; payload: { type: string; params: Record<string, unknown> }; stages: { ring: string; soakMs: number }[]; autoRollback: boolean; rollbackPayload?: { type: string; params: Record<string, unknown> } };
  progress: { rings: { ring: string; stage: number; reached: boolean; devices: number; counts: ExecutionCounts; lastEvaluation: GateEvaluation | null }[]; counts: ExecutionCounts };
  executions: unknown[];
  executionsTotal: number;
  evaluations: GateEvaluation[];
  haltAdvice: { id: string; url: string; summary: string } | null;
}

export interface Advice {
  id: string;
  subject: { deployment?: string; ring?: string; fleet?: true };
  trigger: string;
  createdAt: string;
  decision: string | null;
  risk: string;
  confidence: number;
  rings: { ring: string; risk: string; reasons: string[] }[];
  moves: { deviceId: string; from: string; to: string; reason: string }[];
  summary: string;
  evidence: Record<string, unknown>;
  provider: { name: string; model: string | null; fallback: string | null };
  cost: { inputTokens: number; outputTokens: number; ms: number };
  applied: { at: string; by: string; actions: { action: string; target: string; ok: boolean; detail: string }[] } | null;
}

export interface ApiToken {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
  token?: string;
}

export interface EnrollmentToken {
  id: string;
  name: string;
  maxUses: number | null;
  uses: number;
  expiresAt: string | null;
  requireApproval: boolean;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
  token?: string;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  actorTokenId: string | null;
  role: string | null;
  action: string;
  target: string | null;
  outcome: string;
  status: number;
  address: string | null;
}
