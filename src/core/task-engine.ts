import { OrchestratorError } from '../domain/errors.js';
import type { Rng } from '../domain/random.js';
import { afterFailedAttempt } from '../domain/retry.js';
import type { Task, TaskStatus } from '../domain/types.js';
import { TASK_STATUSES, TERMINAL_STATUSES } from '../domain/types.js';
import type { AttemptEndOutcome, Store, TaskAttempt, TaskFilter } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import { Heap } from '../util/heap.js';
import type { Logger } from '../util/logger.js';
import type { EventBus } from '../domain/events.js';
import { IdempotencyKeys } from './idempotency-keys.js';
import { ReadyQueue } from './ready-queue.js';
import { buildTask, unmatched } from './task-intake.js';
import { discountRuns, forgetDelivered, judgeHeldAttempts, overdueAttempts } from './task-leases.js';
import type { HeldAttempt, ResultReport, SubmitInput, TaskEngineOptions, TaskEngineSettings, Worker } from './task-types.js';
import { LIST_LIMIT_MAX } from './task-types.js';

/**
 * The task queue: the lifecycle of tasks and their attempts. Live tasks (pending and in progress) are held
 * in memory, the pending ones in line in the ReadyQueue (ready-queue.ts); every state change is written to
 * the store, and whoever is told of the change (an HTTP client, an agent) is told only after the write has
 * committed. Writes made together commit together (group commit in the store). Building a submitted task is
 * task-intake.ts's, judging what a heartbeat says of attempts task-leases.ts's.
 */
export class TaskEngine {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly rng: Rng;
  private readonly settings: TaskEngineSettings;
  private readonly events: EventBus;
  private readonly log: Logger;

  private readonly live = new Map<string, Task>();
  private readonly ready: ReadyQueue;
  /** Deadlines (monotonic) of pending tasks, soonest first. */
  private readonly deadlines = new Heap<{ at: number; task: Task }>((a, b) => a.at < b.at);
  private readonly keys = new IdempotencyKeys();
  /** Monotonic deadlines of live tasks that have one (a deadline is turned into a delay when the task is taken in). */
  private readonly deadlineAt = new Map<string, number>();
  /** Writes that end an attempt and have not committed yet, by task: a read waits for them (see `get`). */
  private readonly settling = new Map<string, Promise<void>>();
  private readonly canWrite: () => boolean;
  private readonly workers = new Map<string, Worker>();
  private readonly counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
  private seq = 0;
  private dispatchScheduled = false;
  private stopped = false;

  constructor(options: TaskEngineOptions) {
    ({ store: this.store, clock: this.clock, rng: this.rng, settings: this.settings, events: this.events, log: this.log } = options);
    this.canWrite = options.canWrite ?? (() => true);
    this.ready = new ReadyQueue({ clock: this.clock, agingMs: this.settings.agingMs, onReady: () => this.scheduleDispatch() });
  }

  /**
   * Loads the queue from the store. Attempts that were running when the last
   * process ended are over (their agents ran in that process): each is ended
   * as `interrupted`, counting the attempt.
   */
  async load(survives: (agentId: string) => boolean = () => false, repairs?: (() => Promise<void>)[]): Promise<void> {
    Object.assign(this.counts, await this.store.countTasksByStatus());
    this.seq = await this.store.maxTaskSeq();
    const now = this.clock.now();
    const mono = this.clock.monotonic();
    const interrupted: Task[] = [];
    for (const task of await this.store.loadLiveTasks()) {
      this.live.set(task.id, task);
      this.keys.add(task);
      // Stored times are wall-clock: each becomes a delay from now, once.
      if (task.deadline !== null) this.deadlineAt.set(task.id, mono + (task.deadline - now));
      const worker = task.assignedTo === null ? undefined : this.workers.get(task.assignedTo);
      if (task.status === 'pending') {
        this.makeReady(task, mono + ((task.runAfter ?? task.createdAt) - now));
      } else if (worker && survives(worker.id)) {
        // Its agent is a process of its own and ran on through the restart: the attempt goes on, under a fresh
        // lease, until the agent's heartbeats say whether it still runs it; its result is taken when it comes.
        task.leaseExpiresAt = now + this.settings.leaseMs;
        const startedAt = task.startedAt ?? now;
        worker.running.set(task.id, {
          attempt: task.attempts,
          startedAt,
          timeoutAt: mono + Math.max(0, startedAt + task.timeoutMs - now),
          leaseUntil: mono + this.settings.leaseMs,
          assignedAt: mono,
          ref: 0,
        });
      } else {
        interrupted.push(task);
      }
    }
    const end = (task: Task) => () => this.endAttempt(task, null, 'interrupted', 'the orchestrator restarted while the task ran', true, now);
    // Loading while the store cannot commit (after a failed write): the endings are written once it can.
    if (repairs) for (const task of interrupted) repairs.push(end(task));
    else await Promise.all(interrupted.map((task) => end(task)()));
  }

  stop(): void {
    this.stopped = true;
    this.ready.stop();
  }

  /**
   * The orchestrator could not hear its agents for `ms` (the process stalled, or the store could not commit
   * and results were refused): heartbeats and results of that time were not taken, so neither a lease nor a
   * timeout runs out for it.
   */
  discount(ms: number): void {
    discountRuns(this.workers.values(), ms);
  }

  // ---------------------------------------------------------------- workers

  addWorker(worker: Worker): void {
    this.workers.set(worker.id, worker);
    this.scheduleDispatch();
  }

  /** Call after a worker's `online`, `ring`, `asset` or capacity changed. */
  workerChanged(): void {
    this.scheduleDispatch();
  }

  /** The agent is gone or unreachable: every attempt it holds ends, and the tasks go back to the queue. */
  async workerLost(id: string, reason: string, outcome: AttemptEndOutcome = 'agent_lost'): Promise<void> {
    const worker = this.workers.get(id);
    if (!worker) return;
    const now = this.clock.now();
    const writes = [...worker.running.keys()].map((taskId) => {
      const task = this.live.get(taskId);
      return task ? this.endAttempt(task, worker, outcome, reason, true, now) : Promise.resolve();
    });
    await Promise.all(writes);
  }

  async removeWorker(id: string, reason: string): Promise<void> {
    await this.workerLost(id, reason);
    this.workers.delete(id);
  }

  /**
   * The agent's process started again (a network agent enrolled anew with its identity): the assignments the
   * previous process had acknowledged (command ids up to `acked`) are judged by the next heartbeat that has
   * an `ack`: the new process lists what it still holds (its undelivered results), and nothing else of them runs.
   */
  agentRestarted(workerId: string, acked: number): void {
    const worker = this.workers.get(workerId);
    if (worker) forgetDelivered(worker, acked);
  }

  /**
   * A heartbeat: the attempts it lists keep their lease, those it omits although received end `not_running`
   * and go back to the queue (see judgeHeldAttempts). Returns the writes of the attempts it ended (null when
   * none), and the new lease end when something was renewed (for the store, by the caller that writes it).
   */
  heartbeat(workerId: string, held: readonly HeldAttempt[], ack: number | undefined): { ended: Promise<void> | null; renewedUntil: number | null } {
    const worker = this.workers.get(workerId);
    if (!worker || worker.running.size === 0) return { ended: null, renewedUntil: null };
    const { renewed, over } = judgeHeldAttempts(worker.running, held, ack, this.clock.monotonic(), this.settings.leaseMs);
    const now = this.clock.now();
    const until = now + this.settings.leaseMs;
    for (const taskId of renewed) {
      const task = this.live.get(taskId);
      if (task) task.leaseExpiresAt = until;
    }
    const ending: Promise<void>[] = [];
    for (const [taskId, run] of over) {
      const task = this.live.get(taskId);
      if (!task) continue;
      worker.cancel(taskId, run.attempt);
      ending.push(this.endAttempt(task, worker, 'not_running', `attempt ${run.attempt} is not running on ${worker.id} (its heartbeat does not list it)`, true, now));
    }
    return { ended: ending.length === 0 ? null : Promise.all(ending).then(() => undefined), renewedUntil: renewed.length > 0 ? until : null };
  }

  // ---------------------------------------------------------------- submit

  /**
   * Validates and stores tasks, all in one commit. A known idempotency key
   * returns the task it first created (`created: false`).
   */
  async submit(inputs: readonly SubmitInput[]): Promise<{ task: Task; created: boolean }[]> {
    if (this.stopped) throw OrchestratorError.of('ORCH_SHUTTING_DOWN');
    const now = this.clock.now();
    // First every input is checked and built, so that one bad task leaves the whole batch unstored.
    const out: { task: Task; created: boolean }[] = [];
    const fresh: Task[] = [];
    const batchKeys = new Map<string, Task>();
    const unlocks: (() => void)[] = [];
    let committed: Promise<void>;
    try {
      for (const input of inputs) {
        const key = input.idempotencyKey;
        let existing: Task | null = key === undefined ? null : (batchKeys.get(key) ?? null);
        if (key !== undefined && existing === null) {
          // Two submits of one key must not both find nothing and both create: one decides at a time.
          unlocks.push(await this.keys.lock(key));
          existing = await this.findByKey(key);
        }
        if (existing) {
          out.push({ task: existing, created: false });
          continue;
        }
        const task = buildTask(input, now, ++this.seq, { settings: this.settings, agentExists: (id) => this.workers.has(id) });
        if (key !== undefined) batchKeys.set(key, task);
        fresh.push(task);
        out.push({ task, created: true });
      }
      committed = this.accept(fresh);
    } finally {
      // The keys are in the index now (or nothing was created): the next submit of each finds its task.
      for (const unlock of unlocks) unlock();
    }
    // The answer is each task as submitted, whatever happens to it while the commit runs.
    const answer = out.map(({ task, created }) => ({ task: { ...task }, created }));
    await committed;
    return answer;
  }

  /**
   * Submits tasks without idempotency keys at once: the tasks are built, queued
   * and ready when this returns, and `committed` resolves once they are stored.
   * For callers that must know the task ids before the commit (deployments).
   */
  enqueue(inputs: readonly SubmitInput[]): { tasks: Task[]; committed: Promise<void> } {
    if (this.stopped) throw OrchestratorError.of('ORCH_SHUTTING_DOWN');
    const now = this.clock.now();
    const fresh = inputs.map((input) => {
      if (input.idempotencyKey !== undefined) throw new OrchestratorError('ORCH_VALIDATION', 'enqueue takes no idempotency keys');
      return buildTask(input, now, ++this.seq, { settings: this.settings, agentExists: (id) => this.workers.has(id) });
    });
    return { tasks: fresh.map((t) => ({ ...t })), committed: this.accept(fresh) };
  }

  /** Takes built tasks into the queue; resolves when their insert is committed. */
  private accept(fresh: Task[]): Promise<void> {
    // The insert is queued first: the store reads (and serialises) the rows now, so a task it cannot take
    // never reaches memory, and no later write of these tasks can precede it.
    const committed = this.store.insertTasks(fresh);
    const now = this.clock.now();
    const mono = this.clock.monotonic();
    for (const task of fresh) {
      this.live.set(task.id, task);
      this.counts.pending++;
      if (task.deadline !== null) this.deadlineAt.set(task.id, mono + (task.deadline - now));
      this.keys.add(task, committed);
    }
    for (const task of fresh) {
      this.makeReady(task, task.runAfter === null ? mono : mono + (task.runAfter - now));
      this.events.emit('task.submitted', { task });
    }
    return committed;
  }

  /**
   * Why no known agent could ever take this task as things stand, or null when one could (see `unmatched`
   * in task-intake.ts).
   */
  unmatched(task: Pick<Task, 'type' | 'target'>): string | null {
    return unmatched(task, this.workers);
  }

  /** Whether the task is pending or running. */
  isLive(id: string): boolean {
    return this.live.has(id);
  }

  /**
   * The task an idempotency key created. A task whose insert has not committed yet is answered only once it
   * has: a second submit must not learn of a task the store may still refuse.
   */
  private async findByKey(key: string): Promise<Task | null> {
    const live = await this.keys.find(key, (id) => this.live.get(id));
    return live ? { ...live } : this.store.findTaskByIdempotencyKey(key);
  }

  // ---------------------------------------------------------------- reads

  /** The task as last committed or about to be; live tasks come from memory. */
  async get(id: string): Promise<{ task: Task; attempts: TaskAttempt[] }> {
    const settling = this.settling.get(id);
    if (settling) await settling.catch(() => undefined);
    const live = this.live.get(id);
    const task = live ? { ...live } : await this.store.getTask(id);
    if (!task) throw OrchestratorError.of('ORCH_TASK_NOT_FOUND');
    const attempts = await this.store.getAttempts(id);
    if (task.status === 'in_progress' && task.assignedTo !== null && task.startedAt !== null) {
      attempts.push({ taskId: id, taskSeq: task.seq, attempt: task.attempts, agentId: task.assignedTo, startedAt: task.startedAt, endedAt: null, outcome: null, error: null });
    }
    return { task, attempts };
  }

  list(filter: TaskFilter, limit: number, before?: number): Promise<Task[]> {
    return this.store.listTasks(filter, Math.min(limit, LIST_LIMIT_MAX), before);
  }

  countsByStatus(): Record<TaskStatus, number> {
    return { ...this.counts };
  }

  // ---------------------------------------------------------------- results

  /**
   * An agent reports how an attempt ended. Refused with 409 unless the task is
   * in progress on that agent at that attempt: a late result from an attempt
   * that timed out, lost its lease or was cancelled changes nothing.
   * Resolves once the outcome is committed.
   */
  async reportResult(workerId: string, taskId: string, attempt: number, report: ResultReport): Promise<void> {
    const task = this.live.get(taskId);
    if (!task) {
      const stored = await this.store.getTask(taskId);
      if (!stored || !(await this.ranOn(workerId, taskId))) throw OrchestratorError.of('ORCH_TASK_NOT_FOUND');
      this.events.emit('task.stale_result', { taskId, attempt, agentId: workerId });
      throw new OrchestratorError('ORCH_STALE_ATTEMPT', `task ${taskId} is ${stored.status}; attempt ${attempt} is no longer current`);
    }
    if (task.status !== 'in_progress' || task.assignedTo !== workerId || task.attempts !== attempt) {
      // Another agent's task, never run here: as if it did not exist (an agent learns nothing of others' work).
      if (task.assignedTo !== workerId && !(await this.ranOn(workerId, taskId))) throw OrchestratorError.of('ORCH_TASK_NOT_FOUND');
      this.events.emit('task.stale_result', { taskId, attempt, agentId: workerId });
      throw new OrchestratorError(
        'ORCH_STALE_ATTEMPT',
        `attempt ${attempt} of task ${taskId} on ${workerId} is no longer current (the task is ${task.status === 'in_progress' && task.assignedTo !== workerId ? 'running elsewhere' : task.status})`,
      );
    }
    const worker = this.workers.get(workerId);
    const now = this.clock.now();
    if (report.success) {
      worker?.running.delete(taskId);
      this.setStatus(task, 'completed');
      task.result = report.result ?? null;
      task.error = null;
      task.completedAt = now;
      task.leaseExpiresAt = null;
      const write = this.persist(task, { taskId, taskSeq: task.seq, attempt, agentId: workerId, startedAt: task.startedAt ?? now, endedAt: now, outcome: 'succeeded', error: null });
      this.events.emit('task.completed', { task });
      // The freed slot takes its next task now, so that its start shares a commit with this completion.
      if (worker) this.ready.fill(worker, this.canWrite, this.starter(now, this.clock.monotonic()));
      await write;
      this.forgetIfEnded(task);
      return;
    }
    await this.endAttempt(task, worker ?? null, 'failed', report.error, report.retryable !== false, now);
  }

  /** Progress from the agent renews the attempt's lease. */
  /** Whether the agent ever ran an attempt of the task that has ended. */
  private async ranOn(workerId: string, taskId: string): Promise<boolean> {
    return (await this.store.getAttempts(taskId)).some((a) => a.agentId === workerId);
  }

  /** An agent's progress on an attempt renews its lease; false when the agent does not hold that attempt. */
  progress(workerId: string, taskId: string, attempt: number): boolean {
    const task = this.live.get(taskId);
    const run = this.workers.get(workerId)?.running.get(taskId);
    if (task && run && task.status === 'in_progress' && task.assignedTo === workerId && task.attempts === attempt) {
      task.leaseExpiresAt = this.clock.now() + this.settings.leaseMs;
      run.leaseUntil = this.clock.monotonic() + this.settings.leaseMs;
      return true;
    }
    return false;
  }

  /** True when the agent holds this attempt now (it should go on running it). */
  holds(workerId: string, taskId: string, attempt?: number): boolean {
    const run = this.workers.get(workerId)?.running.get(taskId);
    return run !== undefined && (attempt === undefined || run.attempt === attempt);
  }

  // ---------------------------------------------------------------- operator actions

  /**
   * Cancels a pending or running task; a running one's agent is told to stop. `reason` is recorded as the
   * task's error and the attempt's: who or what cancelled it.
   */
  async cancel(taskId: string, reason = 'cancelled by operator'): Promise<Task> {
    const task = this.live.get(taskId);
    if (!task || TERMINAL_STATUSES.has(task.status)) {
      const stored = task ?? (await this.store.getTask(taskId));
      if (!stored) throw OrchestratorError.of('ORCH_TASK_NOT_FOUND');
      throw new OrchestratorError('ORCH_TASK_STATE', `task ${taskId} is ${stored.status} and cannot be cancelled`);
    }
    const now = this.clock.now();
    let attempt: TaskAttempt | null = null;
    if (task.status === 'in_progress' && task.assignedTo !== null) {
      const worker = this.workers.get(task.assignedTo);
      worker?.running.delete(task.id);
      worker?.cancel(task.id, task.attempts);
      attempt = { taskId, taskSeq: task.seq, attempt: task.attempts, agentId: task.assignedTo, startedAt: task.startedAt ?? now, endedAt: now, outcome: 'cancelled', error: reason };
    }
    this.ready.remove(task.id);
    this.setStatus(task, 'cancelled');
    task.completedAt = now;
    task.leaseExpiresAt = null;
    task.error = reason;
    const write = this.persist(task, attempt);
    this.events.emit('task.cancelled', { task });
    this.scheduleDispatch();
    await write;
    this.forgetIfEnded(task);
    return { ...task };
  }

  /** Gives a `failed` or `dead` task a fresh run of attempts. */
  async retry(taskId: string): Promise<Task> {
    const task = this.live.get(taskId) ?? (await this.store.getTask(taskId));
    if (!task) throw OrchestratorError.of('ORCH_TASK_NOT_FOUND');
    if (task.status !== 'failed' && task.status !== 'dead') {
      throw new OrchestratorError('ORCH_TASK_STATE', `task ${taskId} is ${task.status}; only failed or dead tasks can be retried`);
    }
    const now = this.clock.now();
    this.live.set(task.id, task);
    this.keys.add(task);
    this.setStatus(task, 'pending');
    task.attemptsBase = task.attempts;
    task.assignedTo = null;
    task.completedAt = null;
    task.runAfter = null;
    task.leaseExpiresAt = null;
    const write = this.persist(task, null);
    const answer = { ...task };
    if (task.deadline !== null) this.deadlineAt.set(task.id, this.clock.monotonic() + (task.deadline - now));
    this.makeReady(task, this.clock.monotonic());
    this.events.emit('task.requeued', { task, reason: 'retried by operator' });
    await write;
    return answer;
  }

  // ---------------------------------------------------------------- time

  /** Expires overdue pending tasks and ends attempts past their timeout or lease. */
  async sweep(): Promise<void> {
    const now = this.clock.now();
    const mono = this.clock.monotonic();
    this.ready.promote(mono);
    const writes: Promise<void>[] = [];
    for (let top = this.deadlines.peek(); top && top.at < mono; top = this.deadlines.peek()) {
      this.deadlines.pop();
      if (top.task.status === 'pending' && this.deadlineAt.get(top.task.id) === top.at) writes.push(this.expire(top.task, now));
    }
    for (const over of overdueAttempts(this.workers.values(), (id) => this.live.get(id), mono, this.settings.leaseMs)) {
      over.worker.cancel(over.task.id, over.attempt);
      writes.push(this.endAttempt(over.task, over.worker, over.outcome, over.reason, true, now));
    }
    await Promise.all(writes);
    this.scheduleDispatch();
  }

  // ---------------------------------------------------------------- internals

  private setStatus(task: Task, status: TaskStatus): void {
    this.counts[task.status]--;
    this.counts[status]++;
    task.status = status;
  }

  private persist(task: Task, attempt: TaskAttempt | null): Promise<void> {
    const write = this.store.saveTask(task, attempt);
    if (attempt !== null) {
      // Until this commits, a read of the task waits for it: its status and its attempt's record show together.
      this.settling.set(task.id, write);
      const clear = (): void => {
        if (this.settling.get(task.id) === write) this.settling.delete(task.id);
      };
      write.then(clear, clear);
    }
    if (attempt?.outcome) {
      this.events.emit('task.attempt_ended', { taskId: attempt.taskId, attempt: attempt.attempt, agentId: attempt.agentId, outcome: attempt.outcome });
    }
    return write;
  }

  /** Ended tasks leave memory once their final state is committed; later reads go to the store. */
  private forgetIfEnded(task: Task): void {
    if (TERMINAL_STATUSES.has(task.status) && this.live.get(task.id) === task) {
      this.live.delete(task.id);
      this.deadlineAt.delete(task.id);
      this.keys.remove(task);
    }
  }

  /**
   * Ends an attempt that did not succeed: a retry after the backoff while
   * attempts remain and it is retryable, `failed` if not retryable, `dead`
   * when the attempts are used up.
   */
  private async endAttempt(task: Task, worker: Worker | null, outcome: AttemptEndOutcome, error: string, retryable: boolean, now: number): Promise<void> {
    const agentId = task.assignedTo ?? worker?.id ?? 'unknown';
    // The attempt is over on whichever worker held it.
    this.workers.get(agentId)?.running.delete(task.id);
    const attempt: TaskAttempt = { taskId: task.id, taskSeq: task.seq, attempt: task.attempts, agentId, startedAt: task.startedAt ?? now, endedAt: now, outcome, error };
    const decision = afterFailedAttempt(task, retryable, this.rng);
    task.error = error;
    task.leaseExpiresAt = null;
    if (decision.kind === 'retry') {
      this.setStatus(task, 'pending');
      task.assignedTo = null;
      task.runAfter = now + decision.delayMs;
      const write = this.persist(task, attempt);
      this.makeReady(task, this.clock.monotonic() + decision.delayMs);
      this.events.emit('task.requeued', { task, reason: error });
      this.scheduleDispatch();
      await write;
      return;
    }
    this.setStatus(task, decision.kind);
    task.completedAt = now;
    const write = this.persist(task, attempt);
    this.events.emit('task.failed', { task, outcome });
    this.scheduleDispatch();
    await write;
    this.forgetIfEnded(task);
  }

  private async expire(task: Task, now: number): Promise<void> {
    this.ready.remove(task.id);
    this.setStatus(task, 'expired');
    task.completedAt = now;
    task.error = `deadline ${new Date(task.deadline ?? now).toISOString()} passed before the task could start`;
    const write = this.persist(task, null);
    this.events.emit('task.expired', { task });
    await write;
    this.forgetIfEnded(task);
  }

  /** Puts a pending task in line: at once if ready, otherwise when `readyAt` (monotonic) comes. */
  private makeReady(task: Task, readyAt: number): void {
    const deadline = this.deadlineAt.get(task.id);
    if (deadline !== undefined) this.deadlines.push({ at: deadline, task });
    this.ready.add(task, readyAt);
  }

  scheduleDispatch(): void {
    if (this.dispatchScheduled || this.stopped) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      // While the store cannot commit nothing starts; the orchestrator schedules a dispatch when it can again.
      if (!this.stopped && this.canWrite()) this.dispatch();
    });
  }

  /** Hands ready tasks to workers with free slots (see ReadyQueue.handOut); an overdue task expires instead. */
  private dispatch(): void {
    if (this.ready.size === 0) return;
    const now = this.clock.now();
    const mono = this.clock.monotonic();
    this.ready.handOut(this.workers, this.canWrite, this.starter(now, mono));
  }

  /** Starts a task handed to a worker, or expires it when its deadline has passed. */
  private starter(now: number, mono: number): (task: Task, worker: Worker) => 'started' | 'gone' | 'unreachable' {
    return (task, worker) => {
      if ((this.deadlineAt.get(task.id) ?? Infinity) < mono) {
        this.expire(task, now).catch((err: unknown) => this.log.error({ err, taskId: task.id }, 'failed to expire task'));
        return 'gone';
      }
      return this.start(task, worker, now, mono) ? 'started' : 'unreachable';
    };
  }

  /** Starts an attempt on the worker; false (and nothing changed) when the agent cannot be reached. */
  private start(task: Task, worker: Worker, now: number, mono: number): boolean {
    const before = { startedAt: task.startedAt, runAfter: task.runAfter, leaseExpiresAt: task.leaseExpiresAt };
    this.setStatus(task, 'in_progress');
    task.attempts++;
    task.assignedTo = worker.id;
    task.startedAt = now;
    task.runAfter = null;
    task.leaseExpiresAt = now + this.settings.leaseMs;
    const ref = worker.assign(task);
    if (ref === null) {
      this.setStatus(task, 'pending');
      task.attempts--;
      task.assignedTo = null;
      Object.assign(task, before);
      return false;
    }
    worker.running.set(task.id, { attempt: task.attempts, startedAt: now, timeoutAt: mono + task.timeoutMs, leaseUntil: mono + this.settings.leaseMs, assignedAt: mono, ref });
    worker.lastAssignedAt = mono;
    this.events.emit('task.started', { task, agentId: worker.id });
    // The start is written behind the assignment, not before it: nobody is told "started", so nothing
    // acknowledged depends on it. Should the process die before the write commits, the task is pending
    // again after the restart and runs once more; a result from the lost attempt is then refused as stale.
    // (The attempt's own record is written when it ends; while it runs, the task row says who runs it.)
    this.store.recordStart(task).catch((err: unknown) => this.log.error({ err, taskId: task.id }, 'failed to record a task start'));
    return true;
  }
}
