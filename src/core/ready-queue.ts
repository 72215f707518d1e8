import type { Ordered } from '../domain/task-order.js';
import { orderKey, runsBefore, selectorMatches, targetKey } from '../domain/task-order.js';
import type { Task, TaskType } from '../domain/types.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { Heap } from '../util/heap.js';
import type { Worker } from './task-types.js';

/** A pending task in line. */
export interface ReadyEntry extends Ordered {
  task: Task;
  /** Monotonic: when it may start. */
  readyAt: number;
}

interface Delayed {
  /** Monotonic. */
  at: number;
  task: Task;
  /** The task's runAfter when it was put here: an entry whose task has been given another since is stale. */
  runAfter: number | null;
}

/**
 * The pending tasks of the task engine, in line: each ready task in the lane of its type and target (any
 * agent, one agent, a ring, a selector), ordered by `orderKey` (priority, aged by waiting); tasks not ready
 * yet (a retry's backoff, `runAfter`) wait on a timer and join their lane when it fires. A worker looks only
 * at the lanes it may take from, so taking a task does not grow with the number of agents that have tasks
 * waiting. Times are monotonic.
 */
export class ReadyQueue {
  private readonly queued = new Map<string, ReadyEntry>();
  private readonly lanes = new Map<string, Heap<ReadyEntry>>();
  /** Lanes of tasks for a selector, by task type: the only lanes a worker must test one by one. */
  private readonly selectorLanes = new Map<TaskType, Set<string>>();
  private readonly delayed = new Heap<Delayed>((a, b) => a.at < b.at);
  private delayTimer: TimerHandle | null = null;
  private delayTimerAt = Infinity;
  private stopped = false;

  constructor(
    private readonly o: {
      clock: Clock;
      /** Waiting this long counts as one priority level. */
      agingMs: number;
      /** A task joined its lane: there may be work to hand out. */
      onReady: () => void;
    },
  ) {}

  /** Tasks in line (ready ones; delayed ones are not counted until they are ready). */
  get size(): number {
    return this.queued.size;
  }

  has(taskId: string): boolean {
    return this.queued.has(taskId);
  }

  /** Puts a pending task in line: at once if ready, otherwise when `readyAt` (monotonic) comes. */
  add(task: Task, readyAt: number): void {
    if (readyAt > this.o.clock.monotonic()) {
      this.delayed.push({ at: readyAt, task, runAfter: task.runAfter });
      this.armDelayTimer();
      return;
    }
    this.requeue({ task, readyAt, key: orderKey(task.priority, readyAt, this.o.agingMs), seq: task.seq });
  }

  /** Puts an entry (back) on its lane. */
  requeue(entry: ReadyEntry): void {
    const task = entry.task;
    const lane = `${task.type}|${targetKey(task.target)}`;
    let heap = this.lanes.get(lane);
    if (!heap) {
      heap = new Heap<ReadyEntry>(runsBefore);
      this.lanes.set(lane, heap);
      if (task.target !== null && 'selector' in task.target) {
        let set = this.selectorLanes.get(task.type);
        if (!set) {
          set = new Set();
          this.selectorLanes.set(task.type, set);
        }
        set.add(lane);
      }
    }
    this.queued.set(task.id, entry);
    heap.push(entry);
    this.o.onReady();
  }

  /** Takes a task out of line. Entries are removed lazily: one no longer queued is skipped when it reaches the top. */
  remove(taskId: string): void {
    this.queued.delete(taskId);
  }

  /** Delayed tasks whose time has come join their lanes. */
  promote(mono: number): void {
    for (let top = this.delayed.peek(); top && top.at <= mono; top = this.delayed.peek()) {
      this.delayed.pop();
      if (top.task.status === 'pending' && !this.queued.has(top.task.id) && top.task.runAfter === top.runAfter) {
        this.add(top.task, top.at);
      }
    }
  }

  /**
   * Takes the best ready task this worker may run out of line, or undefined. A worker looks only at the lanes
   * it may take from: for each task type it runs, the untargeted lane, its own lane, its ring's lane, and the
   * selector lanes whose selector it matches.
   */
  takeFor(worker: Worker): ReadyEntry | undefined {
    let best: ReadyEntry | undefined;
    let bestHeap: Heap<ReadyEntry> | undefined;
    const consider = (lane: string): void => {
      const heap = this.lanes.get(lane);
      if (!heap) return;
      let top = heap.peek();
      while (top && this.queued.get(top.task.id) !== top) {
        heap.pop();
        top = heap.peek();
      }
      if (!top) {
        this.dropLane(lane);
        return;
      }
      if (!best || runsBefore(top, best)) {
        best = top;
        bestHeap = heap;
      }
    };
    for (const type of worker.capabilities) {
      consider(`${type}|any`);
      consider(`${type}|agent:${worker.id}`);
      consider(`${type}|ring:${worker.ring}`);
      const selectors = this.selectorLanes.get(type);
      if (selectors) for (const lane of selectors) if (this.selectorEligible(lane, worker)) consider(lane);
    }
    if (best && bestHeap) {
      bestHeap.pop();
      this.queued.delete(best.task.id);
    }
    return best;
  }

  /**
   * Hands ready tasks to workers with free slots, the worker that has waited longest first, each the best task
   * it may run. A task no free worker may run waits without holding up the others. `start` says what became
   * of a task handed to a worker: started, gone (it left the queue, expired), or unreachable (the agent
   * cannot be reached now: the task keeps its place in line for another worker).
   */
  handOut(workers: ReadonlyMap<string, Worker>, canWrite: () => boolean, start: (task: Task, worker: Worker) => 'started' | 'gone' | 'unreachable'): void {
    const free = this.candidates(workers)
      .filter((w) => w.online && w.running.size < w.concurrency && w.capabilities.size > 0)
      .sort((a, b) => a.lastAssignedAt - b.lastAssignedAt);
    for (const worker of free) {
      this.fill(worker, canWrite, start);
      if (this.queued.size === 0) break;
    }
  }

  /** Gives one worker the best ready tasks it may run, up to its free slots (see handOut). */
  fill(worker: Worker, canWrite: () => boolean, start: (task: Task, worker: Worker) => 'started' | 'gone' | 'unreachable'): void {
    if (!worker.online || !canWrite()) return;
    while (worker.running.size < worker.concurrency && this.queued.size > 0) {
      const entry = this.takeFor(worker);
      if (!entry) break;
      if (start(entry.task, worker) === 'unreachable') {
        // The agent cannot be reached now: the task keeps its place in line for another worker.
        this.requeue(entry);
        break;
      }
    }
  }

  /**
   * The workers that may have something to take: when every waiting task names its agent (deployments, most
   * operator tasks), only those agents; otherwise all of them.
   */
  private candidates(workers: ReadonlyMap<string, Worker>): Worker[] {
    const named = this.namedAgents();
    if (named === null) return [...workers.values()];
    const out: Worker[] = [];
    for (const id of named) {
      const worker = workers.get(id);
      if (worker) out.push(worker);
    }
    return out;
  }

  /**
   * The agents the waiting tasks name, when every waiting task names its agent (deployments, most operator
   * tasks); null when some task may go to any of several agents.
   */
  private namedAgents(): string[] | null {
    const named = new Set<string>();
    for (const lane of this.lanes.keys()) {
      const at = lane.indexOf('|agent:');
      if (at < 0) return null;
      named.add(lane.slice(at + '|agent:'.length));
    }
    return [...named];
  }

  stop(): void {
    this.stopped = true;
    this.delayTimer?.cancel();
    this.delayTimer = null;
  }

  /** An empty lane is forgotten (lanes are made again when a task needs one). */
  private dropLane(lane: string): void {
    this.lanes.delete(lane);
    const type = lane.slice(0, lane.indexOf('|')) as TaskType;
    const selectors = this.selectorLanes.get(type);
    if (selectors?.delete(lane) && selectors.size === 0) this.selectorLanes.delete(type);
  }

  /** Every task in a selector lane has the same selector: read it from any entry. */
  private selectorEligible(lane: string, worker: Worker): boolean {
    const t = this.lanes.get(lane)?.peek()?.task.target;
    return t !== undefined && t !== null && 'selector' in t && selectorMatches(t.selector, worker.asset);
  }

  private armDelayTimer(): void {
    const next = this.delayed.peek();
    if (!next || this.stopped || next.at >= this.delayTimerAt) return;
    this.delayTimer?.cancel();
    this.delayTimerAt = next.at;
    this.delayTimer = this.o.clock.setTimeout(() => {
      this.delayTimer = null;
      this.delayTimerAt = Infinity;
      this.promote(this.o.clock.monotonic());
      this.armDelayTimer();
    }, Math.max(0, next.at - this.o.clock.monotonic()));
  }
}
