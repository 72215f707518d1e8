import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Id as SafeId } from './schemas.js';
import type { Orchestrator } from '../core/orchestrator.js';
import { OrchestratorError } from '../domain/errors.js';
import type { DeviceFilter } from '../fleet/fleet.js';
import { DEVICE_LIST_MAX } from '../fleet/fleet.js';
import { iso } from './views.js';

export const IMPORT_MAX = 2000;

const Attr = Type.String({ minLength: 1, maxLength: 200 });
const Percent = Type.Number({ minimum: 0, maximum: 100 });

const DeviceIn = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]*$' }),
    site: Type.Optional(Attr),
    department: Type.Optional(Attr),
    manufacturer: Type.Optional(Attr),
    model: Type.Optional(Attr),
    osName: Type.Optional(Attr),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 50 })),
    metrics: Type.Optional(
      Type.Object(
        { battery: Percent, charging: Type.Boolean(), cpu: Percent, memory: Percent, disk: Percent },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

const ImportBody = Type.Object({ devices: Type.Array(DeviceIn, { minItems: 1, maxItems: IMPORT_MAX }) }, { additionalProperties: false });

const DeviceParams = Type.Object({ id: SafeId });

const ListQuery = Type.Object(
  {
    ring: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    status: Type.Optional(Type.Union([Type.Literal('online'), Type.Literal('offline'), Type.Literal('decommissioned')])),
    healthBelow: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}(\\.[0-9]+)?$' })),
    site: Type.Optional(Attr),
    department: Type.Optional(Attr),
    sort: Type.Optional(Type.Union([Type.Literal('id'), Type.Literal('score'), Type.Literal('-score')])),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);

const OverrideBody = Type.Object(
  {
    ring: Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()]),
    pinned: Type.Optional(Type.Boolean()),
    reason: Type.String({ minLength: 1, maxLength: 500 }),
  },
  { additionalProperties: false },
);

const MovesQuery = Type.Object(
  {
    since: Type.Optional(Type.Union([Type.String({ pattern: '^[0-9]{1,16}$' }), Type.String({ format: 'date-time' })])),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);

function limitOf(raw: string | undefined, fallback: number): number {
  const limit = raw === undefined ? fallback : Number(raw);
  if (limit < 1 || limit > DEVICE_LIST_MAX) throw new OrchestratorError('ORCH_VALIDATION', `limit must be from 1 to ${DEVICE_LIST_MAX}`);
  return limit;
}

const moveJson = (m: { id: number; agentId: string; from: string; to: string; reason: string; at: number }) => ({
  id: m.id,
  deviceId: m.agentId,
  from: m.from,
  to: m.to,
  reason: m.reason,
  at: iso(m.at),
});

/** `/api/v1/devices` and `/api/v1/rings`: the fleet, its health and its rings. */
export function fleetRoutes(orchestrator: Orchestrator): FastifyPluginAsync {
  const fleet = orchestrator.fleet;
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/api/v1/devices', { schema: { body: ImportBody } }, async (request, reply) => {
      const ids = new Set<string>();
      for (const d of request.body.devices) {
        if (ids.has(d.id)) throw new OrchestratorError('ORCH_VALIDATION', `device ${d.id} appears twice in one import`);
        ids.add(d.id);
      }
      const out = await fleet.importDevices(request.body.devices);
      return reply.status(out.created > 0 ? 201 : 200).send(out);
    });

    r.get('/api/v1/devices', { schema: { querystring: ListQuery } }, (request) => {
      const q = request.query;
      const filter: DeviceFilter = {
        ...(q.ring !== undefined ? { ring: q.ring } : {}),
        ...(q.status !== undefined ? { status: q.status } : {}),
        ...(q.healthBelow !== undefined ? { healthBelow: Number(q.healthBelow) } : {}),
        ...(q.site !== undefined ? { site: q.site } : {}),
        ...(q.department !== undefined ? { department: q.department } : {}),
      };
      if (filter.healthBelow !== undefined && filter.healthBelow > 100) throw new OrchestratorError('ORCH_VALIDATION', 'healthBelow must be from 0 to 100');
      return fleet.list(filter, (q.sort ?? 'id'), limitOf(q.limit, 100), q.cursor);
    });

    r.get('/api/v1/devices/:id', { schema: { params: DeviceParams } }, (request) => {
      const d = fleet.device(request.params.id);
      return { ...d, movedAt: iso(d.movedAt), metrics: d.metrics ? { ...d.metrics, sampledAt: iso(d.metrics.sampledAt) } : null };
    });

    r.put('/api/v1/devices/:id/ring', { schema: { params: DeviceParams, body: OverrideBody } }, async (request) => {
      const b = request.body;
      const { device, moved } = await fleet.override(request.params.id, b.ring, b.pinned ?? true, b.reason);
      return { id: device.id, ring: device.ring, pin: device.pin, moved, pendingMove: b.ring !== null && device.ring !== b.ring };
    });

    r.get('/api/v1/devices/:id/ring-history', { schema: { params: DeviceParams } }, async (request) => {
      fleet.device(request.params.id);
      return { moves: (await orchestrator.ringMoves(request.params.id)).map(moveJson) };
    });

    r.get('/api/v1/rings', () => fleet.rings());

    r.put('/api/v1/rings', async (request) => {
      const { config, moves } = await fleet.configure(request.body);
      return { config, moves, rings: fleet.rings().rings };
    });

    r.post('/api/v1/rings/rebalance', async () => {
      const out = await fleet.rebalance('operator');
      return { moves: out.moves, planMs: Math.round(out.planMs * 10) / 10, totalMs: Math.round(out.totalMs * 10) / 10 };
    });

    r.get('/api/v1/rings/moves', { schema: { querystring: MovesQuery } }, async (request) => {
      const q = request.query;
      const since = q.since === undefined ? 0 : /^[0-9]+$/.test(q.since) ? Number(q.since) : Date.parse(q.since);
      if (!Number.isFinite(since)) throw new OrchestratorError('ORCH_VALIDATION', 'since must be a date-time or milliseconds since the epoch');
      const out = await fleet.moves(since, limitOf(q.limit, 100), q.cursor);
      return { moves: out.moves.map(moveJson), nextCursor: out.nextCursor };
    });
  };
}
