import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { errors } from './openapi.js';
import { BatchTask, Task } from './response-schemas.js';
import { Nullable, ref, StringEnum } from './schema-helpers.js';
import { Id as SafeId, taskTypeField } from './schemas.js';
import type { Static } from 'typebox';
import type { TaskService } from '../core/services.js';
import type { SubmitInput } from '../core/task-types.js';
import { LIST_LIMIT_MAX } from '../core/task-types.js';
import { OrchestratorError } from '../domain/errors.js';
import type { TaskTarget } from '../domain/types.js';
import { TASK_STATUSES } from '../domain/types.js';
import { taskV1Json } from './views.js';

const Instant = Type.Union([Type.String({ format: 'date-time' }), Type.Integer({ minimum: 0, maximum: 8_640_000_000_000_000 })], {
  description: 'ISO 8601 date-time, or milliseconds since the epoch',
});

const Selector = Type.Object(
  {
    site: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    department: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    manufacturer: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    osName: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
  },
  { additionalProperties: false, minProperties: 1 },
);

/** Exactly one of `agentId`, `ring` or `selector` (one object rather than a union, for clear errors). */
const Target = Type.Object(
  {
    agentId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    ring: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_-]{0,31}$' })),
    selector: Type.Optional(Selector),
  },
  { additionalProperties: false, minProperties: 1, maxProperties: 1 },
);

export const CreateTask = Type.Object(
  {
    type: taskTypeField('the task type'),
    params: Type.Optional(Type.Object({}, { additionalProperties: true })),
    priority: Type.Optional(Type.Integer({ minimum: -1_000_000, maximum: 1_000_000 })),
    target: Type.Optional(Target),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    backoff: Type.Optional(
      Type.Object(
        {
          strategy: Type.Optional(StringEnum(['exponential', 'fixed'])),
          initialMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000 })),
          maxMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000 })),
          jitter: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 86_400_000 })),
    idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    runAfter: Type.Optional(Instant),
    deadline: Type.Optional(Instant),
  },
  { additionalProperties: false },
);
type CreateTaskBody = Static<typeof CreateTask>;

export const BATCH_MAX = 1000;
const Batch = Type.Object({ tasks: Type.Array(CreateTask, { minItems: 1, maxItems: BATCH_MAX }) }, { additionalProperties: false });

const TaskId = Type.Object({ id: SafeId });

const ListQuery = Type.Object(
  {
    status: Type.Optional(StringEnum(TASK_STATUSES)),
    type: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    agentId: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,16}$' })),
  },
  { additionalProperties: false },
);

function instant(value: string | number | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = typeof value === 'number' ? value : Date.parse(value);
  if (!Number.isFinite(ms)) throw new OrchestratorError('ORCH_VALIDATION', `${field} is not a valid date-time`);
  return ms;
}

export function toSubmitInput(body: CreateTaskBody): SubmitInput {
  const runAfter = instant(body.runAfter, 'runAfter');
  const deadline = instant(body.deadline, 'deadline');
  return {
    type: body.type,
    ...(body.params !== undefined ? { parameters: body.params as Record<string, unknown> } : {}),
    ...(body.priority !== undefined ? { priority: body.priority } : {}),
    ...(body.target !== undefined ? { target: body.target as TaskTarget } : {}),
    ...(body.maxAttempts !== undefined ? { maxAttempts: body.maxAttempts } : {}),
    ...(body.backoff !== undefined ? { backoff: body.backoff } : {}),
    ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
    ...(body.idempotencyKey !== undefined ? { idempotencyKey: body.idempotencyKey } : {}),
    ...(runAfter !== undefined ? { runAfter } : {}),
    ...(deadline !== undefined ? { deadline } : {}),
  };
}

const TAGS = ['tasks'];
const REFUSED = errors({ 400: ['ORCH_UNKNOWN_TASK_TYPE', 'ORCH_UNKNOWN_RING'], 404: ['ORCH_AGENT_NOT_FOUND'] });
const NOT_FOUND = errors({ 404: ['ORCH_TASK_NOT_FOUND'] });

/** A submitted task as answered: with a notice when no agent could run it now (it waits, and says so). */
function withNotice(tasks: TaskService, task: Parameters<typeof taskV1Json>[0]) {
  const notice = task.status === 'pending' ? tasks.unmatched(task) : null;
  return notice === null ? taskV1Json(task) : { ...taskV1Json(task), notice };
}

/** `/api/v1/tasks`: the task engine's own API. */
export function taskRoutes(tasks: TaskService): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/api/v1/tasks', {
      schema: {
        operationId: 'createTask',
        summary: 'Submit a task',
        description: 'Answered once the task is committed. A repeated `idempotencyKey` answers the task it first created (200).',
        tags: TAGS,
        body: CreateTask,
        response: { 201: ref(Task, 'the new task'), 200: ref(Task, 'the task an earlier request with this idempotencyKey created'), ...REFUSED },
      },
    }, async (request, reply) => {
      const [out] = await tasks.submit([toSubmitInput(request.body)]);
      const { task, created } = out as { task: Parameters<typeof taskV1Json>[0]; created: boolean };
      return reply.status(created ? 201 : 200).send(withNotice(tasks, task));
    });

    r.post('/api/v1/tasks/batch', {
      schema: {
        operationId: 'createTasks',
        summary: 'Submit up to 1,000 tasks in one commit',
        description: 'If any task is invalid, none is stored.',
        tags: TAGS,
        body: Batch,
        response: {
          201: Type.Object({ created: Type.Integer({ minimum: 0, description: 'how many tasks are new' }), tasks: Type.Array(ref(BatchTask)) }, { additionalProperties: false }),
          ...REFUSED,
        },
      },
    }, async (request, reply) => {
      const out = await tasks.submit(request.body.tasks.map(toSubmitInput));
      return reply.status(201).send({
        created: out.filter((o) => o.created).length,
        tasks: out.map((o) => ({ ...withNotice(tasks, o.task), created: o.created })),
      });
    });

    r.get('/api/v1/tasks', {
      schema: {
        operationId: 'listTasks',
        summary: 'Page through tasks, newest first',
        tags: TAGS,
        querystring: ListQuery,
        response: {
          200: Type.Object({ tasks: Type.Array(ref(Task)), nextCursor: Nullable(Type.String({ description: 'pass as `cursor` for the next page; null on the last page' })) }, { additionalProperties: false }),
        },
      },
    }, async (request) => {
      const q = request.query;
      const limit = q.limit === undefined ? 100 : Number(q.limit);
      if (limit < 1 || limit > LIST_LIMIT_MAX) throw new OrchestratorError('ORCH_VALIDATION', `limit must be from 1 to ${LIST_LIMIT_MAX}`);
      const page = await tasks.list(
        { ...(q.status !== undefined ? { status: q.status } : {}), ...(q.type !== undefined ? { type: q.type } : {}), ...(q.agentId !== undefined ? { agentId: q.agentId } : {}) },
        limit,
        q.cursor === undefined ? undefined : Number(q.cursor),
      );
      const last = page[page.length - 1];
      return { tasks: page.map((t) => taskV1Json(t)), nextCursor: page.length === limit && last ? String(last.seq) : null };
    });

    r.get('/api/v1/tasks/:id', {
      schema: { operationId: 'getTask', summary: 'A task with every attempt', tags: TAGS, params: TaskId, response: { 200: ref(Task), ...NOT_FOUND } },
    }, async (request) => {
      const { task, attempts } = await tasks.get(request.params.id);
      return taskV1Json(task, attempts);
    });

    r.post('/api/v1/tasks/:id/cancel', {
      schema: {
        operationId: 'cancelTask',
        summary: 'Cancel a pending or running task',
        tags: TAGS,
        params: TaskId,
        response: { 200: ref(Task), ...NOT_FOUND, ...errors({ 409: ['ORCH_TASK_STATE'] }) },
      },
    }, async (request) => taskV1Json(await tasks.cancel(request.params.id)));

    r.post('/api/v1/tasks/:id/retry', {
      schema: {
        operationId: 'retryTask',
        summary: 'A new run for a failed or dead task',
        tags: TAGS,
        params: TaskId,
        response: { 200: ref(Task), ...NOT_FOUND, ...errors({ 409: ['ORCH_TASK_STATE'] }) },
      },
    }, async (request) => taskV1Json(await tasks.retry(request.params.id)));
  };
}
