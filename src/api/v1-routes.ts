import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Services } from '../core/services.js';
import { Type } from 'typebox';
import { errors } from './openapi.js';
import { Agent } from './response-schemas.js';
import { DocumentedEnum, NullableDateTime, ref, StringEnum } from './schema-helpers.js';
import { AgentParams } from './schemas.js';
import { agentJson, iso } from './views.js';
import type { ReplicaStatus } from './replica.js';
import { ReplicaSchema } from './replica.js';

const TAGS = ['agents'];
const NOT_FOUND = errors({ 404: ['ORCH_AGENT_NOT_FOUND'] });

/** The versioned REST API. It grows issue by issue; the seed's routes stay as they are. */
export function v1Routes(services: Services, replica: () => ReplicaStatus): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.get('/healthz', {
      schema: {
        operationId: 'health',
        summary: 'Liveness',
        tags: ['health'],
        response: { 200: Type.Object({ status: DocumentedEnum(['ok', 'stopping']), master_id: Type.String(), replica: ReplicaSchema }, { additionalProperties: false, description: '`stopping` once the orchestrator is stopping' }) },
      },
    }, () => ({ status: services.status.isRunning ? 'ok' : 'stopping', master_id: services.status.masterId, replica: replica() }));

    // Ready to take changes: running, and the store commits. 503 while writes fail (the orchestrator recovers by itself).
    const Storage = Type.Object(
      {
        writable: Type.Boolean(),
        since: NullableDateTime,
        error: Type.Union([Type.String(), Type.Null()], { description: 'why writes fail, while they do' }),
        outages: Type.Integer({ minimum: 0, description: 'times writes started failing since the start' }),
        recoveries: Type.Integer({ minimum: 0 }),
      },
      { additionalProperties: false },
    );
    const Readiness = { status: DocumentedEnum(['ready', 'not_ready']), master_id: Type.String(), storage: Storage, replica: ReplicaSchema };
    r.get('/readyz', {
      schema: {
        operationId: 'ready',
        summary: 'Readiness: running, and the store commits changes',
        tags: ['health'],
        response: {
          200: Type.Object(Readiness, { additionalProperties: false }),
          503: Type.Object(
            { ...Readiness, error: Type.String(), code: StringEnum(['ORCH_STORAGE_UNAVAILABLE', 'ORCH_SHUTTING_DOWN'] as const) },
            { additionalProperties: false, description: 'not ready: the store cannot commit (it is probed and the orchestrator recovers by itself), or it is stopping; with `retry-after`' },
          ),
        },
      },
    }, (_request, reply) => {
      const storage = services.status.storage.status();
      const ready = services.status.isRunning && storage.writable;
      const body = {
        status: ready ? 'ready' : 'not_ready',
        master_id: services.status.masterId,
        storage: { writable: storage.writable, since: iso(storage.since), error: storage.writable ? null : storage.error, outages: storage.outages, recoveries: storage.recoveries },
        replica: replica(),
      };
      if (ready) return body;
      const why = !services.status.isRunning ? 'the orchestrator is not running' : `the store cannot commit changes (${storage.error ?? 'writes are failing'})`;
      void reply.status(503).header('retry-after', '2');
      return { ...body, error: why, code: services.status.isRunning ? ('ORCH_STORAGE_UNAVAILABLE' as const) : ('ORCH_SHUTTING_DOWN' as const) };
    });

    r.get('/api/v1/agents', {
      schema: {
        operationId: 'listAgentsV1',
        summary: 'Every agent in full (`approval=pending`: those waiting for an admin)',
        tags: TAGS,
        querystring: Type.Object({ approval: Type.Optional(StringEnum(['approved', 'pending'])) }, { additionalProperties: false }),
        response: { 200: Type.Object({ agents: Type.Array(ref(Agent)) }, { additionalProperties: false }) },
      },
    }, async (request) => {
      const agents = (await services.agents.views()).map(agentJson);
      const approval = request.query.approval;
      return { agents: approval === undefined ? agents : agents.filter((a) => a.approval === approval) };
    });

    r.get('/api/v1/agents/:id', {
      schema: { operationId: 'getAgent', summary: 'One agent', tags: TAGS, params: AgentParams, response: { 200: ref(Agent), ...NOT_FOUND } },
    }, async (request) =>
      agentJson(await services.agents.view(request.params.id)),
    );

    r.get('/api/v1/agents/:id/ring-history', {
      schema: {
        operationId: 'agentRingHistory',
        summary: "The agent's ring moves, each with its reason",
        tags: TAGS,
        params: AgentParams,
        response: {
          200: Type.Object(
            {
              moves: Type.Array(
                Type.Object({ from: Type.String(), to: Type.String(), reason: Type.String(), at: Type.String({ format: 'date-time' }) }, { additionalProperties: false }),
                { description: 'oldest first' },
              ),
            },
            { additionalProperties: false },
          ),
          ...NOT_FOUND,
        },
      },
    }, async (request) => {
      await services.agents.view(request.params.id);
      const moves = await services.agents.ringMoves(request.params.id);
      return { moves: moves.map((m) => ({ from: m.from, to: m.to, reason: m.reason, at: iso(m.at) })) };
    });

    r.delete('/api/v1/agents/:id', {
      schema: {
        operationId: 'decommissionAgent',
        summary: 'Decommission an agent',
        description: 'The agent is told to shut down; its running tasks go back to the queue with the attempt counted.',
        tags: TAGS,
        params: AgentParams,
        response: { 200: Type.Object({ agent_id: Type.String(), status: DocumentedEnum(['decommissioned']) }, { additionalProperties: false }), ...NOT_FOUND },
      },
    }, async (request) => {
      await services.agents.remove(request.params.id);
      return { agent_id: request.params.id, status: 'decommissioned' };
    });
  };
}
