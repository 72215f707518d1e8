import { Type } from 'typebox';
import { DEPLOYMENT_STATUSES, EXECUTION_STATES } from '../domain/deployment.js';
import type { DeploymentKind, DeploymentRecord, GateEvaluation } from '../domain/deployment.js';
import { TASK_TYPES } from '../domain/types.js';
import type { Same } from './schema-helpers.js';
import { Count, DateTime, DocumentedEnum, Nullable, NullableDateTime, NullableEnum, Percent, ref, StringEnum } from './schema-helpers.js';

/* The deployments' answers (the components of /api/v1/deployments). */

export const Payload = Type.Object({ type: DocumentedEnum(TASK_TYPES), params: Type.Object({}, { additionalProperties: true }) }, { $id: 'Payload', additionalProperties: false });

export const Gate = Type.Object(
  {
    maxFailureShare: Type.Number({ minimum: 0, maximum: 1 }),
    maxTimeoutShare: Type.Number({ minimum: 0, maximum: 1 }),
    maxCpuRegression: Type.Number({ minimum: 0, maximum: 100 }),
    maxMemoryRegression: Type.Number({ minimum: 0, maximum: 100 }),
    maxBatteryDrainRegression: Type.Number({ minimum: 0, maximum: 1000 }),
    maxRegressedShare: Type.Number({ minimum: 0, maximum: 1 }),
    minDevices: Type.Integer({ minimum: 1 }),
    minJudged: Type.Optional(Count),
    minModelDevices: Count,
    observeMs: Count,
    stalledMs: Count,
    confidence: Type.Number({ minimum: 0, maximum: 0.999 }),
  },
  { $id: 'Gate', additionalProperties: false },
);

export const Stage = Type.Object(
  {
    ring: Type.String(),
    rate: Type.Union([
      Type.Object({ maxPerMinute: Type.Number() }, { additionalProperties: false }),
      Type.Object(
        { exponential: Type.Object({ base: Type.Number(), factor: Type.Number(), every: Type.Number(), max: Type.Number() }, { additionalProperties: false }) },
        { additionalProperties: false },
      ),
    ]),
    soakMs: Count,
    gate: ref(Gate),
    preflight: Type.Object({ minBattery: Percent, requireCharging: Type.Boolean(), minFreeDisk: Percent }, { additionalProperties: false }),
  },
  { $id: 'Stage', additionalProperties: false },
);

export const DeploymentPlan = Type.Object(
  {
    name: Type.String(),
    payload: ref(Payload),
    stages: Type.Array(ref(Stage)),
    maintenanceWindows: Type.Array(
      Type.Object({ days: Type.Array(Type.Integer({ minimum: 0, maximum: 6 })), start: Type.String(), end: Type.String() }, { additionalProperties: false }),
    ),
    autoRollback: Type.Boolean(),
    rollbackPayload: ref(Payload),
  },
  { $id: 'DeploymentPlan', additionalProperties: false, description: 'the deployment as run: every default filled in' },
);

const DEPLOYMENT_KINDS = ['rollout', 'seed'] as const;
const _kinds: Same<(typeof DEPLOYMENT_KINDS)[number], DeploymentKind> = true;

export const ExecutionCounts = Type.Object(Object.fromEntries(EXECUTION_STATES.map((s) => [s, Count])) as Record<(typeof EXECUTION_STATES)[number], typeof Count>, {
  $id: 'ExecutionCounts',
  additionalProperties: false,
  description: 'executions by state',
});

export const DeploymentSummaryProperties = {
  id: Type.String(),
  kind: StringEnum(DEPLOYMENT_KINDS, { description: '`seed`: started through /start_deployment' }),
  name: Type.String(),
  status: StringEnum(DEPLOYMENT_STATUSES),
  stage: Nullable(
    Type.Object(
      {
        index: Count,
        ring: Nullable(Type.String()),
        phase: StringEnum(['dispatching', 'soaking'] satisfies DeploymentRecord['phase'][]),
        soakUntil: NullableDateTime,
      },
      { additionalProperties: false },
    ),
  ),
  haltReason: Nullable(Type.String()),
  pauseReason: NullableEnum(['operator', 'insufficient_evidence'] as const, {
    description: 'while paused: by an operator, or because a ring could judge fewer devices than its gate\'s `minJudged` (promote, resume or abort)',
  }),
  outcome: Nullable(
    Type.Object(
      {
        devices: Count,
        updated: Count,
        notUpdated: Count,
        counts: ref(ExecutionCounts),
        summary: Type.String({ description: 'in words, with why devices were not updated' }),
      },
      { additionalProperties: false, description: 'once the deployment has ended: who got the release and who did not' },
    ),
  ),
  createdAt: DateTime,
  startedAt: NullableDateTime,
  endedAt: NullableDateTime,
};

export const DeploymentSummary = Type.Object(DeploymentSummaryProperties, { $id: 'DeploymentSummary', additionalProperties: false });

/** A deployment as created: its summary and its plan. */
export const DeploymentCreated = Type.Object({ ...DeploymentSummaryProperties, plan: ref(DeploymentPlan) }, { $id: 'DeploymentCreated', additionalProperties: false });


const VERDICTS = ['pass', 'fail', 'wait', 'override', 'skip', 'insufficient_evidence'] as const;
const _verdicts: Same<(typeof VERDICTS)[number], GateEvaluation['verdict']> = true;

export const GateEvaluationView = Type.Object(
  {
    stage: Count,
    ring: Type.String(),
    at: DateTime,
    verdict: StringEnum(VERDICTS),
    reason: Type.String(),
    figures: Type.Record(Type.String(), Type.Number()),
  },
  { $id: 'GateEvaluation', additionalProperties: false },
);

/** A device's metrics as an execution read them (views.ts metricsJson); battery and charging null on a machine without a battery. */
const Reading = Type.Object(
  { battery: Nullable(Type.Number()), charging: Nullable(Type.Boolean()), cpu: Type.Number(), memory: Type.Number(), disk: Type.Number(), drain: Type.Number({ description: '% per hour' }) },
  { additionalProperties: false },
);

export const ExecutionView = Type.Object(
  {
    deviceId: Type.String(),
    ring: Nullable(Type.String()),
    state: StringEnum(EXECUTION_STATES),
    reason: Nullable(Type.String()),
    taskId: Nullable(Type.String()),
    rollbackTaskId: Nullable(Type.String()),
    baseline: Nullable(Reading),
    observed: Nullable(Reading),
    impact: Nullable(
      Type.Object({ cpu: Type.Number(), memory: Nullable(Type.Number()), batteryDrainPerHour: Nullable(Type.Number()) }, { additionalProperties: false }),
    ),
    queuedAt: DateTime,
    startedAt: NullableDateTime,
    endedAt: NullableDateTime,
    observedAt: NullableDateTime,
  },
  { $id: 'Execution', additionalProperties: false },
);

export const DeploymentDetail = Type.Object(
  {
    ...DeploymentSummaryProperties,
    plan: ref(DeploymentPlan),
    progress: Type.Object(
      {
        rings: Type.Array(
          Type.Object(
            {
              ring: Type.String(),
              stage: Count,
              reached: Type.Boolean(),
              devices: Count,
              counts: ref(ExecutionCounts),
              gate: ref(Gate),
              lastEvaluation: Nullable(ref(GateEvaluationView)),
            },
            { additionalProperties: false },
          ),
        ),
        counts: ref(ExecutionCounts),
      },
      { additionalProperties: false },
    ),
    executions: Type.Array(ref(ExecutionView)),
    executionsTotal: Count,
    evaluations: Type.Array(ref(GateEvaluationView)),
    haltAdvice: Nullable(
      Type.Object(
        { id: Type.String(), url: Type.String(), summary: Type.String() },
        { additionalProperties: false, description: "the advisor's explanation of the last halt, written when it halted (see /api/v1/advice); null when it never halted" },
      ),
    ),
  },
  { $id: 'DeploymentDetail', additionalProperties: false },
);
