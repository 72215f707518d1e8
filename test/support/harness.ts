import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { OrchestratorSettings } from '../../src/core/settings.js';
import { Orchestrator } from '../../src/core/orchestrator.js';
import type { SubmitInput } from '../../src/core/task-types.js';
import { seededRng } from '../../src/domain/random.js';
import type { Task, TaskType } from '../../src/domain/types.js';
import type { LinkFaults } from '../../src/protocol/local-link.js';
import { SimulatedFleet } from '../../src/sim/simulated-fleet.js';
import type { TaskHandler } from '../../src/sim/task-handlers.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { cleanupTempDirs, tempDir } from './tmp.js';

export const TEST_SETTINGS: OrchestratorSettings = {
  heartbeatIntervalMs: 5000,
  agentTimeoutMs: 20_000,
  taskTimeoutMs: 60_000,
  taskRetryLimit: 3,
  rebalanceIntervalMs: 30_000,
};

export interface HarnessOptions {
  dbPath?: string;
  clock?: FakeClock;
  seed?: number;
  settings?: Partial<OrchestratorSettings>;
  handlers?: Partial<Record<TaskType, TaskHandler>>;
  faults?: LinkFaults;
  /** Every agent offers these task types (default: the seed's random 1–3). */
  capabilities?: TaskType[];
  /** Heartbeat jitter of the simulated agents, as a share of the interval either way. */
  heartbeatJitter?: number;
}

export interface Harness {
  orchestrator: Orchestrator;
  fleet: SimulatedFleet;
  store: SqliteStore;
  clock: FakeClock;
  dbPath: string;
  /** Moves the fake clock and lets every message and store call settle. */
  advance(ms: number): Promise<void>;
  stop(): Promise<void>;
}

/** A started orchestrator on a real SQLite file, with simulated agents and a fake clock. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const clock = options.clock ?? new FakeClock();
  const dbPath = options.dbPath ?? join(tempDir(), 'orchestrator.db');
  const store = new SqliteStore(dbPath);
  const rng = seededRng(options.seed ?? 42);
  const settings = { ...TEST_SETTINGS, ...options.settings };
  const fleet = new SimulatedFleet({
    clock,
    rng,
    heartbeatIntervalMs: settings.heartbeatIntervalMs,
    ...(options.handlers ? { handlers: options.handlers } : {}),
    ...(options.faults ? { faults: options.faults } : {}),
    ...(options.capabilities ? { capabilities: options.capabilities } : {}),
    ...(options.heartbeatJitter !== undefined ? { heartbeatJitter: options.heartbeatJitter } : {}),
  });
  const orchestrator = new Orchestrator({ store, clock, rng, launcher: fleet, settings, log: silentLogger });
  await orchestrator.start();
  let stopped = false;
  return {
    orchestrator,
    fleet,
    store,
    clock,
    dbPath,
    advance: (ms) => clock.advance(ms),
    async stop() {
      if (stopped) return;
      stopped = true;
      await orchestrator.stop();
      await store.close();
    },
  };
}

/** Advances the clock in steps until `check` holds, or fails after `maxMs` of fake time. */
export async function advanceUntil(h: Harness, check: () => boolean | Promise<boolean>, maxMs = 120_000, stepMs = 100): Promise<void> {
  for (let t = 0; t <= maxMs; t += stepMs) {
    if (await check()) return;
    await h.advance(stepMs);
  }
  throw new Error(`condition not met within ${maxMs} ms of fake time`);
}

/**
 * A harness factory for one test file: every harness it starts is stopped,
 * and the temporary folders removed, after each test. `defaults` apply to
 * every harness of the file.
 */
export function harnessPerTest(defaults: HarnessOptions = {}): (options?: HarnessOptions) => Promise<Harness> {
  const started: Harness[] = [];
  afterEach(async () => {
    for (const h of started.splice(0)) await h.stop();
    cleanupTempDirs();
  });
  return async (options = {}) => {
    const h = await startHarness({ ...defaults, ...options });
    started.push(h);
    return h;
  };
}

/** Submits one task as the API does (the orchestrator running, the store committing); resolves once it is committed. */
export async function submitTask(h: Harness, input: SubmitInput): Promise<Task> {
  const [out] = await h.orchestrator.services.tasks.submit([input]);
  return (out as { task: Task }).task;
}

export async function taskOf(h: Harness, id: string): Promise<Task> {
  return (await h.orchestrator.tasks.get(id)).task;
}

/** Advances fake time until the task reaches `status`, then returns it. */
export async function waitForStatus(h: Harness, id: string, status: Task['status'], maxMs = 120_000): Promise<Task> {
  await advanceUntil(h, async () => (await taskOf(h, id)).status === status, maxMs);
  return taskOf(h, id);
}
