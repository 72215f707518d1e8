/**
 * npm run bench:queue
 *
 * One workload, five systems, one machine, one run:
 *   - 20,000 tasks over 5 priority levels, submitted in batches of 1,000,
 *     then 5,000 single submits (50 submitters at a time);
 *   - 50 concurrent consumers with a trivial handler;
 *   - figures: end-to-end tasks/s (first submit to last completion),
 *     enqueue-to-start latency p50/p99, peak RSS of the process;
 *   - then a paced phase at half of that system's own peak rate, for the
 *     enqueue-to-start latency under moderate load.
 *
 * Peers: BullMQ on the local Redis (127.0.0.1:6379), and pg-boss 10.4.2 and
 * graphile-worker 0.17.3 on the local PostgreSQL (127.0.0.1:5432, database
 * `test`, each in a schema of its own, dropped after). Each system runs in a
 * child process of its own, so each RSS is its own. A peer whose server does
 * not answer is reported as skipped; nothing is started for it.
 *
 * Ours: the orchestrator's task engine on a SQLite file (WAL, synchronous=FULL)
 * with 50 simulated agents that receive and answer tasks through the same
 * message protocol an agent uses. Every submit and completion is committed
 * before it is acknowledged (group commit). `ours-postgres`: the same on the
 * local PostgreSQL (a schema of its own, synchronous_commit=on), as replicas
 * run it. BENCH_DATABASE_URL points the PostgreSQL systems elsewhere.
 *
 * Knobs for comparisons: BENCH_SYNC=NORMAL (SQLite synchronous mode, default
 * FULL), BENCH_WRITER=inline (commit on the event loop, default thread),
 * BENCH_GW_LOCAL_QUEUE / BENCH_GW_COMPLETE_DELAY / BENCH_GW_POOL (graphile-
 * worker's local queue size, -1 for none; completion batching delay in ms, -1
 * for none; pool size), BENCH_QUEUE_SYSTEMS=a,b (run some systems only).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BATCHED = 20_000;
const BATCH = 1000;
const SINGLES = 5000;
const SINGLE_CONCURRENCY = 50;
const CONSUMERS = 50;
const PRIORITIES = 5;
const PACED_SECONDS = Number(process.env.BENCH_PACED_SECONDS ?? 3);
const TOTAL = BATCHED + SINGLES;
const PGBOSS_BATCH = 100;

interface Figures {
  system: string;
  tasks: number;
  seconds: number;
  tasksPerSec: number;
  startLatencyMs: { p50: number; p99: number };
  paced: { ratePerSec: number; tasks: number; startLatencyMs: { p50: number; p99: number } };
  rssMiB: number;
  /** The machine's 1-minute load average as the system's run began (2 cores: above 2 is contention). */
  load1: number;
  peakPhasesSeconds: { batches: number; singles: number; drain: number };
  notes?: string;
}

/** What a queue under test must offer the harness. */
interface System {
  name: string;
  /** Prepares an empty queue and starts `CONSUMERS` consumers that call `onStart(t0)` when a handler begins. */
  setup(onStart: (t0: number) => void): Promise<void>;
  /** Submits tasks; each carries its submit time `t0` (performance.now()) and a priority 0..4 (higher first). */
  submitBatch(items: { t0: number; priority: number }[]): Promise<void>;
  submitOne(item: { t0: number; priority: number }): Promise<void>;
  /** Resolves when `n` tasks in all have completed. */
  completed(n: number): Promise<void>;
  teardown(): Promise<void>;
  afterPeak?(): void;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

// ------------------------------------------------------------------ systems

/** The local PostgreSQL, for pg-boss and for ours on PostgreSQL. */
const PG_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Ours on SQLite (a file, WAL, synchronous=FULL, the writer thread: as `npm start`) or on PostgreSQL (a schema of its own). */
async function ours(on: 'sqlite' | 'postgres'): Promise<System> {
  const { Orchestrator } = await import('../src/core/orchestrator.js');
  const { SimulatedFleet } = await import('../src/sim/simulated-fleet.js');
  const { SqliteStore } = await import('../src/store/sqlite/sqlite-store.js');
  const { PostgresStore } = await import('../src/store/postgres/postgres-store.js');
  const { systemClock } = await import('../src/util/clock.js');
  const { silentLogger } = await import('../src/util/logger.js');
  const { TASK_TYPES } = await import('../src/domain/types.js');
  const dir = mkdtempSync(join(tmpdir(), 'bench-queue-'));
  const schema = `bench_ours_${process.pid}`;
  const store =
    on === 'postgres'
      ? await PostgresStore.open(PG_URL, { schema })
      : new SqliteStore(join(dir, 'orchestrator.db'), { synchronous: (process.env.BENCH_SYNC as 'FULL' | 'NORMAL' | undefined) ?? 'FULL', writer: (process.env.BENCH_WRITER as 'inline' | 'thread' | undefined) ?? 'thread' });
  let done = 0;
  let waiter: { n: number; resolve: () => void } | null = null;
  let onStart: (t0: number) => void = () => undefined;
  const trivial = (params: Record<string, unknown>): Promise<unknown> => {
    onStart(params.t0 as number);
    return Promise.resolve(null);
  };
  const fleet = new SimulatedFleet({
    clock: systemClock,
    rng: Math.random,
    heartbeatIntervalMs: 5000,
    capabilities: [...TASK_TYPES],
    handlers: { process_data: trivial },
  });
  const orchestrator = new Orchestrator({
    store,
    clock: systemClock,
    rng: Math.random,
    launcher: fleet,
    log: silentLogger,
    settings: { heartbeatIntervalMs: 5000, agentTimeoutMs: 20_000, taskTimeoutMs: 60_000, taskRetryLimit: 3, rebalanceIntervalMs: 30_000 },
  });
  orchestrator.events.on('task.attempt_ended', ({ outcome }) => {
    if (outcome !== 'succeeded') return;
    done++;
    if (waiter && done >= waiter.n) {
      const w = waiter;
      waiter = null;
      // Writes commit in order: once a write queued after the last completion has committed, so has it.
      void store.setMeta('bench', String(done)).then(w.resolve);
    }
  });
  return {
    name: on === 'postgres' ? 'ours-postgres' : 'ours',
    async setup(cb) {
      onStart = cb;
      await orchestrator.start();
      for (let i = 0; i < CONSUMERS; i++) await orchestrator.agents.spawn();
      while ((await orchestrator.seed.cluster()).agents.some((a) => a.status === 'offline')) await new Promise((r) => setTimeout(r, 20));
    },
    async submitBatch(items) {
      await orchestrator.tasks.submit(items.map((it) => ({ type: 'process_data', parameters: { t0: it.t0 }, priority: it.priority })));
    },
    async submitOne(it) {
      await orchestrator.tasks.submit([{ type: 'process_data', parameters: { t0: it.t0 }, priority: it.priority }]);
    },
    completed(n) {
      return done >= n ? Promise.resolve() : new Promise((resolve) => (waiter = { n, resolve }));
    },
    afterPeak() {
      process.stderr.write(`  ours, peak phase: ${store.writer.stats.commits} commits for ${store.writer.stats.writes} writes\n`);
    },
    async teardown() {
      process.stderr.write(`  ours: ${store.writer.stats.commits} commits for ${store.writer.stats.writes} writes (largest ${store.writer.stats.maxBatch})\n`);
      await orchestrator.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      if (on === 'postgres') {
        const pg = (await import('pg')).default;
        const c = new pg.Client({ connectionString: PG_URL });
        await c.connect();
        await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await c.end();
      }
    },
  };
}

async function bullmq(): Promise<System> {
  const { Queue, Worker } = await import('bullmq');
  const connection = { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null };
  const name = `bench-${process.pid}`;
  const queue = new Queue(name, { connection });
  let done = 0;
  let waiter: { n: number; resolve: () => void } | null = null;
  let worker: InstanceType<typeof Worker> | null = null;
  // BullMQ: priority 1 is the highest; jobs without priority go before prioritized ones, so all get one.
  const opts = (p: number) => ({ priority: PRIORITIES - p, removeOnComplete: true, removeOnFail: true });
  return {
    name: 'bullmq',
    async setup(onStart) {
      await queue.waitUntilReady();
      await queue.obliterate({ force: true });
      worker = new Worker(
        name,
        (job) => {
          onStart((job.data as { t0: number }).t0);
          return Promise.resolve(null);
        },
        { connection, concurrency: CONSUMERS },
      );
      worker.on('completed', () => {
        done++;
        if (waiter && done >= waiter.n) {
          waiter.resolve();
          waiter = null;
        }
      });
      await worker.waitUntilReady();
    },
    async submitBatch(items) {
      await queue.addBulk(items.map((it) => ({ name: 't', data: { t0: it.t0 }, opts: opts(it.priority) })));
    },
    async submitOne(it) {
      await queue.add('t', { t0: it.t0 }, opts(it.priority));
    },
    completed(n) {
      return done >= n ? Promise.resolve() : new Promise((resolve) => (waiter = { n, resolve }));
    },
    async teardown() {
      await worker?.close();
      await queue.obliterate({ force: true });
      await queue.close();
    },
  };
}

async function pgboss(): Promise<System> {
  const { default: PgBoss } = await import('pg-boss');
  const schema = `bench_${process.pid}`;
  const boss = new PgBoss({ connectionString: PG_URL, schema, max: 60 });
  boss.on('error', () => undefined);
  const name = 'bench';
  let done = 0;
  let waiter: { n: number; resolve: () => void } | null = null;
  return {
    name: 'pg-boss',
    async setup(onStart) {
      await boss.start();
      await boss.createQueue(name);
      // 50 consumers, each a work() call. pg-boss waits its polling interval (at least 0.5 s) between
      // fetches, so each consumer fetches up to PGBOSS_BATCH jobs at a time and handles them in turn, as its
      // documentation advises for throughput; with a batch of 1 it manages 2 jobs/s per consumer.
      for (let i = 0; i < CONSUMERS; i++) {
        await boss.work<{ t0: number }>(name, { batchSize: PGBOSS_BATCH, pollingIntervalSeconds: 0.5 }, (jobs) => {
          for (const job of jobs) onStart(job.data.t0);
          done += jobs.length;
          if (waiter && done >= waiter.n) {
            waiter.resolve();
            waiter = null;
          }
          return Promise.resolve(null);
        });
      }
    },
    async submitBatch(items) {
      await boss.insert(items.map((it) => ({ name, data: { t0: it.t0 }, priority: it.priority })));
    },
    async submitOne(it) {
      await boss.send(name, { t0: it.t0 }, { priority: it.priority });
    },
    completed(n) {
      return done >= n ? Promise.resolve() : new Promise((resolve) => (waiter = { n, resolve }));
    },
    async teardown() {
      await boss.offWork(name);
      // pg-boss records completions without waiting for them; let the last ones land before the schema goes.
      await new Promise((r) => setTimeout(r, 1500));
      await boss.getDb().executeSql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`, []);
      await boss.stop({ graceful: false, wait: true });
    },
  };
}

/**
 * graphile-worker 0.17.3 on the local PostgreSQL, in a schema of its own (created by its migrations, dropped
 * after), through its library API: `run` with a task list and `makeWorkerUtils` for adding jobs. Configured
 * as its performance page does for throughput (see docs/benchmarks.md): 50 concurrent jobs (our 50 agents),
 * a local queue that locks and fetches jobs in batches, completions batched, jobs added in bulk (`addJobs`).
 * The workers have a pool of GW_POOL connections (its documentation's advice: concurrency + 2; they open about
 * 6), the producers one of GW_ADD_POOL. Its logger drops everything below warnings (ours is silent too;
 * by default it writes a line per completed job). Durable as ours: each add is a committed transaction with
 * synchronous_commit on (the server's default), and a run finishes when the last completion has committed
 * (its jobs table is empty), not when the last handler returned.
 */
const GW_CONCURRENCY = CONSUMERS;
const GW_LOCAL_QUEUE = Number(process.env.BENCH_GW_LOCAL_QUEUE ?? 500);
const GW_COMPLETE_DELAY = Number(process.env.BENCH_GW_COMPLETE_DELAY ?? 0);
const GW_POOL = Number(process.env.BENCH_GW_POOL ?? CONSUMERS + 2);
const GW_ADD_POOL = Number(process.env.BENCH_GW_ADD_POOL ?? 20);

async function graphileWorker(): Promise<System> {
  const { Logger, makeWorkerUtils, run } = await import('graphile-worker');
  type Level = Parameters<ReturnType<ConstructorParameters<typeof Logger>[0]>>[0];
  const loud = new Set<Level>(['error', 'warning'] as Level[]);
  const pg = (await import('pg')).default;
  const schema = `bench_gw_${process.pid}`;
  const newPool = (max: number): InstanceType<typeof pg.Pool> => {
    const pool = new pg.Pool({ connectionString: PG_URL, max });
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    return pool;
  };
  // The workers' pool, and the producers' (as they would be in another process: adds do not queue behind fetches).
  const pgPool = newPool(GW_POOL);
  const addPool = newPool(GW_ADD_POOL);
  const logger = new Logger(() => (level, message) => {
    if (loud.has(level)) process.stderr.write(`  graphile-worker ${level}: ${message}\n`);
  });
  const preset = {
    worker: {
      schema,
      concurrentJobs: GW_CONCURRENCY,
      maxPoolSize: GW_POOL,
      ...(GW_LOCAL_QUEUE > 1 ? { localQueue: { size: GW_LOCAL_QUEUE } } : {}),
      completeJobBatchDelay: GW_COMPLETE_DELAY,
      failJobBatchDelay: GW_COMPLETE_DELAY,
    },
  };
  const utils = await makeWorkerUtils({ pgPool: addPool, logger, preset });
  let runner: Awaited<ReturnType<typeof run>> | null = null;
  let handled = 0;
  let waiter: { n: number; resolve: () => void } | null = null;
  /** Resolves once every completion so far has committed: graphile-worker deletes a job when it completes. */
  const completionsCommitted = async (): Promise<void> => {
    for (;;) {
      const r = await pgPool.query(`SELECT 1 FROM ${pg.escapeIdentifier(schema)}._private_jobs LIMIT 1`);
      if (r.rowCount === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };
  // graphile-worker runs numerically smaller priorities first; ours and pg-boss run higher ones first.
  const priority = (p: number): number => PRIORITIES - 1 - p;
  return {
    name: 'graphile-worker',
    async setup(onStart) {
      await utils.migrate();
      runner = await run({
        pgPool,
        logger,
        noHandleSignals: true,
        preset,
        taskList: {
          t: (payload) => {
            onStart((payload as { t0: number }).t0);
            handled++;
            if (waiter && handled >= waiter.n) {
              const w = waiter;
              waiter = null;
              void completionsCommitted().then(w.resolve);
            }
          },
        },
      });
    },
    async submitBatch(items) {
      await utils.addJobs(items.map((it) => ({ identifier: 't', payload: { t0: it.t0 }, priority: priority(it.priority) })));
    },
    async submitOne(it) {
      await utils.addJob('t', { t0: it.t0 }, { priority: priority(it.priority) });
    },
    completed(n) {
      return handled >= n ? completionsCommitted() : new Promise((resolve) => (waiter = { n, resolve }));
    },
    async teardown() {
      await runner?.stop();
      await utils.release();
      await pgPool.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
      await pgPool.end();
      await addPool.end();
    },
  };
}

// ------------------------------------------------------------------ harness

async function reachable(port: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function runSystem(kind: string): Promise<Figures | { system: string; skipped: string }> {
  if (kind === 'bullmq' && !(await reachable(6379))) return { system: 'bullmq', skipped: 'no Redis on 127.0.0.1:6379' };
  if ((kind === 'pg-boss' || kind === 'ours-postgres' || kind === 'graphile-worker') && !(await reachable(5432))) return { system: kind, skipped: 'no PostgreSQL on 127.0.0.1:5432' };
  const systems: Record<string, () => Promise<System>> = {
    ours: () => ours('sqlite'),
    'ours-postgres': () => ours('postgres'),
    bullmq,
    'pg-boss': pgboss,
    'graphile-worker': graphileWorker,
  };
  const make = systems[kind];
  if (!make) throw new Error(`unknown system ${kind}: one of ${Object.keys(systems).join(', ')}`);
  const load1 = round(loadavg()[0] ?? 0);
  const sys = await make();
  let latencies: number[] = [];
  let rss = process.memoryUsage().rss;
  const rssTimer = setInterval(() => (rss = Math.max(rss, process.memoryUsage().rss)), 50);
  await sys.setup((t0) => latencies.push(performance.now() - t0));

  // Phase 1: peak. 20 batches of 1,000, then 5,000 singles, 50 at a time.
  const start = performance.now();
  let prio = 0;
  for (let b = 0; b < BATCHED / BATCH; b++) {
    const t0 = performance.now();
    await sys.submitBatch(Array.from({ length: BATCH }, () => ({ t0, priority: prio++ % PRIORITIES })));
  }
  const batchedSubmitted = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: SINGLE_CONCURRENCY }, async () => {
      while (next < SINGLES) {
        next++;
        await sys.submitOne({ t0: performance.now(), priority: prio++ % PRIORITIES });
      }
    }),
  );
  const singlesSubmitted = performance.now();
  await sys.completed(TOTAL);
  const end = performance.now();
  const seconds = (end - start) / 1000;
  sys.afterPeak?.();
  const tasksPerSec = TOTAL / seconds;
  const peak = latencies.sort((a, b) => a - b);

  // Phase 2: paced at half of this system's own peak rate, single submits.
  latencies = [];
  const rate = tasksPerSec / 2;
  const pacedTotal = Math.round(rate * PACED_SECONDS);
  const pacedStart = performance.now();
  let sent = 0;
  // Outstanding submits are counted, not kept: holding tens of thousands of settled promises would
  // load the garbage collector of the process under test with the harness's own objects.
  let outstanding = 0;
  let failure: unknown = null;
  const settled = (): void => void outstanding--;
  const failed = (err: unknown): void => {
    failure ??= err;
    outstanding--;
  };
  while (sent < pacedTotal) {
    const due = Math.min(pacedTotal, Math.floor(((performance.now() - pacedStart) / 1000) * rate));
    for (; sent < due; sent++) {
      outstanding++;
      sys.submitOne({ t0: performance.now(), priority: sent % PRIORITIES }).then(settled, failed);
    }
    await new Promise((r) => setImmediate(r));
  }
  while (outstanding > 0) await new Promise((r) => setTimeout(r, 1));
  if (failure !== null) throw failure instanceof Error ? failure : new Error(`a paced submit failed: ${JSON.stringify(failure)}`);
  await sys.completed(TOTAL + pacedTotal);
  const paced = latencies.sort((a, b) => a - b);
  clearInterval(rssTimer);
  await sys.teardown();
  return {
    system: sys.name,
    tasks: TOTAL,
    seconds: round(seconds, 3),
    tasksPerSec: Math.round(tasksPerSec),
    startLatencyMs: { p50: round(percentile(peak, 50)), p99: round(percentile(peak, 99)) },
    paced: { ratePerSec: Math.round(rate), tasks: pacedTotal, startLatencyMs: { p50: round(percentile(paced, 50)), p99: round(percentile(paced, 99)) } },
    rssMiB: Math.round(rss / 1024 / 1024),
    load1,
    // Where the peak phase's time went: submitting the batches, then the singles, then the rest of the work.
    peakPhasesSeconds: { batches: round((batchedSubmitted - start) / 1000, 3), singles: round((singlesSubmitted - batchedSubmitted) / 1000, 3), drain: round((end - singlesSubmitted) / 1000, 3) },
  };
}

function runChild(kind: string): Promise<Figures | { system: string; skipped: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--system', kind], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as Figures);
      } catch {
        reject(new Error(`${kind} exited with ${String(code)}: ${out}`));
      }
    });
  });
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--system');
  if (i >= 0) {
    const figures = await runSystem(process.argv[i + 1] ?? 'ours');
    process.stdout.write(`${JSON.stringify(figures)}\n`);
    process.exit(0);
  }
  const results: Record<string, Figures | { system: string; skipped: string }> = {};
  // BENCH_QUEUE_SYSTEMS=a,b runs some of them only (for trying a peer's settings); the figures are from all five.
  const kinds = (process.env.BENCH_QUEUE_SYSTEMS ?? 'ours,ours-postgres,bullmq,pg-boss,graphile-worker').split(',');
  for (const kind of kinds) {
    process.stderr.write(`bench:queue running ${kind}...\n`);
    results[kind] = await runChild(kind);
    process.stderr.write(`  ${JSON.stringify(results[kind])}\n`);
  }
  const ratio = (peer: string, mine = 'ours'): Record<string, number> | string => {
    const o = results[mine];
    if (!o || 'skipped' in o) return `skipped: ${o ? o.skipped : 'not run'}`;
    const p = results[peer];
    if (!p || 'skipped' in p) return `skipped: ${p ? p.skipped : 'not run'}`;
    return {
      tasksPerSec: round(o.tasksPerSec / p.tasksPerSec),
      startLatencyP99: round(o.startLatencyMs.p99 / p.startLatencyMs.p99, 3),
      pacedStartLatencyP99: round(o.paced.startLatencyMs.p99 / p.paced.startLatencyMs.p99, 3),
      rss: round(o.rssMiB / p.rssMiB),
    };
  };
  const goal = (peer: string, atLeast: number): { atLeast: number; met: boolean | null } => {
    const r = ratio(peer, 'ours-postgres');
    return { atLeast, met: typeof r === 'string' ? null : (r.tasksPerSec ?? 0) >= atLeast };
  };
  const summary = {
    bench: 'queue',
    workload: { batched: BATCHED, batchSize: BATCH, singles: SINGLES, consumers: CONSUMERS, priorities: PRIORITIES, pacedSeconds: PACED_SECONDS, pgBossFetchBatch: PGBOSS_BATCH },
    // How each system ran, and what a resolved submit means (see docs/benchmarks.md).
    systems: {
      ours: { store: `SQLite, synchronous=${process.env.BENCH_SYNC ?? 'FULL'}, writer ${process.env.BENCH_WRITER ?? 'thread'}`, consumers: '50 simulated agents', durability: 'submit and completion committed (fsync) before they resolve' },
      'ours-postgres': { store: 'PostgreSQL, synchronous_commit=on, group commit on one connection', consumers: '50 simulated agents', durability: 'submit and completion committed (WAL flushed) before they resolve' },
      bullmq: { store: 'Redis, no persistence on this machine', consumers: 'one Worker, concurrency 50', durability: 'none (Redis keeps nothing on disk)' },
      'pg-boss': { store: 'PostgreSQL, synchronous_commit=on (default)', consumers: `50 work() calls, batchSize ${PGBOSS_BATCH}, polling 0.5 s`, durability: 'submit committed before it resolves; a task counts as done when its handler returns (its completion is written after)' },
      'graphile-worker': {
        store: 'PostgreSQL, synchronous_commit=on (default)',
        consumers: `run(), concurrentJobs ${GW_CONCURRENCY}, localQueue.size ${GW_LOCAL_QUEUE}, completeJobBatchDelay ${GW_COMPLETE_DELAY} ms, pool ${GW_POOL}; adds through makeWorkerUtils (pool ${GW_ADD_POOL}), batches with addJobs`,
        durability: 'submit committed before it resolves; the run ends when the last completion has committed',
      },
    },
    node: process.version,
    results,
    ratios: {
      'ours/bullmq': ratio('bullmq'),
      'ours/pg-boss': ratio('pg-boss'),
      'ours-postgres/pg-boss': ratio('pg-boss', 'ours-postgres'),
      'ours-postgres/graphile-worker': ratio('graphile-worker', 'ours-postgres'),
      'ours-postgres/ours': ratio('ours', 'ours-postgres'),
    },
    // Issue 17: ours on PostgreSQL at least 4x pg-boss and 1.5x graphile-worker in tasks/s.
    goals: { 'ours-postgres/pg-boss': goal('pg-boss', 4), 'ours-postgres/graphile-worker': goal('graphile-worker', 1.5) },
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
