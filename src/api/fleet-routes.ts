import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { RING_POLICIES } from '../domain/ring-config.js';
import { documentedAs, errors } from './openapi.js';
import { CONNECTIVITY, DeviceDetail, DeviceSummary, RingConfig, RingMove, RingView } from './response-schemas.js';
import { DocumentedEnum, Nullable, NullableEnum, Percent, ref, StringEnum } from './schema-helpers.js';
import { Id as SafeId } from './schemas.js';
import type { Services } from '../core/services.js';
import { OrchestratorError } from '../domain/errors.js';
import type { DeviceFilter } from '../fleet/fleet-views.js';
import { DEVICE_LIST_MAX } from '../fleet/fleet-views.js';
import { iso } from './views.js';
import { executionJson } from './deployment-routes.js';
import { ExecutionView } from './deployment-schemas.js';

export const IMPORT_MAX = 2000;

const Attr = Type.String({ minLength: 1, maxLength: 200 });

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
    status: Type.Optional(StringEnum(CONNECTIVITY)),
    healthBelow: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}(\\.[0-9]+)?$' })),
    site: Type.Optional(Attr),
    department: Type.Optional(Attr),
    model: Type.Optional(Attr),
    sort: Type.Optional(StringEnum(['id', 'score', '-score'], { description: '`id`: registration order; `score`: worst first; `-score`: best first (devices without a score, and decommissioned ones, last)' })),
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

/** An instant: ms since the epoch, or a date-time. */
const Since = (options: { description?: string } = {}) => Type.Union([Type.String({ pattern: '^[0-9]{1,16}$' }), Type.String({ format: 'date-time' })], options);

function sinceOf(raw: string): number {
  const since = /^[0-9]+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(since)) throw new OrchestratorError('ORCH_VALIDATION', 'since must be a date-time or milliseconds since the epoch');
  return since;
}

const MovesQuery = Type.Object(
  {
    since: Type.Optional(Since()),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);

const Rule = Type.String({
  minLength: 1,
  maxLength: 1000,
  pattern: '\\S',
  description: 'clauses joined by `and`: `field = value`, `field != value`, `field in (a, b)`, `field not in (a, b)` over id, site, department, manufacturer, model, osName and tag',
});

/** The ring configuration as `PUT /api/v1/rings` takes it: validated by `compileRingConfig`, which names every problem with its place. */
const RingConfigBody = Type.Object(
  {
    rings: Type.Array(
      Type.Object(
        {
          name: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,31}$', description: 'unique, and not `unassigned`' }),
          share: Type.Number({ minimum: 0, maximum: 1, description: 'the shares of all rings sum to 1' }),
          min: Type.Optional(Type.Integer({ minimum: 0 })),
          max: Type.Optional(Type.Integer({ minimum: 0, description: 'not below min' })),
          allowUnhealthy: Type.Optional(Type.Boolean({ description: "whether devices failing the prototype's health rule may be here; default: true for the earlier half of the rings" })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 16, description: 'in order' },
    ),
    pins: Type.Optional(Type.Array(Type.Object({ rule: Rule, ring: Type.String({ description: 'one of the rings' }) }), { maxItems: 100, description: 'the first matching rule wins' })),
    holds: Type.Optional(Type.Array(Rule, { maxItems: 100, description: 'a matching device is in no ring and in no rollout' })),
    policy: Type.Optional(NullableEnum(RING_POLICIES, { description: 'default (also for null): health' })),
    hysteresis: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 100, description: 'score points; default (also for null): 5' }))),
    dwellMs: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 30 * 86_400_000, description: 'default (also for null): 600000' }))),
  },
  { additionalProperties: false },
);

const HistoryQuery = Type.Object(
  {
    since: Type.Optional(Since({ description: 'ms since the epoch or a date-time; default: a day ago' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })),
  },
  { additionalProperties: false },
);

const HistoryPoint = Type.Object(
  {
    at: Type.String({ format: 'date-time' }),
    battery: Nullable(Percent),
    charging: Nullable(Type.Boolean()),
    cpu: Percent,
    memory: Percent,
    disk: Percent,
    score: Nullable(Type.Number({ minimum: 0, maximum: 100 })),
  },
  { additionalProperties: false },
);


const TAGS = ['devices'];
const RING_TAGS = ['rings'];
const DEVICE_NOT_FOUND = errors({ 404: ['ORCH_DEVICE_NOT_FOUND'] });
const ImportResult = Type.Object({ created: Type.Integer({ minimum: 0 }), updated: Type.Integer({ minimum: 0 }) }, { additionalProperties: false });
const Moves = Type.Object({ moves: Type.Array(ref(RingMove), { description: 'oldest first' }) }, { additionalProperties: false });

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
export function fleetRoutes(services: Pick<Services, 'fleet' | 'agents' | 'deployments' | 'status'>): FastifyPluginAsync {
  // services.fleet is read on each request, never kept: it is replaced when the state is rebuilt after a failed write.
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/api/v1/devices', {
      schema: {
        operationId: 'importDevices',
        summary: 'Import up to 2,000 devices',
        description: 'A known id updates the device. Devices with metrics are scored and placed at once.',
        tags: TAGS,
        body: ImportBody,
        response: { 201: { ...ImportResult, description: 'some devices are new' }, 200: { ...ImportResult, description: 'every device was known' } },
      },
    }, async (request, reply) => {
      const ids = new Set<string>();
      for (const d of request.body.devices) {
        if (ids.has(d.id)) throw new OrchestratorError('ORCH_VALIDATION', `device ${d.id} appears twice in one import`);
        ids.add(d.id);
      }
      const out = await services.fleet.importDevices(request.body.devices);
      return reply.status(out.created > 0 ? 201 : 200).send(out);
    });

    r.get('/api/v1/devices', {
      schema: {
        operationId: 'listDevices',
        summary: 'Page through devices',
        tags: TAGS,
        querystring: ListQuery,
        response: {
          200: Type.Object({ devices: Type.Array(ref(DeviceSummary)), nextCursor: Nullable(Type.String({ description: 'pass as `cursor` (same filters and sort) for the next page; null on the last' })) }, { additionalProperties: false }),
          ...errors({ 400: ['ORCH_UNKNOWN_RING'] }),
        },
      },
    }, (request) => {
      const q = request.query;
      const filter: DeviceFilter = {
        ...(q.ring !== undefined ? { ring: q.ring } : {}),
        ...(q.status !== undefined ? { status: q.status } : {}),
        ...(q.healthBelow !== undefined ? { healthBelow: Number(q.healthBelow) } : {}),
        ...(q.site !== undefined ? { site: q.site } : {}),
        ...(q.department !== undefined ? { department: q.department } : {}),
        ...(q.model !== undefined ? { model: q.model } : {}),
      };
      if (filter.healthBelow !== undefined && filter.healthBelow > 100) throw new OrchestratorError('ORCH_VALIDATION', 'healthBelow must be from 0 to 100');
      return services.fleet.list(filter, (q.sort ?? 'id'), limitOf(q.limit, 100), q.cursor);
    });

    r.get('/api/v1/devices/:id', {
      schema: {
        operationId: 'getDevice',
        summary: "A device with its score and each factor's contribution",
        tags: TAGS,
        params: DeviceParams,
        response: { 200: ref(DeviceDetail), ...DEVICE_NOT_FOUND },
      },
    }, (request) => {
      const d = services.fleet.device(request.params.id);
      return { ...d, movedAt: iso(d.movedAt), metrics: d.metrics ? { ...d.metrics, sampledAt: iso(d.metrics.sampledAt) } : null };
    });

    r.put('/api/v1/devices/:id/ring', {
      schema: {
        operationId: 'setDeviceRing',
        summary: "An operator's ring for a device",
        description: 'Moves the device now and, pinned (the default), keeps it there; `"ring": null` removes the pin. A device with a deployment in flight moves once it ends (`pendingMove`).',
        tags: TAGS,
        params: DeviceParams,
        body: OverrideBody,
        response: {
          200: Type.Object(
            {
              id: Type.String(),
              ring: Type.String(),
              pin: DeviceDetail.properties.pin,
              moved: Type.Boolean(),
              pendingMove: Type.Boolean(),
            },
            { additionalProperties: false },
          ),
          ...errors({ 400: ['ORCH_UNKNOWN_RING'], 409: ['ORCH_DEVICE_HELD'] }),
          ...DEVICE_NOT_FOUND,
        },
      },
    }, async (request) => {
      const b = request.body;
      const { device, moved } = await services.fleet.override(request.params.id, b.ring, b.pinned ?? true, b.reason);
      return { id: device.id, ring: device.ring, pin: device.pin, moved, pendingMove: b.ring !== null && device.ring !== b.ring };
    });

    r.get('/api/v1/devices/:id/ring-history', {
      schema: { operationId: 'deviceRingHistory', summary: 'Every ring move of a device', tags: TAGS, params: DeviceParams, response: { 200: Moves, ...DEVICE_NOT_FOUND } },
    }, async (request) => {
      services.fleet.device(request.params.id);
      return { moves: (await services.agents.ringMoves(request.params.id)).map(moveJson) };
    });

    r.get('/api/v1/devices/:id/history', {
      schema: {
        operationId: 'deviceHistory',
        summary: "A device's metrics and score over time",
        description: 'One point per METRICS_HISTORY_INTERVAL (5 min) at most, kept METRICS_HISTORY_RETENTION (7 days); oldest first.',
        tags: TAGS,
        params: DeviceParams,
        querystring: HistoryQuery,
        response: { 200: Type.Object({ points: Type.Array(HistoryPoint) }, { additionalProperties: false }), ...DEVICE_NOT_FOUND },
      },
    }, async (request) => {
      const q = request.query;
      const since = q.since === undefined ? services.status.now() - 86_400_000 : sinceOf(q.since);
      const points = await services.fleet.history(request.params.id, since, limitOf(q.limit, 1000));
      return { points: points.map((p) => ({ ...p, at: iso(p.at) })) };
    });

    r.get('/api/v1/devices/:id/executions', {
      schema: {
        operationId: 'deviceExecutions',
        summary: "A device's executions in every deployment, newest deployment first",
        tags: TAGS,
        params: DeviceParams,
        querystring: Type.Object({ limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })) }, { additionalProperties: false }),
        response: {
          200: Type.Object({ executions: Type.Array(Type.Object({ deploymentId: Type.String(), ...ExecutionView.properties }, { additionalProperties: false })) }, { additionalProperties: false }),
          ...DEVICE_NOT_FOUND,
        },
      },
    }, async (request) => {
      services.fleet.device(request.params.id);
      const rows = await services.deployments.deviceExecutions(request.params.id, limitOf(request.query.limit, 50));
      return { executions: rows.map((r) => ({ deploymentId: r.deploymentId, ...executionJson(r.execution, null) })) };
    });

    r.get('/api/v1/rings', {
      schema: {
        operationId: 'getRings',
        summary: "Each ring's size, target and health, and the configuration",
        tags: RING_TAGS,
        response: {
          200: Type.Object(
            {
              policy: DocumentedEnum(RING_POLICIES),
              hysteresis: Type.Number(),
              dwellMs: Type.Integer({ minimum: 0 }),
              rings: Type.Array(ref(RingView)),
              unassigned: Type.Integer({ minimum: 0 }),
              held: Type.Integer({ minimum: 0 }),
              total: Type.Integer({ minimum: 0 }),
              config: ref(RingConfig),
            },
            { additionalProperties: false },
          ),
        },
      },
    }, () => services.fleet.rings());

    r.put('/api/v1/rings', {
      schema: {
        operationId: 'configureRings',
        summary: 'Replace the ring configuration',
        description: 'Nothing changes unless the whole configuration is valid; an invalid one is a 400 whose `errors` lists every problem with its place. Devices in rings that no longer exist become `unassigned`, and a full rebalance runs.',
        tags: RING_TAGS,
        body: Type.Unknown({ ...documentedAs(RingConfigBody) }),
        response: {
          200: Type.Object({ config: ref(RingConfig), moves: Type.Integer({ minimum: 0 }), rings: Type.Array(ref(RingView)) }, { additionalProperties: false }),
        },
      },
    }, async (request) => {
      const { config, moves } = await services.fleet.configure(request.body);
      return { config, moves, rings: services.fleet.rings().rings };
    });

    r.post('/api/v1/rings/rebalance', {
      schema: {
        operationId: 'rebalanceRings',
        summary: 'A full rebalance now',
        tags: RING_TAGS,
        response: { 200: Type.Object({ moves: Type.Integer({ minimum: 0 }), planMs: Type.Number(), totalMs: Type.Number() }, { additionalProperties: false }) },
      },
    }, async () => {
      const out = await services.fleet.rebalance('operator');
      return { moves: out.moves, planMs: Math.round(out.planMs * 10) / 10, totalMs: Math.round(out.totalMs * 10) / 10 };
    });

    r.get('/api/v1/rings/moves', {
      schema: {
        operationId: 'ringMoves',
        summary: 'Every ring move since an instant, paged',
        tags: RING_TAGS,
        querystring: MovesQuery,
        response: { 200: Type.Object({ ...Moves.properties, nextCursor: Nullable(Type.String()) }, { additionalProperties: false }) },
      },
    }, async (request) => {
      const q = request.query;
      const since = q.since === undefined ? 0 : sinceOf(q.since);
      const out = await services.fleet.moves(since, limitOf(q.limit, 100), q.cursor);
      return { moves: out.moves.map(moveJson), nextCursor: out.nextCursor };
    });
  };
}
