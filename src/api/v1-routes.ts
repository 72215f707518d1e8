import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Orchestrator } from '../core/orchestrator.js';
import { Type } from 'typebox';
import { errors } from './openapi.js';
import { Agent, DocumentedEnum, ref } from './response-schemas.js';
import { AgentParams } from './schemas.js';
import { agentJson, iso } from './views.js';

const TAGS = ['agents'];
const NOT_FOUND = errors({ 404: ['ORCH_AGENT_NOT_FOUND'] });

/** The versioned REST API. It grows issue by issue; the seed's routes stay as they are. */
export function v1Routes(orchestrator: Orchestrator): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.get('/healthz', {
      schema: {
        operationId: 'health',
        summary: 'Liveness',
        tags: ['health'],
        response: { 200: Type.Object({ status: DocumentedEnum(['ok', 'stopping']), master_id: Type.String() }, { additionalProperties: false, description: '`stopping` once the orchestrator is stopping' }) },
      },
    }, () => ({ status: orchestrator.isRunning ? 'ok' : 'stopping', master_id: orchestrator.masterId }));

    r.get('/api/v1/agents', {
      schema: { operationId: 'listAgentsV1', summary: 'Every agent in full', tags: TAGS, response: { 200: Type.Object({ agents: Type.Array(ref(Agent)) }, { additionalProperties: false }) } },
    }, async () => ({ agents: (await orchestrator.agentViews()).map(agentJson) }));

    r.get('/api/v1/agents/:id', {
      schema: { operationId: 'getAgent', summary: 'One agent', tags: TAGS, params: AgentParams, response: { 200: ref(Agent), ...NOT_FOUND } },
    }, async (request) =>
      agentJson(await orchestrator.agentView(request.params.id)),
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
      await orchestrator.agentView(request.params.id);
      const moves = await orchestrator.ringMoves(request.params.id);
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
      await orchestrator.removeAgent(request.params.id);
      return { agent_id: request.params.id, status: 'decommissioned' };
    });
  };
}
