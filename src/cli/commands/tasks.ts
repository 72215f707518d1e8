import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT, usage } from '../client/errors.js';
import { EventFollower } from '../client/events.js';
import type { Api } from '../client/http.js';
import { path } from '../client/http.js';
import type { Column, Output } from '../client/output.js';
import { ago, bar, count, duration, keyValues, LiveBlock, plural, table } from '../client/output.js';
import { action, choice, clientOf, clientOptions, durationOption, intOption } from '../client/options.js';
import type { PagingFlags } from '../client/paging.js';
import { pagingOptions, printListing, wanted } from '../client/paging.js';
import type { Task, TaskEventTask } from '../client/types.js';

const TASK_TYPES = ['process_data', 'health_check', 'deploy', 'analyze_risk', 'monitor'] as const;
const TASK_STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'dead', 'cancelled', 'expired'] as const;
const ENDED = new Set(['completed', 'failed', 'dead', 'cancelled', 'expired']);

interface SubmitFlags {
  params?: string;
  priority?: string;
  ring?: string;
  agent?: string;
  selector?: string[];
  maxAttempts?: string;
  timeout?: string;
  idempotencyKey?: string;
  runAfter?: string;
  deadline?: string;
  count?: string;
  watch?: boolean;
}

interface ListFlags extends PagingFlags {
  status?: string;
  type?: string;
  agent?: string;
}

/** `tasks submit|list|show|cancel|retry|watch`. */
export function registerTasks(program: Command): void {
  const tasks = program.command('tasks').description('the task queue: submit, list, show, cancel, retry and watch tasks');

  clientOptions(
    tasks
      .command('submit <type>')
      .description(`submit a task (${TASK_TYPES.join(', ')}); answered once it is committed`)
      .option('--params <json>', 'its parameters: a JSON object, or @FILE to read one, e.g. \'{"data": [3, 1, 4]}\'')
      .option('--priority <n>', 'higher runs first, -1000000 to 1000000 (default 0)')
      .option('--ring <ring>', 'run it on an agent of this ring')
      .option('--agent <id>', 'run it on this agent')
      .option('--selector <field=value>', 'run it on an agent whose asset matches (site, department, manufacturer, model, osName); repeat for more fields', (v: string, prev: string[] = []) => [...prev, v])
      .option('--max-attempts <n>', 'attempts before it is dead, 1 to 100 (default: the server\'s TASK_RETRY_LIMIT + 1)')
      .option('--timeout <duration>', 'how long one attempt may run, e.g. 30s or 5m (default: the server\'s TASK_TIMEOUT)')
      .option('--idempotency-key <key>', 'a repeat with the same key answers the task it first created')
      .option('--run-after <time>', 'not before this instant (ISO 8601)')
      .option('--deadline <time>', 'expires unless started by this instant (ISO 8601)')
      .option('--count <n>', 'submit this many copies in one commit (1 to 1000)')
      .option('--watch', 'then follow it (them) to the end, and exit with the outcome (0: completed)'),
  ).action(
    action(async (type: string, opts: SubmitFlags, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const body = submitBody(type, opts);
      const copies = intOption('--count', opts.count, 1, 1000) ?? 1;
      if (copies > 1 && opts.idempotencyKey !== undefined) throw usage('--count and --idempotency-key: one key names one task');
      let submitted: Task[];
      if (copies === 1) {
        const task = await api.post<Task>('/api/v1/tasks', body);
        submitted = [task];
        if (out.json) out.jsonLine(task);
      } else {
        const batch = await api.post<{ created: number; tasks: Task[] }>('/api/v1/tasks/batch', { tasks: Array.from({ length: copies }, () => body) });
        submitted = batch.tasks;
        if (out.json) out.jsonLine(batch);
      }
      if (!out.json) {
        if (submitted.length === 1) {
          const t = submitted[0] as Task;
          out.line(`${t.id}  ${t.type}  priority ${t.priority}  ${t.status}`);
        } else {
          out.lines(submitted.map((t) => `${t.id}  ${t.type}  priority ${t.priority}  ${t.status}`));
        }
        const notice = submitted.find((t) => t.notice !== undefined)?.notice;
        if (notice !== undefined) out.note(`notice: ${notice}`);
        if (opts.watch !== true) out.note(`follow: orchestrator tasks watch ${submitted.length === 1 ? (submitted[0] as Task).id : '<id>…'}`);
      }
      if (opts.watch === true) return watchTasks(api, out, submitted.map((t) => t.id), {});
    }),
  );

  clientOptions(
    pagingOptions(
      tasks
        .command('list')
        .description('tasks, newest first')
        .option('--status <status>', TASK_STATUSES.join(', '))
        .option('--type <type>', TASK_TYPES.join(', '))
        .option('--agent <id>', 'tasks whose latest attempt ran on this agent'),
      50,
      'tasks',
    ),
  ).action(
    action(async (opts: ListFlags, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const status = choice('--status', opts.status, TASK_STATUSES);
      const want = wanted(opts, 50);
      const fetchPage = async (cursor: string | undefined, limit: number) => {
        const page = await api.get<{ tasks: Task[]; nextCursor: string | null }>('/api/v1/tasks', { status, type: opts.type, agentId: opts.agent, limit, cursor });
        return { items: page.tasks, next: page.nextCursor };
      };
      await printListing(out, { fetchPage, want, pageMax: 500, cursor: opts.cursor, key: 'tasks', columns: taskColumns(Date.now()), none: 'no tasks match', what: 'tasks', again: 'orchestrator tasks list (same filters)' });
    }),
  );

  clientOptions(tasks.command('show <id>').description('a task: its state, every attempt, and its result or last error')).action(
    action(async (id: string, _opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const task = await api.get<Task>(path('/api/v1/tasks', id));
      if (out.json) out.jsonLine(task);
      else out.lines(renderTask(task));
    }),
  );

  for (const [verb, done, help] of [
    ['cancel', 'cancelled', 'cancel a pending or running task (its agent is told to stop)'],
    ['retry', 'retried', 'give a failed or dead task a fresh run of attempts'],
  ] as const) {
    clientOptions(tasks.command(`${verb} <id>`).description(help)).action(
      action(async (id: string, _opts: unknown, cmd: Command) => {
        const { api, out } = clientOf(cmd);
        const task = await api.post<Task>(path('/api/v1/tasks', id, verb));
        if (out.json) out.jsonLine(task);
        else out.line(`${done} ${task.id} (${task.type}): now ${task.status}`);
      }),
    );
  }

  clientOptions(
    tasks
      .command('watch [ids...]')
      .description('follow tasks as they run (the event stream) until each ends; exit 0 when every one completed, 1 otherwise. Without ids: every task event, until interrupted')
      .option('--timeout <duration>', 'stop waiting after this long (exit 1; without ids, exit 0)'),
  ).action(
    action(async (ids: string[], opts: { timeout?: string }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const timeoutMs = durationOption('--timeout', opts.timeout);
      return watchTasks(api, out, ids, timeoutMs === undefined ? {} : { timeoutMs });
    }),
  );
}

function submitBody(type: string, opts: SubmitFlags): Record<string, unknown> {
  if (!(TASK_TYPES as readonly string[]).includes(type)) throw usage(`task type must be one of ${TASK_TYPES.join(', ')} (got "${type}")`);
  const targets = [opts.ring, opts.agent, opts.selector].filter((t) => t !== undefined).length;
  if (targets > 1) throw usage('--ring, --agent and --selector: give at most one target');
  const body: Record<string, unknown> = { type };
  if (opts.params !== undefined) body.params = paramsOf(opts.params);
  const priority = intOption('--priority', opts.priority, -1_000_000, 1_000_000);
  if (priority !== undefined) body.priority = priority;
  if (opts.ring !== undefined) body.target = { ring: opts.ring };
  if (opts.agent !== undefined) body.target = { agentId: opts.agent };
  if (opts.selector !== undefined) {
    const selector: Record<string, string> = {};
    for (const pair of opts.selector) {
      const m = /^(site|department|manufacturer|model|osName)=(.+)$/.exec(pair);
      if (!m) throw usage(`--selector: FIELD=VALUE with FIELD one of site, department, manufacturer, model, osName (got "${pair}")`);
      selector[m[1] as string] = m[2] as string;
    }
    body.target = { selector };
  }
  const maxAttempts = intOption('--max-attempts', opts.maxAttempts, 1, 100);
  if (maxAttempts !== undefined) body.maxAttempts = maxAttempts;
  const timeoutMs = durationOption('--timeout', opts.timeout);
  if (timeoutMs !== undefined) body.timeoutMs = timeoutMs;
  if (opts.idempotencyKey !== undefined) body.idempotencyKey = opts.idempotencyKey;
  for (const [name, key, raw] of [['--run-after', 'runAfter', opts.runAfter], ['--deadline', 'deadline', opts.deadline]] as const) {
    if (raw === undefined) continue;
    const at = Date.parse(raw);
    if (!Number.isFinite(at)) throw usage(`${name}: must be an ISO 8601 date-time, e.g. 2026-12-01T02:00:00Z (got "${raw}")`);
    body[key] = new Date(at).toISOString();
  }
  return body;
}

function paramsOf(raw: string): Record<string, unknown> {
  let text = raw;
  if (raw.startsWith('@')) {
    try {
      text = readFileSync(raw.slice(1) === '-' ? 0 : raw.slice(1), 'utf8');
    } catch (err) {
      throw usage(`--params: cannot read ${raw.slice(1)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw usage(`--params: not JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw usage('--params: must be a JSON object, e.g. \'{"data": [1, 2, 3]}\'');
  return value as Record<string, unknown>;
}

function taskColumns(now: number): Column<Task>[] {
  return [
    { header: 'TASK', cell: (t) => t.id },
    { header: 'TYPE', cell: (t) => t.type },
    { header: 'STATUS', cell: (t) => t.status },
    { header: 'PRIORITY', cell: (t) => String(t.priority), right: true },
    { header: 'AGENT', cell: (t) => t.agentId ?? '-' },
    { header: 'ATTEMPTS', cell: (t) => `${t.attempts}/${t.maxAttempts}`, right: true },
    { header: 'CREATED', cell: (t) => ago(t.createdAt, now) },
    { header: 'TOOK', cell: (t) => took(t) },
    { header: 'ERROR', cell: (t) => short(t.error ?? '', 60) },
  ];
}

function took(t: Pick<Task, 'startedAt' | 'completedAt'>): string {
  if (t.startedAt === null || t.completedAt === null) return '-';
  return duration(Date.parse(t.completedAt) - Date.parse(t.startedAt));
}

function short(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function renderTask(t: Task): string[] {
  const now = Date.now();
  const target = t.target === null ? 'any capable agent' : t.target.agentId !== undefined ? `agent ${t.target.agentId}` : t.target.ring !== undefined ? `ring ${t.target.ring}` : `agents matching ${Object.entries(t.target.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(', ')}`;
  const lines = keyValues([
    ['Task', t.id],
    ['Type', t.type],
    ['Status', t.status],
    ['Priority', String(t.priority)],
    ['Target', target],
    ['Agent', t.agentId ?? '-'],
    ['Attempts', `${t.attempts} of ${t.maxAttempts} (${t.attemptsLeft} left), each up to ${duration(t.timeoutMs)}`],
    ['Created', `${t.createdAt} (${ago(t.createdAt, now)})`],
    t.runAfter !== null ? ['Run after', t.runAfter] : null,
    t.deadline !== null ? ['Deadline', t.deadline] : null,
    t.startedAt !== null ? ['Started', `${t.startedAt} (${ago(t.startedAt, now)})`] : null,
    t.completedAt !== null ? ['Ended', `${t.completedAt} (${ago(t.completedAt, now)}), took ${took(t)}`] : null,
    t.idempotencyKey !== null ? ['Idempotency key', t.idempotencyKey] : null,
    ['Parameters', JSON.stringify(t.params)],
    t.error !== null ? ['Error', t.error] : null,
  ]);
  const attempts = t.attemptHistory ?? [];
  if (attempts.length > 0) {
    lines.push(
      '',
      ...table(attempts, [
        { header: 'ATTEMPT', cell: (a) => String(a.attempt), right: true },
        { header: 'AGENT', cell: (a) => a.agentId },
        { header: 'STARTED', cell: (a) => ago(a.startedAt, now) },
        { header: 'TOOK', cell: (a) => (a.endedAt === null ? 'running' : duration(Date.parse(a.endedAt) - Date.parse(a.startedAt))) },
        { header: 'OUTCOME', cell: (a) => a.outcome ?? 'running' },
        { header: 'ERROR', cell: (a) => a.error ?? '' },
      ]),
    );
  }
  if (t.result !== null && t.result !== undefined) lines.push('', 'Result', JSON.stringify(t.result, null, 2));
  return lines;
}

const text = (v: unknown, fallback: string): string => (typeof v === 'string' ? v : fallback);

/** A task's state as read, in words (at the start of a watch, or after a gap in the stream). */
function stateWords(t: Task): string {
  switch (t.status) {
    case 'in_progress':
      return `running on ${t.agentId ?? '?'} (attempt ${t.attempts})`;
    case 'completed':
      return `completed on ${t.agentId ?? '?'}`;
    case 'pending':
      return t.runAfter !== null && Date.parse(t.runAfter) > Date.now() ? `pending, not before ${t.runAfter}` : 'pending';
    default:
      return t.error === null ? t.status : `${t.status}: ${t.error}`;
  }
}

/** A task event in words: `started on slave-1 (attempt 2)`. */
function eventWords(kind: string, data: Record<string, unknown>, task: TaskEventTask): string {
  switch (kind) {
    case 'task.submitted':
      return `submitted (priority ${task.priority})`;
    case 'task.started':
      return `started on ${text(data.agentId, task.agentId ?? '?')} (attempt ${task.attempts})`;
    case 'task.completed':
      return `completed on ${task.agentId ?? '?'}`;
    case 'task.requeued':
      return `back in the queue: ${text(data.reason, '')}`;
    case 'task.failed': {
      const outcome = text(data.outcome, '');
      return `${task.status}${outcome !== '' && outcome !== task.status ? ` (${outcome.replace(/_/g, ' ')})` : ''}: ${task.error ?? ''}`;
    }
    case 'task.cancelled':
      return `cancelled${task.error !== null ? `: ${task.error}` : ''}`;
    case 'task.expired':
      return 'expired: its deadline passed before it started';
    default:
      return kind;
  }
}

function clock(at: number): string {
  return new Date(at).toTimeString().slice(0, 8);
}

/**
 * Follows tasks on the event stream (`kinds=task`) until each has ended, printing each change as it happens
 * (and, for several, a bar of how many ended). Exit 0 when every one completed, 1 otherwise (or at the
 * timeout); 3 for an unknown id. Without ids: every task event until interrupted (or the timeout: exit 0).
 */
export async function watchTasks(api: Api, out: Output, ids: readonly string[], opts: { timeoutMs?: number }): Promise<number> {
  const wanted = new Set(ids);
  const states = new Map<string, string>();
  const live = new LiveBlock(out);
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => {
    finish = resolve;
  });

  const summary = (): void => {
    if (wanted.size < 2 || out.json) return;
    const ended = [...states.values()].filter((s) => ENDED.has(s));
    const by = (s: string): number => ended.filter((x) => x === s).length;
    const parts = ['completed', 'failed', 'dead', 'cancelled', 'expired'].filter((s) => by(s) > 0).map((s) => `${by(s)} ${s}`);
    live.update([{ key: 'bar', text: `${bar(ended.length / wanted.size, 20, out.tty)} ${ended.length}/${wanted.size} ended${parts.length > 0 ? `: ${parts.join(', ')}` : ''}` }]);
  };
  const checkDone = (): void => {
    if (wanted.size === 0) return;
    if ([...wanted].every((id) => ENDED.has(states.get(id) ?? ''))) finish([...wanted].every((id) => states.get(id) === 'completed') ? EXIT.ok : EXIT.failed);
  };
  const show = (id: string, status: string, at: number, words: string, type: string, event: Record<string, unknown>): void => {
    states.set(id, status);
    if (out.json) out.jsonLine(event);
    else live.log(`${clock(at)}  ${id}  ${type.padEnd(12)}  ${words}`);
    summary();
    checkDone();
  };
  /** Reads the tasks again (at the start, and after a gap in the stream). */
  const reload = async (): Promise<void> => {
    for (const id of wanted) {
      const t = await api.get<Task>(path('/api/v1/tasks', id));
      // An event may have told of a later state while this read was on its way.
      if (ENDED.has(states.get(id) ?? '') && !ENDED.has(t.status)) continue;
      if (states.get(id) !== t.status) show(id, t.status, Date.now(), stateWords(t), t.type, { kind: 'state', at: Date.now(), task: t });
    }
  };

  const follower = new EventFollower(api, {
    kinds: 'task',
    onEvent: (e) => {
      const task = e.data.task as TaskEventTask | undefined;
      if (task === undefined) return;
      if (wanted.size > 0 && !wanted.has(task.id)) return;
      const at = typeof e.data.at === 'number' ? e.data.at : Date.now();
      show(task.id, task.status, at, eventWords(e.kind, e.data, task), task.type, { kind: e.kind, ...e.data });
    },
    onGap: () => {
      reload().catch(() => undefined);
    },
  });
  await follower.start();
  try {
    await reload();
    if (wanted.size === 0 && !out.json) out.note('following every task event (Ctrl-C to stop)');
    const timers: NodeJS.Timeout[] = [];
    const stopped = new Promise<number>((resolve) => {
      process.once('SIGINT', () => resolve(wanted.size === 0 ? EXIT.ok : EXIT.failed));
      if (opts.timeoutMs !== undefined) {
        timers.push(
          setTimeout(() => {
            if (wanted.size > 0) out.note(`stopped waiting after ${duration(opts.timeoutMs ?? 0)}: ${[...wanted].filter((id) => !ENDED.has(states.get(id) ?? '')).length} of ${plural(wanted.size, 'task')} not ended`);
            resolve(wanted.size === 0 ? EXIT.ok : EXIT.failed);
          }, opts.timeoutMs),
        );
      }
    });
    const code = await Promise.race([finished, stopped, follower.failed]);
    for (const t of timers) clearTimeout(t);
    if (wanted.size === 1 && code === EXIT.ok && !out.json) {
      const t = await api.get<Task>(path('/api/v1/tasks', [...wanted][0] as string));
      out.line(`result: ${JSON.stringify(t.result)}`);
    }
    if (out.json && wanted.size > 0) out.jsonLine({ kind: 'end', tasks: Object.fromEntries(states), exitCode: code });
    else if (wanted.size > 1) out.line(`${count([...states.values()].filter((s) => s === 'completed').length)} of ${plural(wanted.size, 'task')} completed`);
    return code;
  } finally {
    follower.close();
  }
}
