import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static, TSchema } from 'typebox';
import type { LiveAgent } from '../core/agents.js';
import type { AgentProtocolService } from '../core/services.js';
import type { ResultReport } from '../core/task-types.js';
import { readingOf } from '../domain/metrics.js';
import { TASK_TYPES } from '../domain/types.js';
import type { DeviceInfo } from '../domain/types.js';
import { errors } from './openapi.js';
import { AgentCommand } from './response-schemas.js';
import { ref, StringEnum } from './schema-helpers.js';

/** The longest a command long-poll waits. */
export const MAX_POLL_MS = 30_000;
export const RESULTS_MAX = 500;

const Percent = Type.Number({ minimum: 0, maximum: 100 });
const Nullable = <T extends ReturnType<typeof Type.Number> | ReturnType<typeof Type.Boolean>>(t: T) => Type.Union([t, Type.Null()]);

/** Metrics as a real machine reports them: a machine without a battery reports `battery: null`. */
/** The domain's Reading (src/domain/metrics.ts), as agents send it. */
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
    capabilities: Type.Array(StringEnum(TASK_TYPES), { maxItems: TASK_TYPES.length, uniqueItems: true }),
    metrics: Metrics,
  },
  { additionalProperties: false },
);

export const Heartbeat = Type.Object(
  {
    seq: Type.Integer({ minimum: 0 }),
    metrics: Metrics,
    running: Type.Array(Type.Object({ taskId: Type.String({ minLength: 1, maxLength: 200 }), attempt: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }), { maxItems: 1000 }),
    /** The last command the agent had handled when it wrote this heartbeat: an assignment up to it that `running` does not list is not running. */
    ack: Type.Optional(Type.Integer({ minimum: 0 })),
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

const TAGS = ['agent protocol'];
const Ok = Type.Boolean({ enum: [true] });

/** The hot routes' answers are typed `object` (the HTTP/2 stream path shares them): their schemas are checked at run time only. */
const answer = (schema: TSchema) => Type.Unsafe<object>(schema);

/**
 * The three hot routes' work, shared by their Fastify routes and by the HTTP/2
 * stream routes (agent-streams.ts) that carry a fleet's traffic past Fastify.
 * Each takes the agent, authenticated before its input was even read, and the validated input.
 */
export const agentAnswers = {
  /** Answered at once unless something must be written first (usually nothing is). */
  heartbeat(agents: AgentProtocolService, live: LiveAgent, body: Static<typeof Heartbeat>): object | Promise<object> {
    const pending = agents.heartbeat(live, readingOf(body.metrics), body.running, body.ack);
    const answer = { ok: true, seq: body.seq };
    return pending === null ? answer : pending.then(() => answer);
  },

  async commands(agents: AgentProtocolService, live: LiveAgent, query: Static<typeof Poll>): Promise<object> {
    const waitMs = Math.min(MAX_POLL_MS, query.waitMs === undefined ? MAX_POLL_MS : Number(query.waitMs));
    const commands = await agents.poll(live, query.ack === undefined ? 0 : Number(query.ack), waitMs);
    return { commands };
  },

  async results(agents: AgentProtocolService, live: LiveAgent, body: Static<typeof Results>): Promise<object> {
    const results = body.results.map((x) => {
      const report: ResultReport = x.success
        ? { success: true, result: x.result ?? null }
        : { success: false, error: x.error ?? 'task failed', ...(x.retryable !== undefined ? { retryable: x.retryable } : {}) };
      return { taskId: x.taskId, attempt: x.attempt, report };
    });
    return { results: await agents.results(live, results) };
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
export function agentRoutes(agents: AgentProtocolService): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/api/v1/agent/enroll', {
      schema: {
        operationId: 'enrollAgent',
        summary: 'Enroll an agent, or come back as one',
        description: 'Without `agentId` a new agent is created; with its `agentId` and `credential` an enrolled agent comes back (its token is not spent again).',
        tags: TAGS,
        body: Enroll,
        response: {
          200: Type.Object(
            {
              agentId: Type.String(),
              credential: Type.String({ description: 'the agent\'s secret: `Authorization: Bearer <agentId>:<credential>`' }),
              approval: StringEnum(['approved', 'pending'], { description: '`pending`: no task until an admin approves it' }),
              heartbeatIntervalMs: Type.Integer({ minimum: 1 }),
              maxPollMs: Type.Integer({ minimum: 0 }),
            },
            { additionalProperties: false },
          ),
          ...errors({ 403: ['ORCH_ENROLL_REFUSED'], 409: ['ORCH_AGENT_IDENTITY'] }),
        },
      },
    }, async (request) => {
      const b = request.body;
      const device: DeviceInfo = { name: b.hostname, osVersion: b.osVersion ?? 'unknown', ...readingOf(b.metrics) };
      const out = await agents.enroll({
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
      return { ...out, heartbeatIntervalMs: agents.heartbeatIntervalMs, maxPollMs: MAX_POLL_MS };
    });

    // The agent was authenticated before its body was read (security-hooks.ts): `request.agent`.
    r.post('/api/v1/agent/heartbeat', {
      schema: {
        operationId: 'agentHeartbeat',
        summary: "The agent's metrics and the attempts it runs",
        tags: TAGS,
        body: Heartbeat,
        response: { 200: answer(Type.Object({ ok: Ok, seq: Type.Integer({ minimum: 0, description: 'the heartbeat\'s own seq' }) }, { additionalProperties: false })) },
      },
    }, (request) => agentAnswers.heartbeat(agents, agentOf(request), request.body));
    r.get('/api/v1/agent/commands', {
      schema: {
        operationId: 'agentCommands',
        summary: "Long-poll for the agent's commands",
        description: 'Answers as soon as a command is queued, or with none after `waitMs` (at most 30 s). Commands stay queued until acknowledged (`ack`: the last id handled).',
        tags: TAGS,
        querystring: Poll,
        response: { 200: answer(Type.Object({ commands: Type.Array(ref(AgentCommand), { maxItems: 100 }) }, { additionalProperties: false })) },
      },
    }, (request) => agentAnswers.commands(agents, agentOf(request), request.query));
    r.post('/api/v1/agent/results', {
      schema: {
        operationId: 'agentResults',
        summary: 'Results of attempts, each committed before the answer',
        tags: TAGS,
        body: Results,
        response: {
          200: answer(
            Type.Object(
              {
                results: Type.Array(
                  Type.Object(
                    {
                      taskId: Type.String(),
                      attempt: Type.Integer({ minimum: 1 }),
                      status: StringEnum(['accepted', 'refused']),
                      code: Type.Optional(StringEnum(['ORCH_STALE_ATTEMPT', 'ORCH_TASK_NOT_FOUND'], { description: 'why a result was refused' })),
                      error: Type.Optional(Type.String()),
                    },
                    { additionalProperties: false },
                  ),
                  { description: 'one per result, in order' },
                ),
              },
              { additionalProperties: false },
            ),
          ),
        },
      },
    }, (request) => agentAnswers.results(agents, agentOf(request), request.body));

    r.post('/api/v1/agent/progress', {
      schema: {
        operationId: 'agentProgress',
        summary: "Renew the lease of an attempt the agent runs",
        tags: TAGS,
        body: Progress,
        response: { 200: Type.Object({ ok: Ok }, { additionalProperties: false }), ...errors({ 404: ['ORCH_TASK_NOT_FOUND'] }) },
      },
    }, (request) => {
      agents.progress(agentOf(request), request.body.taskId, request.body.attempt);
      return { ok: true };
    });
  };
}
