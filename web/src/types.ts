/** The API's answers as the dashboard reads them (the server's OpenAPI document at /openapi.json is the full reference). */

export interface RingLine {
  name: string;
  size: number;
  target: number;
  online: number;
  p10: number | null;
  p50: number | null;
  p90: number | null;
  unhealthy: number;
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
  outcome: unknown;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
}

export interface Overview {
  at: string;
  devices: { total: number; online: number; offline: number; missing: number; missingAfterSeconds: number; decommissioned: number; unscored: number; unhealthy: number; health: number[] };
  rings: RingLine[];
  unassigned: number;
  tasks: Record<string, number>;
  deployments: (DeploymentSummary & { progress: { devices: number; counts: ExecutionCounts } })[];
  halts: DeploymentSummary[];
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
  id: number;
  deviceId: string;
  from: string;
  to: string;
  reason: string;
  at: string;
}

export interface Task {
  id: string;
  type: string;
  params: Record<string, unknown>;
  priority: number;
  status: string;
  target: unknown;
  agentId: string | null;
  attempts: number;
  maxAttempts: number;
  attemptsLeft: number;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  runAfter: string | null;
  deadline: string | null;
  result: unknown;
  error: string | null;
  attemptHistory?: { attempt: number; agentId: string; startedAt: string; endedAt: string | null; outcome: string | null; error: string | null }[];
}

export interface Execution {
  deviceId: string;
  deploymentId?: string;
  ring: string | null;
  state: string;
  reason: string | null;
  taskId: string | null;
  queuedAt: string;
  startedAt: string | null;
  endedAt: string | null;
  impact: { cpu: number; memory: number | null; batteryDrainPerHour: number | null } | null;
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
  plan: { name: string; payload: { type: string; params: Record<string, unknown> }; stages: { ring: string; soakMs: number; gate: Record<string, number> }[]; autoRollback: boolean };
  progress: { rings: { ring: string; stage: number; reached: boolean; devices: number; counts: ExecutionCounts; gate: Record<string, number>; lastEvaluation: GateEvaluation | null }[]; counts: ExecutionCounts };
  executions: Execution[];
  executionsTotal: number;
  evaluations: GateEvaluation[];
  haltAdvice: { id: string; url: string; summary: string } | null;
}

export interface Advice {
  id: string;
  subject: string;
  trigger: string;
  createdAt: string;
  decision: string | null;
  risk: string;
  confidence: number;
  rings: unknown;
  moves: unknown[];
  summary: string;
  evidence: unknown;
  provider: { name: string; model: string | null; fallback: string | null };
  applied: { at: string; by: string; actions: unknown[] } | null;
}
