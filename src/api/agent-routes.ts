import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import type { LiveAgent, Orchestrator } from '../core/orchestrator.js';
import type { ResultReport } from '../core/task-engine.js';
import { TASK_TYPES } from '../domain/types.js';
import type { DeviceInfo } from '../domain/types.js';

/** The longest a command long-poll waits. */
export const MAX_POLL_MS = 30_000;
export const RESULTS_MAX = 500;

const Percent = Type.Number({ minimum: 0, maximum: 100 });
const Nullable = <T extends ReturnType<typeof Type.Number> | ReturnType<typeof Type.Boolean>>(t: T) => Type.Union([t, Type.Null()]);

/** Metrics as a real machine reports them: a machine without a battery reports `battery: null`. */
const Metrics = Type.Object(
  {
    battery: Nullable(Percent),
    charging: Nullable(Type.Boolean()),
    cpu: Percent,
    memory: Percent,
    disk: Percent,
  },
  { additionalProperties: false },
);

const Enroll = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 200 }),
    agentId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    credential: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    hostname: Type.String({ minLength: 1, maxLength: 200 }),
    osVersion: Type.Optional(Type.String({ maxLength: 200 })),
    // What the machine is (its firmware's model and manufacturer, its OS's name): kept as its device's
    // attributes, which ring rules and task selectors match.
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    manufacturer: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    osName: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    capabilities: Type.Array(Type.Union(TASK_TYPES.map((t) => Type.Literal(t))), { maxItems: TASK_TYPES.length, uniqueItems: true }),
    metrics: Metrics,
  },
  { additionalProperties: false },
);

export const Heartbeat = Type.Object(
  {
    seq: Type.Integer({ minimum: 0 }),
    metrics: Metrics,
    running: Type.Array(Type.Object({ taskId: Type.String({ minLength: 1, maxLength: 200 }), attempt: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }), { maxItems: 1000 }),
  },
  { additionalProperties: false },
);

export const Poll = Type.Object(
  { ack: Type.Optional(Type.String({ pattern: '^[0-9]{1,16}$' })), waitMs: Type.Optional(Type.String({ pattern: '^[0-9]{1,6}$' })) },
  { additionalProperties: false },
);

const Result = Type.Object(
  {
    taskId: Type.String({ minLength: 1, maxLength: 200 }),
    attempt: Type.Integer({ minimum: 1 }),
    success: Type.Boolean(),
    result: Type.Optional(Type.Unknown()),
    error: Type.Optional(Type.String({ maxLength: 10_000 })),
    retryable: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const Results = Type.Object({ results: Type.Array(Result, { minItems: 1, maxItems: RESULTS_MAX }) }, { additionalProperties: false });
const Progress = Type.Object({ taskId: Type.String({ minLength: 1, maxLength: 200 }), attempt: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });

type MetricsIn = { battery: number | null; charging: boolean | null; cpu: number; memory: number; disk: number };

/**
 * A machine's metrics as the orchestrator keeps them. A machine without a
 * battery runs on mains power: it is kept as fully charged and charging, so
 * that the battery factors of its score and the prototype's rule see nothing
 * to worry about; `has_battery: false` is kept with its device facts.
 */
function deviceMetrics(m: MetricsIn) {
  const hasBattery = m.battery !== null;
  return {
    battery_level: m.battery ?? 100,
    battery_charging: hasBattery ? (m.charging ?? false) : true,
    cpu_usage: m.cpu,
    memory_usage: m.memory,
    disk_usage: m.disk,
    has_battery: hasBattery,
  };
}

/**
 * The three hot routes' work, shared by their Fastify routes and by the HTTP/2
 * stream routes (agent-streams.ts) that carry a fleet's traffic past Fastify.
 * Each takes the agent, authenticated before its input was even read, and the validated input.
 */
export const agentAnswers = {
  /** Answered at once unless something must be written first (usually nothing is). */
  heartbeat(orchestrator: Orchestrator, live: LiveAgent, body: Static<typeof Heartbeat>): object | Promise<object> {
    const pending = orchestrator.agentHeartbeat(live, deviceMetrics(body.metrics), body.running);
    const answer = { ok: true, seq: body.seq };
    return pending === null ? answer : pending.then(() => answer);
  },

  async commands(orchestrator: Orchestrator, live: LiveAgent, query: Static<typeof Poll>): Promise<object> {
    const waitMs = Math.min(MAX_POLL_MS, query.waitMs === undefined ? MAX_POLL_MS : Number(query.waitMs));
    const commands = await orchestrator.pollCommands(live, query.ack === undefined ? 0 : Number(query.ack), waitMs);
    return { commands };
  },

  async results(orchestrator: Orchestrator, live: LiveAgent, body: Static<typeof Results>): Promise<object> {
    const results = body.results.map((x) => {
      const report: ResultReport = x.success
        ? { success: true, result: x.result ?? null }
        : { success: false, error: x.error ?? 'task failed', ...(x.retryable !== undefined ? { retryable: x.retryable } : {}) };
      return { taskId: x.taskId, attempt: x.attempt, report };
    });
    return { results: await orchestrator.agentResults(live, results) };
  },
};

function agentOf(request: FastifyRequest): LiveAgent {
  if (request.agent === null) throw new Error('an agent route ran without its agent authenticated');
  return request.agent;
}

/**
 * The network agent protocol (docs/agent-protocol.md): enrollment, heartbeats,
 * long-polled commands, progress and results, all JSON over HTTP. Every route
 * but enrollment takes `Authorization: Bearer <agentId>:<credential>`.
 */
export function agentRoutes(orchestrator: Orchestrator): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/api/v1/agent/enroll', { schema: { body: Enroll } }, async (request) => {
      const b = request.body;
      const device: DeviceInfo = { name: b.hostname, os_version: b.osVersion ?? 'unknown', ...deviceMetrics(b.metrics) };
      const out = await orchestrator.enroll({
        token: b.token,
        ...(b.agentId !== undefined ? { agentId: b.agentId } : {}),
        ...(b.credential !== undefined ? { credential: b.credential } : {}),
        capabilities: b.capabilities,
        device,
        attributes: {
          ...(b.model !== undefined ? { model: b.model } : {}),
          ...(b.manufacturer !== undefined ? { manufacturer: b.manufacturer } : {}),
          ...(b.osName !== undefined ? { osName: b.osName } : {}),
        },
      });
      return { ...out, heartbeatIntervalMs: orchestrator.heartbeatIntervalMs, maxPollMs: MAX_POLL_MS };
    });

    // The agent was authenticated before its body was read (security-hooks.ts): `request.agent`.
    r.post('/api/v1/agent/heartbeat', { schema: { body: Heartbeat } }, (request) => agentAnswers.heartbeat(orchestrator, agentOf(request), request.body));
    r.get('/api/v1/agent/commands', { schema: { querystring: Poll } }, (request) => agentAnswers.commands(orchestrator, agentOf(request), request.query));
    r.post('/api/v1/agent/results', { schema: { body: Results } }, (request) => agentAnswers.results(orchestrator, agentOf(request), request.body));

    r.post('/api/v1/agent/progress', { schema: { body: Progress } }, (request) => {
      orchestrator.agentProgress(agentOf(request), request.body.taskId, request.body.attempt);
      return { ok: true };
    });
  };
}
