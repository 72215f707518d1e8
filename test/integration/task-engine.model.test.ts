import fc from 'fast-check';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { OrchestratorEvents } from '../../src/domain/events.js';
import { TypedEventBus } from '../../src/util/event-bus.js';
import type { Worker } from '../../src/core/task-types.js';
import { TaskEngine } from '../../src/core/task-engine.js';
import { seededRng } from '../../src/domain/random.js';
import type { TaskStatus } from '../../src/domain/types.js';
import { TASK_TYPES } from '../../src/domain/types.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FakeClock, settle } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

afterAll(cleanupTempDirs);

/**
 * Model-based test: random sequences of submit / complete / fail / stale
 * result / cancel / retry / lease expiry / restart run against the real engine
 * on a real SQLite file and against a few lines of reference model; after
 * every step both must agree on every task's status and attempt count, and on
 * which tasks are running.
 */

const WORKERS = 3;
const MAX_ATTEMPTS = 3;
const LEASE_MS = 10_000;

interface ModelTask {
  id: string;
  seq: number;
  priority: number;
  status: TaskStatus;
  attempts: number;
  attemptsBase: number;
}

interface Model {
  tasks: ModelTask[];
}

interface Real {
  path: string;
  clock: FakeClock;
  store: SqliteStore;
  engine: TaskEngine;
  workers: Worker[];
}

function makeWorker(i: number): Worker {
  return {
    id: `w${i}`,
    capabilities: new Set(TASK_TYPES),
    ring: 'canary',
    asset: null,
    concurrency: 1,
    online: true,
    running: new Map(),
    lastAssignedAt: 0,
    assign: (task) => {
      const ran = everRan.get(task.id) ?? new Set<string>();
      ran.add(`w${i}`);
      everRan.set(task.id, ran);
      return 0;
    },
    cancel: () => undefined,
  };
}

/** Which workers the engine ever handed each task to (what it observably did, not a model of how it chooses). */
const everRan = new Map<string, Set<string>>();

async function open(path: string, clock: FakeClock): Promise<Real> {
  const store = new SqliteStore(path);
  const engine = new TaskEngine({
    store,
    clock,
    rng: seededRng(1),
    events: new TypedEventBus<OrchestratorEvents>(),
    log: silentLogger,
    settings: {
      taskTimeoutMs: 1e9,
      taskRetryLimit: MAX_ATTEMPTS - 1,
      leaseMs: LEASE_MS,
      agingMs: Infinity,
      defaultBackoff: { strategy: 'fixed', initialMs: 0, maxMs: 0, jitter: false },
    },
  });
  await engine.load();
  const workers = Array.from({ length: WORKERS }, (_, i) => makeWorker(i));
  workers.forEach((w) => engine.addWorker(w));
  await settle();
  return { path, clock, store, engine, workers };
}

/** The model's dispatch: free slots take the best pending tasks, priority first, then submission order. */
function dispatch(m: Model): void {
  let free = WORKERS - m.tasks.filter((t) => t.status === 'in_progress').length;
  const pending = m.tasks.filter((t) => t.status === 'pending').sort((a, b) => b.priority - a.priority || a.seq - b.seq);
  for (const t of pending) {
    if (free-- <= 0) break;
    t.status = 'in_progress';
    t.attempts++;
  }
}

/** An attempt ended without success: retry while attempts remain, else dead (or failed when not retryable). */
function endAttempt(t: ModelTask, retryable: boolean): void {
  if (!retryable) t.status = 'failed';
  else if (t.attempts - t.attemptsBase >= MAX_ATTEMPTS) t.status = 'dead';
  else t.status = 'pending';
}

async function agree(m: Model, r: Real): Promise<void> {
  await settle();
  for (const t of m.tasks) {
    const { task } = await r.engine.get(t.id);
    expect({ id: t.id, status: task.status, attempts: task.attempts }).toEqual({ id: t.id, status: t.status, attempts: t.attempts });
  }
  const running = r.workers.flatMap((w) => [...w.running.keys()]).sort();
  expect(running).toEqual(m.tasks.filter((t) => t.status === 'in_progress').map((t) => t.id).sort());
  const counts = r.engine.countsByStatus();
  for (const status of ['pending', 'in_progress', 'completed', 'failed', 'dead', 'cancelled'] as const) {
    expect(counts[status]).toBe(m.tasks.filter((t) => t.status === status).length);
  }
}

/** The task a worker holds, from the real system; the model checks it is one it expects to be running. */
function held(r: Real, w: number): { id: string; attempt: number } | undefined {
  const entry = [...(r.workers[w]?.running ?? new Map<string, { attempt: number }>())][0];
  return entry ? { id: entry[0], attempt: entry[1].attempt } : undefined;
}

type Cmd = fc.AsyncCommand<Model, Real>;

const submit = (priority: number): Cmd => ({
  check: () => true,
  async run(m, r) {
    const [out] = await r.engine.submit([{ type: 'process_data', priority }]);
    const task = out?.task;
    if (!task) throw new Error('no task');
    m.tasks.push({ id: task.id, seq: task.seq, priority, status: 'pending', attempts: 0, attemptsBase: 0 });
    dispatch(m);
    await agree(m, r);
  },
  toString: () => `submit(${priority})`,
});

const complete = (w: number): Cmd => ({
  check: () => true,
  async run(m, r) {
    const h = held(r, w);
    if (!h) return;
    await r.engine.reportResult(`w${w}`, h.id, h.attempt, { success: true, result: w });
    const t = m.tasks.find((x) => x.id === h.id) as ModelTask;
    expect(t.status).toBe('in_progress');
    t.status = 'completed';
    dispatch(m);
    await agree(m, r);
  },
  toString: () => `complete(w${w})`,
});

const fail = (w: number, retryable: boolean): Cmd => ({
  check: () => true,
  async run(m, r) {
    const h = held(r, w);
    if (!h) return;
    await r.engine.reportResult(`w${w}`, h.id, h.attempt, { success: false, error: 'boom', retryable });
    endAttempt(m.tasks.find((x) => x.id === h.id) as ModelTask, retryable);
    dispatch(m);
    await agree(m, r);
  },
  toString: () => `fail(w${w}, retryable=${retryable})`,
});

const stale = (w: number): Cmd => ({
  check: () => true,
  async run(m, r) {
    const h = held(r, w);
    if (!h) return;
    await expect(r.engine.reportResult(`w${w}`, h.id, h.attempt - 1, { success: true })).rejects.toMatchObject({ code: 'ORCH_STALE_ATTEMPT' });
    // Another worker: stale if an earlier attempt ran there, else the task is not found (agents learn nothing of others' work).
    const other = `w${(w + 1) % WORKERS}`;
    const code = everRan.get(h.id)?.has(other) === true ? 'ORCH_STALE_ATTEMPT' : 'ORCH_TASK_NOT_FOUND';
    await expect(r.engine.reportResult(other, h.id, h.attempt, { success: true })).rejects.toMatchObject({ code });
    await agree(m, r);
  },
  toString: () => `stale(w${w})`,
});

const cancel = (k: number): Cmd => ({
  check: (m) => m.tasks.length > 0,
  async run(m, r) {
    const t = m.tasks[k % m.tasks.length] as ModelTask;
    if (t.status === 'pending' || t.status === 'in_progress') {
      await r.engine.cancel(t.id);
      t.status = 'cancelled';
      dispatch(m);
    } else {
      await expect(r.engine.cancel(t.id)).rejects.toMatchObject({ code: 'ORCH_TASK_STATE' });
    }
    await agree(m, r);
  },
  toString: () => `cancel(#${k})`,
});

const retry = (k: number): Cmd => ({
  check: (m) => m.tasks.length > 0,
  async run(m, r) {
    const t = m.tasks[k % m.tasks.length] as ModelTask;
    if (t.status === 'failed' || t.status === 'dead') {
      await r.engine.retry(t.id);
      t.status = 'pending';
      t.attemptsBase = t.attempts;
      dispatch(m);
    } else {
      await expect(r.engine.retry(t.id)).rejects.toMatchObject({ code: 'ORCH_TASK_STATE' });
    }
    await agree(m, r);
  },
  toString: () => `retry(#${k})`,
});

const leaseExpiry: Cmd = {
  check: () => true,
  async run(m, r) {
    await r.clock.advance(LEASE_MS + 1);
    await r.engine.sweep();
    // Every running attempt lost its lease together; the requeued tasks are dispatched again in order.
    for (const t of m.tasks.filter((x) => x.status === 'in_progress')) endAttempt(t, true);
    dispatch(m);
    await agree(m, r);
  },
  toString: () => 'leaseExpiry',
};

const restart: Cmd = {
  check: () => true,
  async run(m, r) {
    r.engine.stop();
    await r.store.close();
    const next = await open(r.path, r.clock);
    Object.assign(r, next);
    // Attempts running in the old process are over, counted.
    for (const t of m.tasks.filter((x) => x.status === 'in_progress')) endAttempt(t, true);
    dispatch(m);
    await agree(m, r);
  },
  toString: () => 'restart',
};

describe('task engine against a reference model', () => {
  it('agrees on every step of random command sequences', async () => {
    // Submits and completions are listed more than once so that queues build up and drain.
    const submitArb = fc.integer({ min: 0, max: 3 }).map(submit);
    const completeArb = fc.integer({ min: 0, max: WORKERS - 1 }).map(complete);
    const commands = [
      submitArb,
      submitArb,
      submitArb,
      completeArb,
      completeArb,
      fc.tuple(fc.integer({ min: 0, max: WORKERS - 1 }), fc.boolean()).map(([w, r]) => fail(w, r)),
      fc.integer({ min: 0, max: WORKERS - 1 }).map(stale),
      fc.nat(50).map(cancel),
      fc.nat(50).map(retry),
      fc.constant(leaseExpiry),
      fc.constant(restart),
    ];
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 60 }), async (cmds) => {
        runs++;
        const real = await open(join(tempDir(), 'model.db'), new FakeClock());
        try {
          await fc.asyncModelRun(() => ({ model: { tasks: [] }, real }), cmds);
        } finally {
          real.engine.stop();
          await real.store.close();
        }
      }),
      { numRuns: 100, seed: 20261125 },
    );
    expect(runs).toBe(100);
  }, 120_000);
});
