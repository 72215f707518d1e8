import { Type } from 'typebox';
import type { Static, TSchema } from 'typebox';
import type { Command } from '../core/network-channel.js';
import type { AgentView } from '../core/agents.js';
import type { SeedDeployment as SeedDeploymentRecord } from '../core/seed-facade.js';
import { ERROR_CODES } from '../domain/errors.js';
import type { ErrorCode } from '../domain/errors.js';
import { HEALTH_FACTORS } from '../domain/health-score.js';
import { RING_POLICIES } from '../domain/ring-config.js';
import type { AuditOutcome } from '../domain/security.js';
import { ROLES } from '../domain/security.js';
import type { Connectivity } from '../domain/types.js';
import { TASK_STATUSES, TASK_TYPES } from '../domain/types.js';
import type { TaskAttempt } from '../store/store.js';
import { DeploymentCreated, DeploymentDetail, DeploymentPlan, DeploymentSummary, ExecutionCounts, ExecutionView, Gate, GateEvaluationView, Payload, Stage } from './deployment-schemas.js';
import type { Same } from './schema-helpers.js';
import { Count, DateTime, Nullable, NullableDateTime, NullableEnum, Percent, ref, StringEnum } from './schema-helpers.js';

/**
 * The responses of every route, as TypeBox schemas: one place for the shapes the
 * routes send, which the OpenAPI document (GET /openapi.json) shows. They are
 * documentation only: responses are serialized with JSON.stringify whatever the
 * schema says (app.ts), and test/e2e/openapi.test.ts and the fuzz test check that
 * what the routes really send matches them.
 *
 * Entities used by several routes are components (`$id`, added to the app with
 * `addSchema` and referred to with `ref`); the rest is inline in the routes' options.
 */

// ------------------------------------------------------------------ errors


const ALL_CODES = Object.keys(ERROR_CODES) as ErrorCode[];

export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'what went wrong, in words' }),
    code: StringEnum(ALL_CODES, { description: 'a stable code' }),
    errors: Type.Optional(Type.Array(Type.String(), { description: 'every problem, each with its place (an invalid ring configuration or deployment)' })),
    retryAfterSeconds: Type.Optional(Type.Integer({ minimum: 1, description: 'when to come back (also in `retry-after`)' })),
  },
  { $id: 'Error', additionalProperties: false, description: 'Every error: a 4xx (or a 503) with a message and a stable code.' },
);

// ------------------------------------------------------------------ the prototype's shapes

/** An asset as its client sent it: `id` and any other fields, kept as given. */
export const Asset = Type.Object(
  {
    id: Type.String(),
    name: Type.Optional(Type.String()),
    manufacturer: Type.Optional(Type.String()),
    model: Type.Optional(Type.String()),
    osName: Type.Optional(Type.String()),
    site: Type.Optional(Type.String()),
    department: Type.Optional(Type.String()),
  },
  { $id: 'Asset', additionalProperties: true, description: 'An asset record; fields beyond these are kept as the client gave them.' },
);

export const DeviceInfo = Type.Object(
  {
    name: Type.String(),
    battery_level: Nullable(Percent),
    battery_charging: Nullable(Type.Boolean()),
    cpu_usage: Percent,
    memory_usage: Percent,
    disk_usage: Percent,
    os_version: Type.String(),
    is_healthy: Type.Boolean({ description: 'the prototype\'s rule: battery > 20 and cpu < 80 and memory < 85 (a machine without a battery, `battery_level` null, passes its battery check)' }),
  },
  { $id: 'DeviceInfo', additionalProperties: false },
);

export const AGENT_STATUSES = ['idle', 'busy', 'offline'] as const;
const _agentStatuses: Same<(typeof AGENT_STATUSES)[number], AgentView['status']> = true;
export const CONNECTIVITY = ['online', 'offline', 'decommissioned'] as const;
const _connectivity: Same<(typeof CONNECTIVITY)[number], Connectivity> = true;
export const AgentStatus = StringEnum(AGENT_STATUSES, { description: '`busy`: online and running a task; `idle`: online and not' });

export const Agent = Type.Object(
  {
    slave_id: Type.String(),
    status: AgentStatus,
    connectivity: StringEnum(CONNECTIVITY),
    capabilities: Type.Array(StringEnum(TASK_TYPES)),
    registered_at: NullableDateTime,
    last_heartbeat: NullableDateTime,
    assigned_tasks: Type.Array(Type.String(), { description: 'ids of the tasks it runs now' }),
    completed_tasks: Count,
    failed_tasks: Count,
    device_info: Nullable(ref(DeviceInfo)),
    ring_assignment: Type.String({ description: 'a ring name, or `unassigned`' }),
    asset: Nullable(ref(Asset)),
    approval: StringEnum(['approved', 'pending']),
  },
  { $id: 'Agent', additionalProperties: false },
);

const ATTEMPT_OUTCOMES = ['succeeded', 'failed', 'timed_out', 'lease_expired', 'agent_lost', 'not_running', 'interrupted', 'cancelled'] as const;
const _outcomes: Same<(typeof ATTEMPT_OUTCOMES)[number], NonNullable<TaskAttempt['outcome']>> = true;
const AttemptOutcome = NullableEnum(ATTEMPT_OUTCOMES, { description: 'null while the attempt runs' });
export const TaskType = StringEnum(TASK_TYPES);
export const TaskStatus = StringEnum(TASK_STATUSES);
const SEED_STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'cancelled'] as const;

export const SeedTask = Type.Object(
  {
    task_id: Type.String(),
    task_type: TaskType,
    parameters: Type.Object({}, { additionalProperties: true }),
    priority: Type.Integer(),
    status: StringEnum(SEED_STATUSES, { description: 'the prototype\'s five states: `dead` and `expired` tasks are `failed`' }),
    state: StringEnum(TASK_STATUSES, { description: "the engine's exact state" }),
    assigned_to: Nullable(Type.String()),
    created_at: DateTime,
    started_at: NullableDateTime,
    completed_at: NullableDateTime,
    result: Type.Unknown({ description: 'the handler\'s result once completed, else null' }),
    error: Nullable(Type.String()),
    attempts: Count,
    max_attempts: Count,
    attempt_history: Type.Array(
      Type.Object(
        { attempt: Type.Integer({ minimum: 1 }), agent_id: Type.String(), started_at: DateTime, ended_at: NullableDateTime, outcome: AttemptOutcome, error: Nullable(Type.String()) },
        { additionalProperties: false },
      ),
    ),
  },
  { $id: 'SeedTask', additionalProperties: false },
);

const RingCounts = Type.Record(Type.String(), Count, { description: 'one key per configured ring, plus `unassigned`' });

export const ClusterStatus = Type.Object(
  {
    master_id: Type.String(),
    running: Type.Boolean(),
    total_slaves: Count,
    active_slaves: Count,
    idle_slaves: Count,
    offline_slaves: Count,
    healthy_devices: Count,
    total_devices: Count,
    total_tasks: Count,
    pending_tasks: Count,
    in_progress_tasks: Count,
    completed_tasks: Count,
    failed_tasks: Count,
    dead_tasks: Count,
    expired_tasks: Count,
    cancelled_tasks: Count,
    ring_distribution: RingCounts,
    queue_stats: Type.Record(Type.String(), Type.Object({ sent: Count, received: Count, dropped: Count }, { additionalProperties: false }), {
      description: 'per agent: messages sent to it, received from it, and dropped (never acknowledged)',
    }),
  },
  { $id: 'ClusterStatus', additionalProperties: false },
);

const SEED_DEPLOYMENT_STATUSES = ['active', 'completed', 'cancelled', 'rolled_back'] as const;
const _seedDeploymentStatuses: Same<(typeof SEED_DEPLOYMENT_STATUSES)[number], SeedDeploymentRecord['status']> = true;
export const SeedDeploymentStatus = StringEnum(SEED_DEPLOYMENT_STATUSES);

export const SeedDeployment = Type.Object(
  {
    deployment_id: Type.String(),
    status: SeedDeploymentStatus,
    start_time: DateTime,
    completed_at: NullableDateTime,
    total_agents: Count,
    active_agents: Count,
    idle_agents: Count,
    healthy_devices: Count,
    affected_agents: Type.Array(Type.String()),
    recovered_agents: Type.Array(Type.String()),
    agents: Type.Array(ref(Agent)),
    assets: Type.Array(Type.Object({ agent_id: Type.String(), asset_data: ref(Asset), agent_status: AgentStatus }, { additionalProperties: false })),
    ring_distribution: RingCounts,
    spawned_agents: Count,
    registered_slaves: Count,
  },
  { $id: 'SeedDeployment', additionalProperties: false },
);

// ------------------------------------------------------------------ /api/v1 tasks

const Selector = Type.Object(
  {
    site: Type.Optional(Type.String()),
    department: Type.Optional(Type.String()),
    manufacturer: Type.Optional(Type.String()),
    model: Type.Optional(Type.String()),
    osName: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const TaskTarget = Type.Union(
  [
    Type.Object({ agentId: Type.String() }, { additionalProperties: false }),
    Type.Object({ ring: Type.String() }, { additionalProperties: false }),
    Type.Object({ selector: Selector }, { additionalProperties: false }),
  ],
  { $id: 'TaskTarget', description: 'one agent, any agent of a ring, or agents whose asset matches every field given' },
);

const TaskProperties = {
  id: Type.String(),
  type: TaskType,
  params: Type.Object({}, { additionalProperties: true }),
  priority: Type.Integer(),
  status: TaskStatus,
  target: Nullable(ref(TaskTarget)),
  agentId: Nullable(Type.String({ description: 'the agent of the latest attempt' })),
  attempts: Count,
  maxAttempts: Type.Integer({ minimum: 1 }),
  attemptsLeft: Count,
  backoff: Type.Object(
    { strategy: StringEnum(['exponential', 'fixed']), initialMs: Count, maxMs: Count, jitter: Type.Boolean() },
    { additionalProperties: false },
  ),
  timeoutMs: Type.Integer({ minimum: 1 }),
  idempotencyKey: Nullable(Type.String()),
  runAfter: NullableDateTime,
  deadline: NullableDateTime,
  leaseExpiresAt: NullableDateTime,
  createdAt: DateTime,
  startedAt: NullableDateTime,
  completedAt: NullableDateTime,
  result: Type.Unknown({ description: "the handler's result once completed, else null" }),
  error: Nullable(Type.String()),
  attemptHistory: Type.Optional(
    Type.Array(
      Type.Object(
        { attempt: Type.Integer({ minimum: 1 }), agentId: Type.String(), startedAt: DateTime, endedAt: NullableDateTime, outcome: AttemptOutcome, error: Nullable(Type.String()) },
        { additionalProperties: false },
      ),
      { description: 'every attempt (one task only, not in lists)' },
    ),
  ),
  notice: Type.Optional(Type.String({ description: 'on submission only: said when no agent could run the task now (no agent offers its type, or none is in its ring or matches its selector); it waits until one does' })),
};

export const Task = Type.Object(TaskProperties, { $id: 'Task', additionalProperties: false });

/** A task of a batch: the task, and whether this batch created it (false: an earlier one with its idempotency key). */
export const BatchTask = Type.Object({ ...TaskProperties, created: Type.Boolean() }, { $id: 'BatchTask', additionalProperties: false });

// ------------------------------------------------------------------ devices and rings

export const DeviceSummary = Type.Object(
  {
    id: Type.String(),
    ring: Type.String({ description: 'a ring name, or `unassigned`' }),
    pinned: Type.Boolean(),
    held: Type.Boolean(),
    status: StringEnum(CONNECTIVITY),
    score: Nullable(Type.Number({ minimum: 0, maximum: 100, description: 'the health score; null before the first sample' })),
    healthy: Nullable(Type.Boolean({ description: "the prototype's yes/no health; null before the first sample" })),
    site: Nullable(Type.String()),
    department: Nullable(Type.String()),
    manufacturer: Nullable(Type.String()),
    model: Nullable(Type.String()),
    osName: Nullable(Type.String()),
    tags: Type.Array(Type.String()),
  },
  { $id: 'DeviceSummary', additionalProperties: false },
);

export const DeviceDetail = Type.Object(
  {
    ...DeviceSummary.properties,
    health: Nullable(
      Type.Object(
        {
          score: Type.Number({ minimum: 0, maximum: 100 }),
          factors: Type.Array(
            Type.Object(
              {
                factor: StringEnum(HEALTH_FACTORS),
                value: Type.Number(),
                weight: Type.Number(),
                badness: Type.Number({ minimum: 0, maximum: 1 }),
                contribution: Type.Number({ maximum: 0, description: 'points taken off 100' }),
              },
              { additionalProperties: false },
            ),
          ),
          healthy: Nullable(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    metrics: Nullable(
      Type.Object(
        {
          battery: Nullable(Type.Number({ description: 'null: no battery' })),
          charging: Nullable(Type.Boolean()),
          cpu: Type.Number(),
          memory: Type.Number(),
          disk: Type.Number(),
          batteryDrainPerHour: Type.Number(),
          cpuTrendPerHour: Type.Number(),
          deploymentImpact: Type.Number({ minimum: 0, maximum: 1 }),
          sampledAt: DateTime,
        },
        { additionalProperties: false },
      ),
    ),
    pin: Nullable(Type.Object({ ring: Type.String(), source: StringEnum(['rule', 'manual']) }, { additionalProperties: false })),
    inflightExecutions: Count,
    movedAt: Nullable(DateTime),
  },
  { $id: 'DeviceDetail', additionalProperties: false },
);

export const RingMove = Type.Object(
  { id: Type.Integer({ minimum: 1 }), deviceId: Type.String(), from: Type.String(), to: Type.String(), reason: Type.String(), at: DateTime },
  { $id: 'RingMove', additionalProperties: false },
);

export const RingConfig = Type.Object(
  {
    rings: Type.Array(
      Type.Object(
        {
          name: Type.String(),
          share: Type.Number({ minimum: 0, maximum: 1 }),
          min: Type.Optional(Count),
          max: Type.Optional(Count),
          allowUnhealthy: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    pins: Type.Array(Type.Object({ rule: Type.String(), ring: Type.String() }, { additionalProperties: false })),
    holds: Type.Array(Type.String()),
    policy: StringEnum(RING_POLICIES),
    hysteresis: Type.Number({ minimum: 0, maximum: 100 }),
    dwellMs: Count,
  },
  { $id: 'RingConfig', additionalProperties: false },
);

export const RingView = Type.Object(
  {
    name: Type.String(),
    share: Type.Number({ minimum: 0, maximum: 1 }),
    min: Nullable(Count),
    max: Nullable(Count),
    allowUnhealthy: Type.Boolean(),
    target: Count,
    size: Count,
    online: Type.Integer({ minimum: 0, description: 'of `size`, online now (the rest are offline)' }),
    health: Type.Object(
      {
        p10: Nullable(Type.Number()),
        p50: Nullable(Type.Number()),
        p90: Nullable(Type.Number()),
        unhealthy: Count,
        unknown: Count,
      },
      { additionalProperties: false },
    ),
    bySite: Type.Record(Type.String(), Count),
    byModel: Type.Record(Type.String(), Count),
  },
  { $id: 'RingView', additionalProperties: false },
);

// ------------------------------------------------------------------ security

export const ApiToken = Type.Object(
  { id: Type.String(), name: Type.String(), role: StringEnum(ROLES), createdAt: DateTime, createdBy: Type.String(), revokedAt: NullableDateTime },
  { $id: 'ApiToken', additionalProperties: false },
);

export const NewApiToken = Type.Object({ ...ApiToken.properties, token: Type.String({ description: 'the secret, shown this once' }) }, { $id: 'NewApiToken', additionalProperties: false });

const EnrollmentTokenProperties = {
  id: Type.String(),
  name: Type.String(),
  maxUses: Nullable(Type.Integer({ minimum: 1, description: 'null: any number' })),
  uses: Count,
  expiresAt: NullableDateTime,
  requireApproval: Type.Boolean(),
  createdAt: DateTime,
  createdBy: Type.String(),
  revokedAt: NullableDateTime,
};

export const EnrollmentToken = Type.Object(EnrollmentTokenProperties, { $id: 'EnrollmentToken', additionalProperties: false });

export const NewEnrollmentToken = Type.Object({ ...EnrollmentTokenProperties, token: Type.String({ description: 'the secret, shown this once' }) }, { $id: 'NewEnrollmentToken', additionalProperties: false });

const AUDIT_OUTCOMES = ['ok', 'denied', 'refused', 'failed'] as const;
const _auditOutcomes: Same<(typeof AUDIT_OUTCOMES)[number], AuditOutcome> = true;

export const AuditEntry = Type.Object(
  {
    id: Type.Integer({ minimum: 1 }),
    at: DateTime,
    actor: Type.String(),
    actorTokenId: Nullable(Type.String()),
    role: NullableEnum(ROLES),
    action: Type.String({ description: 'the route, as `METHOD /path/:param`' }),
    target: Nullable(Type.String()),
    outcome: StringEnum(AUDIT_OUTCOMES),
    status: Type.Integer(),
    address: Nullable(Type.String()),
  },
  { $id: 'AuditEntry', additionalProperties: false },
);

// ------------------------------------------------------------------ the agent protocol

export const AgentCommand = Type.Union(
  [
    Type.Object(
      {
        id: Type.Integer(),
        type: Type.Literal('task_assignment'),
        taskId: Type.String(),
        attempt: Type.Integer({ minimum: 1 }),
        taskType: TaskType,
        params: Type.Object({}, { additionalProperties: true }),
        timeoutMs: Type.Integer({ minimum: 1 }),
      },
      { additionalProperties: false },
    ),
    Type.Object({ id: Type.Integer(), type: Type.Literal('cancel'), taskId: Type.String(), attempt: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
    Type.Object({ id: Type.Integer(), type: Type.Literal('ring_assignment'), ring: Type.String(), reason: Type.String() }, { additionalProperties: false }),
    Type.Object({ id: Type.Integer(), type: Type.Literal('shutdown'), reason: Type.String() }, { additionalProperties: false }),
  ],
  { $id: 'AgentCommand', description: 'acknowledge the last id handled in the next poll (`ack`)' },
);
const _commands: Same<(Static<typeof AgentCommand> & object)['type'], Command['type']> = true;

/** Every component, added to the app once (`app.addSchema`) so that routes can refer to them. */
export const COMPONENTS: readonly TSchema[] = [
  ErrorBody,
  Asset,
  DeviceInfo,
  Agent,
  SeedTask,
  ClusterStatus,
  SeedDeployment,
  TaskTarget,
  Task,
  BatchTask,
  DeviceSummary,
  DeviceDetail,
  RingMove,
  RingConfig,
  RingView,
  Payload,
  Gate,
  Stage,
  DeploymentPlan,
  DeploymentSummary,
  DeploymentCreated,
  ExecutionCounts,
  GateEvaluationView,
  ExecutionView,
  DeploymentDetail,
  ApiToken,
  NewApiToken,
  EnrollmentToken,
  NewEnrollmentToken,
  AuditEntry,
  AgentCommand,
];
