/**
 * npm run bench:agents
 *
 * 20,000 simulated network agents held by one orchestrator on this machine.
 * The orchestrator runs from the compiled build, as `npm start` runs it, in a
 * child process, with HEARTBEAT_INTERVAL=10s and AGENT_TIMEOUT=30s. A load
 * tool of several processes (BENCH_AGENTS_WORKERS, default 4) runs each
 * agent's own loops against it, over the real protocol:
 *   - enrollment with the enrollment token;
 *   - a heartbeat every 10 s (±10% jitter, first ones spread over 10 s);
 *   - a long-poll for commands (30 s), acknowledging what it handled;
 *   - a result for each task it receives, posted at once.
 * The agents' requests share keep-alive HTTP/2 connections (25 per process,
 * BENCH_AGENTS_SESSIONS):
 * the machine allows a process 20,000 open files, so one HTTP/1 connection per
 * parked long-poll would not fit on either side.
 *
 * Meanwhile tasks are submitted over the HTTP API (BENCH_AGENTS_TASK_RATE per
 * second, default 20) to agents picked at random. A task has started when its
 * agent's long-poll delivered it; the goal is every one within 1 s, and no
 * agent marked offline at any time.
 *
 * Heartbeat latency is that of the measured run, after a whole poll period of warm-up. Each agent's first
 * heartbeat brings it online and waits for that commit; those 20,000, all within the first interval, are
 * reported apart (`comingOnlineLatencyMs`).
 *
 * BENCH_AGENTS (default 20000), BENCH_AGENTS_SECONDS (default 120).
 *
 * `--store sqlite` (the default: SQLite in a temporary DATA_DIR), `--store postgres` (DATABASE_URL on the local
 * PostgreSQL, BENCH_DATABASE_URL for another, in a schema made for the run and dropped after; the server is a
 * replica that leads at once), or `--store sqlite,postgres`: one run after the other in this invocation, with a
 * pause between them, as comparable as two runs on one machine can be.
 *
 * Prints one JSON line: the run's figures, or `{"bench":"agents","runs":[...]}` for several stores.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type * as ConfigModuleNs from '../src/config/config.js';
import type * as ServerModuleNs from '../src/server.js';
import { H2Client } from '../test/support/h2-client.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 20_000);
const SECONDS = Number(process.env.BENCH_AGENTS_SECONDS ?? 120);
const WORKERS = Number(process.env.BENCH_AGENTS_WORKERS ?? 4);
const TASK_RATE = Number(process.env.BENCH_AGENTS_TASK_RATE ?? 20);
// 200 agents a connection: their parked long-polls, heartbeats and results stay under the server's default cap
// of 256 streams a connection (HTTP2_MAX_STREAMS). More connections cost the server more (160: +8% CPU).
const SESSIONS_PER_WORKER = Number(process.env.BENCH_AGENTS_SESSIONS ?? 25);
const INTERVAL_MS = 10_000;
const POLL_MS = 30_000;
const TOKEN = 'bench-agents-token-0123456789';
const metrics = { battery: 80, charging: false, cpu: 23.5, memory: 48.1, disk: 61 };
const PG_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
type StoreKind = 'sqlite' | 'postgres';

/**
 * The URL that keeps the orchestrator's tables in `schema` (made by its first migration); its connections carry
 * the schema's name as application_name, so that the bench can find their backends.
 */
function schemaUrl(schema: string): string {
  return `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}application_name=${schema}&options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

/**
 * CPU time of the PostgreSQL backends serving the orchestrator (those whose application_name starts with
 * `name`), read from /proc every second: the local database's share of the work. Null when PostgreSQL runs
 * elsewhere (its backends are not in this machine's /proc).
 */
async function backendCpu(name: string): Promise<{ reset(): void; stop(): Promise<number | null> }> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ connectionString: PG_URL, application_name: 'bench-agents-probe' });
  await c.connect();
  const ticksPerSecond = 100; // USER_HZ on Linux
  let base = new Map<number, number>();
  const last = new Map<number, number>();
  let seen = false;
  const sample = async (): Promise<void> => {
    const r = await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE starts_with(application_name, $1)', [name]);
    for (const { pid } of r.rows) {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
        last.set(pid, Number(fields[11]) + Number(fields[12]));
        seen = true;
      } catch {
        // Gone since, or not on this machine.
      }
    }
  };
  let timer: NodeJS.Timeout | null = null;
  let started = 0;
  return {
    reset() {
      void sample().then(() => {
        base = new Map(last);
        started = Date.now();
        timer = setInterval(() => void sample().catch(() => undefined), 1000);
      });
    },
    async stop() {
      if (timer) clearInterval(timer);
      await sample().catch(() => undefined);
      await c.end();
      if (!seen || started === 0) return null;
      let ticks = 0;
      for (const [pid, t] of last) ticks += t - (base.get(pid) ?? 0);
      return Math.round((ticks / ticksPerSecond / ((Date.now() - started) / 1000)) * 1000) / 10;
    },
  };
}

async function dropSchema(schema: string): Promise<void> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
  } finally {
    await c.end();
  }
}

/** The machine's load averages (1, 5, 15 minutes), as `uptime` prints them. */
const load = (): number[] => loadavg().map((l) => Math.round(l * 100) / 100);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Busy and total CPU time of the whole machine so far (every core). */
function machineCpu(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of cpus()) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
    busy += t - c.times.idle;
    total += t;
  }
  return { busy, total };
}

function busyShare(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  return (b.busy - a.busy) / Math.max(1, b.total - a.total);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

// ------------------------------------------------------------------ the orchestrator (child process)

interface ServerStats {
  offlineMarks: number;
  /** The store's writer: transactions, writes, the largest batch (and statements sent, on PostgreSQL). */
  writer: Record<string, number> | null;
  /** The replica's epoch (null on SQLite): a change during the run would be a lost lease. */
  epoch: number | null;
  cpuUs: number;
  rssBytes: number;
  heapUsedBytes: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  gc: { count: number; totalMs: number; maxMs: number; majorCount: number; majorMaxMs: number };
}

async function serve(dir: string, databaseUrl: string): Promise<void> {
  const { pino } = await import('pino');
  const { loadConfig } = (await import(String(new URL('../dist/config/config.js', import.meta.url)))) as typeof ConfigModuleNs;
  const { startServer } = (await import(String(new URL('../dist/server.js', import.meta.url)))) as typeof ServerModuleNs;
  const config = loadConfig({ PORT: '0', DATA_DIR: dir, DATABASE_URL: databaseUrl, DEFAULT_AGENTS: '0', LOG_LEVEL: 'warn', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '10s', AGENT_TIMEOUT: '30s',
    // The whole fleet enrolls from this one address within seconds.
    ENROLL_RATE_LIMIT: 'off' });
  const server = await startServer(config, { print: () => undefined, logger: pino({ level: 'error' }, pino.destination(2)) });
  // On PostgreSQL the replica leads as soon as it finds the lease free (a new schema); wait for it.
  while (server.replica().role !== 'leader') await sleep(50);
  let offlineMarks = 0;
  server.orchestrator.events.on('agent.offline', () => offlineMarks++);
  const writerStats = (): Record<string, number> | null => (server.store as unknown as { writer?: { stats?: Record<string, number> } }).writer?.stats ?? null;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  let gc = { count: 0, totalMs: 0, maxMs: 0, majorCount: 0, majorMaxMs: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const major = ((e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0) === constants.NODE_PERFORMANCE_GC_MAJOR;
      gc = {
        count: gc.count + 1,
        totalMs: gc.totalMs + e.duration,
        maxMs: Math.max(gc.maxMs, e.duration),
        majorCount: gc.majorCount + (major ? 1 : 0),
        majorMaxMs: major ? Math.max(gc.majorMaxMs, e.duration) : gc.majorMaxMs,
      };
    }
  }).observe({ entryTypes: ['gc'] });
  process.on('message', (m: string) => {
    if (m === 'reset') {
      loop.reset();
      gc = { count: 0, totalMs: 0, maxMs: 0, majorCount: 0, majorMaxMs: 0 };
    }
    if (m === 'enable') loop.enable();
    if (m === 'stats' || m === 'reset') {
      const cpu = process.cpuUsage();
      const stats: ServerStats = {
        offlineMarks,
        writer: writerStats() === null ? null : { ...writerStats() },
        epoch: server.replica().epoch,
        cpuUs: cpu.user + cpu.system,
        rssBytes: process.memoryUsage().rss,
        heapUsedBytes: process.memoryUsage().heapUsed,
        loopDelayP99Ms: loop.percentile(99) / 1e6,
        loopDelayMaxMs: loop.max / 1e6,
        gc,
      };
      process.send?.({ stats });
    }
    if (m === 'live-heap') {
      // The live heap: what a full collection leaves (the heap used at any instant holds garbage as well).
      setFlagsFromString('--expose-gc');
      (runInNewContext('gc') as () => void)();
      const old = getHeapSpaceStatistics().find((x) => x.space_name === 'old_space');
      process.send?.({ liveHeap: { usedMB: Math.round(process.memoryUsage().heapUsed / 2 ** 20), oldSpaceMB: Math.round((old?.space_used_size ?? 0) / 2 ** 20) } });
    }
    if (m === 'stop') void server.close().then(() => process.exit(0));
  });
  process.send?.({ url: server.url });
}

// ------------------------------------------------------------------ the load tool (child processes)

interface SimAgent {
  id: string;
  auth: string;
  client: H2Client;
  seq: number;
  ack: number;
}

interface WorkerReport {
  heartbeats: number;
  heartbeatErrors: number;
  heartbeatLatencyMs: number[];
  /** Each agent's first heartbeat: it comes online, so the answer waits for a commit. */
  firstHeartbeatLatencyMs: number[];
  lateHeartbeats: number;
  polls: number;
  pollErrors: number;
  resultRequests: number;
  resultsRefused: number;
  received: [string, number][];
  cpuUs: number;
  loopDelayMaxMs: number;
  loopDelayP99Ms: number;
}

async function runAgents(url: string, count: number, name: string): Promise<void> {
  const clients = Array.from({ length: SESSIONS_PER_WORKER }, () => new H2Client(url));
  const agents: SimAgent[] = [];
  const report: WorkerReport = { heartbeats: 0, heartbeatErrors: 0, heartbeatLatencyMs: [], firstHeartbeatLatencyMs: [], lateHeartbeats: 0, polls: 0, pollErrors: 0, resultRequests: 0, resultsRefused: 0, received: [], cpuUs: 0, loopDelayMaxMs: 0, loopDelayP99Ms: 0 };
  let stopping = false;
  // Heartbeat latencies count from the measured run on (the parent says 'measure'); the first heartbeats, when
  // every agent comes online at once, are kept apart.
  let measuring = false;
  const told = (what: string): Promise<void> =>
    new Promise((resolve) => {
      const on = (m: string): void => {
        if (m !== what) return;
        process.off('message', on);
        resolve();
      };
      process.on('message', on);
    });
  void told('measure').then(() => {
    measuring = true;
  });

  for (let start = 0; start < count; start += 100) {
    const batch = Array.from({ length: Math.min(100, count - start) }, (_, k) => start + k);
    agents.push(
      ...(await Promise.all(
        batch.map(async (i) => {
          const client = clients[i % clients.length] as H2Client;
          const r = await client.request('POST', '/api/v1/agent/enroll', { body: { token: TOKEN, hostname: `${name}-${i}`, capabilities: ['health_check'], metrics } });
          if (r.status !== 200) throw new Error(`enrollment answered ${r.status}: ${JSON.stringify(r.body)}`);
          const id = r.body.agentId as string;
          return { id, auth: `Bearer ${id}:${String(r.body.credential)}`, client, seq: 0, ack: 0 };
        }),
      )),
    );
  }
  process.send?.({ enrolled: agents.map((a) => a.id) });
  await told('go');

  const postResults = async (a: SimAgent, results: unknown[]): Promise<void> => {
    report.resultRequests++;
    const r = await a.client.request('POST', '/api/v1/agent/results', { body: { results }, headers: { authorization: a.auth } });
    for (const x of (r.body.results as { status: string }[] | undefined) ?? []) if (x.status !== 'accepted') report.resultsRefused++;
  };

  const pollLoop = async (a: SimAgent, firstWaitMs: number): Promise<void> => {
    for (let waitMs = firstWaitMs; !stopping; waitMs = POLL_MS) {
      try {
        const r = await a.client.request('GET', `/api/v1/agent/commands?waitMs=${waitMs}&ack=${a.ack}`, { headers: { authorization: a.auth } });
        report.polls++;
        if (r.status !== 200) throw new Error(`poll answered ${r.status}`);
        const results: unknown[] = [];
        for (const c of r.body.commands as { id: number; type: string; taskId?: string; attempt?: number }[]) {
          a.ack = Math.max(a.ack, c.id);
          if (c.type === 'task_assignment') {
            report.received.push([c.taskId as string, Date.now()]);
            results.push({ taskId: c.taskId, attempt: c.attempt, success: true, result: { ok: true } });
          }
        }
        // Every result of a reply in one request.
        if (results.length > 0) void postResults(a, results).catch(() => report.pollErrors++);
      } catch {
        if (stopping) return;
        report.pollErrors++;
        await sleep(1000);
      }
    }
  };

  const beat = async (a: SimAgent, due: number): Promise<void> => {
    if (stopping) return;
    const sent = Date.now();
    if (sent - due > 1000) report.lateHeartbeats++;
    try {
      const r = await a.client.request('POST', '/api/v1/agent/heartbeat', { body: { seq: ++a.seq, metrics, running: [] }, headers: { authorization: a.auth } });
      if (r.status !== 200) throw new Error(`heartbeat answered ${r.status}`);
      report.heartbeats++;
      if (a.seq === 1) report.firstHeartbeatLatencyMs.push(Date.now() - sent);
      else if (measuring && report.heartbeatLatencyMs.length < 200_000) report.heartbeatLatencyMs.push(Date.now() - sent);
    } catch {
      report.heartbeatErrors++;
    }
    const wait = INTERVAL_MS * (0.9 + Math.random() * 0.2);
    const nextDue = Date.now() + wait;
    setTimeout(() => void beat(a, nextDue), wait);
  };

  const cpuBefore = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  // As a fleet that has been running a while: heartbeats spread over one interval, and long-polls spread
  // over one poll period (each agent's first poll waits a random part of it, the next ones all of it).
  for (const a of agents) {
    const offset = Math.random() * INTERVAL_MS;
    const due = Date.now() + offset;
    setTimeout(() => void beat(a, due), offset);
    void pollLoop(a, 1000 + Math.floor(Math.random() * (POLL_MS - 1000)));
  }
  await told('stop');
  stopping = true;
  const cpu = process.cpuUsage(cpuBefore);
  report.cpuUs = cpu.user + cpu.system;
  report.loopDelayMaxMs = Math.round(loop.max / 1e6);
  report.loopDelayP99Ms = Math.round(loop.percentile(99) / 1e6);
  process.send?.({ report });
  await told('exit');
  process.exit(0);
}

// ------------------------------------------------------------------ the run

function spawn(args: string[]): ChildProcess {
  // BENCH_PROF=DIR writes a CPU profile of the orchestrator into DIR.
  const profile = process.env.BENCH_PROF !== undefined && args[0] === '--serve' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];
  // The orchestrator runs with the node flags of `npm start`, and BENCH_SERVER_FLAGS (--trace-gc, --heapsnapshot-signal=SIGUSR2, ...).
  const flags = args[0] === '--serve' ? [...startFlags(), ...(process.env.BENCH_SERVER_FLAGS ?? '').split(' ').filter((f) => f !== '')] : [];
  return fork(fileURLToPath(import.meta.url), args, { execArgv: ['--import', 'tsx', ...profile, ...flags], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function next<T>(proc: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>): void => {
      if (!(key in m)) return;
      proc.off('message', onMessage);
      proc.off('exit', onExit);
      resolve(m[key] as T);
    };
    const onExit = (code: number | null): void => reject(new Error(`a child process exited with ${String(code)} while waiting for ${key}`));
    proc.on('message', onMessage);
    proc.once('exit', onExit);
  });
}

/** The node flags `npm start` gives the orchestrator (`node --flag ... dist/cli/main.js serve`). */
function startFlags(): string[] {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } };
  const m = /^node((?: --\S+)*) /.exec(pkg.scripts.start);
  if (!m) throw new Error(`the start script is not "node [flags] <file> serve": ${pkg.scripts.start}`);
  return (m[1] as string).split(' ').filter((f) => f !== '');
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--serve');
  if (i >= 0) return serve(process.argv[i + 1] as string, process.argv[i + 2] ?? '');
  const w = process.argv.indexOf('--agents');
  if (w >= 0) return runAgents(process.argv[w + 1] as string, Number(process.argv[w + 2]), process.argv[w + 3] as string);

  const s = process.argv.indexOf('--store');
  const stores = (s >= 0 ? (process.argv[s + 1] ?? '') : 'sqlite').split(',').filter((x) => x !== '');
  for (const store of stores) if (store !== 'sqlite' && store !== 'postgres') throw new Error(`--store: sqlite, postgres or both (sqlite,postgres), not ${store}`);
  const runs: Record<string, unknown>[] = [];
  for (const [k, store] of (stores as StoreKind[]).entries()) {
    // Between two runs: the first one's processes gone, the machine settled.
    if (k > 0) await sleep(15_000);
    process.stderr.write(`bench:agents on ${store} (load ${load().join(', ')})\n`);
    const summary = await runOnce(store);
    if (stores.length > 1) process.stderr.write(`  ${JSON.stringify(summary)}\n`);
    runs.push(summary);
  }
  const line = runs.length === 1 ? runs[0] : { bench: 'agents', runs, met: runs.every((r) => r.met === true) };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** One run against a server on `store`: its JSON summary. */
async function runOnce(store: StoreKind): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-agents-'));
  const schema = store === 'postgres' ? `bench_agents_${process.pid}_${randomBytes(3).toString('hex')}` : null;
  const loadAtStart = load();
  const server = spawn(['--serve', dir, schema === null ? '' : schemaUrl(schema)]);
  const workers: ChildProcess[] = [];
  // Interrupted (Ctrl-C): the children killed, the folder and the schema removed all the same.
  const interrupted = (): void => {
    for (const p of [...workers, server]) if (p.exitCode === null) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    void (schema === null ? Promise.resolve() : dropSchema(schema)).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  try {
    const url = await next<string>(server, 'url');
    const database = schema === null ? null : await backendCpu(schema);
    const stats = async (message: string): Promise<ServerStats> => {
      const reply = next<ServerStats>(server, 'stats');
      server.send(message);
      return reply;
    };
    process.stderr.write(`bench:agents: ${AGENTS} agents from ${WORKERS} processes over ${WORKERS * SESSIONS_PER_WORKER} HTTP/2 connections to ${url}\n`);

    const enrollStarted = Date.now();
    for (let k = 0; k < WORKERS; k++) workers.push(spawn(['--agents', url, String(Math.floor(AGENTS / WORKERS) + (k < AGENTS % WORKERS ? 1 : 0)), `w${k}`]));
    const ids = (await Promise.all(workers.map((p) => next<string[]>(p, 'enrolled')))).flat();
    const enrollSeconds = (Date.now() - enrollStarted) / 1000;
    process.stderr.write(`  enrolled ${ids.length} agents in ${enrollSeconds.toFixed(1)} s\n`);

    for (const p of workers) p.send('go');
    // A whole poll period before the measured run: every agent beating and polling, its first poll renewed.
    await sleep(POLL_MS + 2000);
    server.send('enable');
    for (const p of workers) p.send('measure');
    const before = await stats('reset');
    database?.reset();
    const cpuBefore = machineCpu();
    const runStarted = Date.now();
    process.stderr.write(`  running ${SECONDS} s, ${TASK_RATE} tasks/s...\n`);

    const submitted = new Map<string, number>();
    // From the submit to its answer (201: the task is committed), apart from the whole start latency.
    const submitLatencies: number[] = [];
    let submitErrors = 0;
    const submissions: Promise<void>[] = [];
    const end = runStarted + SECONDS * 1000;
    for (let n = 0; Date.now() < end; n++) {
      const due = runStarted + (n * 1000) / TASK_RATE;
      if (due > Date.now()) await sleep(due - Date.now());
      const agentId = ids[Math.floor(Math.random() * ids.length)] as string;
      const at = Date.now();
      submissions.push(
        fetch(`${url}/api/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'health_check', target: { agentId } }) })
          .then(async (res) => {
            const body = (await res.json()) as { id?: string };
            if (res.status !== 201 || body.id === undefined) submitErrors++;
            else {
              submitted.set(body.id, at);
              submitLatencies.push(Date.now() - at);
            }
          })
          .catch(() => {
            submitErrors++;
          }),
      );
    }
    await Promise.all(submissions);
    await sleep(2000);
    const after = await stats('stats');
    const databaseCpuPercent = (await database?.stop()) ?? null;
    const elapsed = (Date.now() - runStarted) / 1000;
    for (const p of workers) p.send('stop');
    const reports = await Promise.all(workers.map((p) => next<WorkerReport>(p, 'report')));
    const status = (await (await fetch(`${url}/cluster_status`)).json()) as Record<string, number>;
    const liveHeapReply = next<{ usedMB: number; oldSpaceMB: number }>(server, 'liveHeap');
    server.send('live-heap');
    const liveHeap = await liveHeapReply;

    const received = new Map(reports.flatMap((r) => r.received));
    const latencies = [...submitted].map(([id, at]) => (received.has(id) ? (received.get(id) as number) - at : Number.POSITIVE_INFINITY)).sort((a, b) => a - b);
    const started = latencies.filter((l) => Number.isFinite(l));
    const hb = reports.flatMap((r) => r.heartbeatLatencyMs).sort((a, b) => a - b);
    const firstHb = reports.flatMap((r) => r.firstHeartbeatLatencyMs).sort((a, b) => a - b);
    const sum = (f: (r: WorkerReport) => number): number => reports.reduce((n, r) => n + f(r), 0);
    const summary = {
      bench: 'agents',
      store,
      node: process.version,
      agents: ids.length,
      heartbeatIntervalMs: INTERVAL_MS,
      agentTimeoutMs: 30_000,
      seconds: Math.round(elapsed),
      load: { processes: WORKERS, http2Connections: WORKERS * SESSIONS_PER_WORKER, longPollMs: POLL_MS },
      enrollment: { seconds: Math.round(enrollSeconds * 10) / 10, perSec: Math.round(ids.length / enrollSeconds) },
      heartbeats: {
        total: sum((r) => r.heartbeats),
        perSec: Math.round(sum((r) => r.heartbeats) / (elapsed + (POLL_MS + 2000) / 1000)),
        errors: sum((r) => r.heartbeatErrors),
        sentLate: sum((r) => r.lateHeartbeats),
        // The measured run's heartbeats (after every agent is online).
        latencyMs: { p50: percentile(hb, 50), p99: percentile(hb, 99), max: hb.at(-1) ?? 0 },
        // Each agent's first heartbeat, all within the first interval: it brings the agent online and waits for that commit.
        comingOnlineLatencyMs: { p50: percentile(firstHb, 50), p99: percentile(firstHb, 99), max: firstHb.at(-1) ?? 0 },
      },
      polls: { total: sum((r) => r.polls), errors: sum((r) => r.pollErrors) },
      tasks: {
        submitted: submitted.size,
        submitErrors,
        started: started.length,
        startLatencyMs: { p50: percentile(started, 50), p99: percentile(started, 99), max: started.at(-1) ?? 0 },
        startedWithin1s: latencies.filter((l) => l <= 1000).length,
        // The POST's answer (the task committed): the part of the start latency before the task is offered to its agent.
        submitLatencyMs: ((sorted: number[]) => ({ p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 }))(submitLatencies.sort((a, b) => a - b)),
        resultRequests: sum((r) => r.resultRequests),
        resultsRefused: sum((r) => r.resultsRefused),
        completed: status.completed_tasks,
      },
      agentsOfflineAtEnd: status.offline_slaves,
      falseOfflineMarks: after.offlineMarks,
      server: {
        cpuPercent: Math.round(((after.cpuUs - before.cpuUs) / 1e6 / elapsed) * 1000) / 10,
        rssMB: Math.round(after.rssBytes / 2 ** 20),
        heapUsedMB: Math.round(after.heapUsedBytes / 2 ** 20),
        // After the run, with the 20,000 agents still known: what a full collection leaves.
        liveHeapMB: liveHeap.usedMB,
        liveOldSpaceMB: liveHeap.oldSpaceMB,
        eventLoopDelayMs: { p99: Math.round(after.loopDelayP99Ms * 10) / 10, max: Math.round(after.loopDelayMaxMs * 10) / 10 },
        gcPauseMs: { total: Math.round(after.gc.totalMs), max: Math.round(after.gc.maxMs), majorCount: after.gc.majorCount, majorMax: Math.round(after.gc.majorMaxMs) },
      },
      // The PostgreSQL backends serving the orchestrator (its writer, reads and lease), in percent of a core.
      ...(store === 'postgres' ? { databaseCpuPercent } : {}),
      loadToolEventLoopDelayMs: { p99: Math.max(...reports.map((r) => r.loopDelayP99Ms)), max: Math.max(...reports.map((r) => r.loopDelayMaxMs)) },
      loadToolCpuPercent: Math.round((sum((r) => r.cpuUs) / 1e6 / (elapsed + (POLL_MS + 2000) / 1000)) * 1000) / 10,
      machine: { cores: availableParallelism(), busyPercent: Math.round(busyShare(cpuBefore, machineCpu()) * 1000) / 10, loadAverage: { start: loadAtStart, end: load() } },
      // The store's writer over the measured run (PostgreSQL: statements sent, a run over arrays counting once).
      writer: writerDelta(before.writer, after.writer, elapsed),
      ...(store === 'postgres' ? { leaseKept: before.epoch !== null && before.epoch === after.epoch } : {}),
      goal: { everyTaskStartedWithinMs: 1000, falseOfflineMarks: 0 },
      met: latencies.length > 0 && latencies.every((l) => l <= 1000) && after.offlineMarks === 0,
    };
    for (const p of workers) p.send('exit');
    return summary;
  } finally {
    process.off('SIGINT', interrupted).off('SIGTERM', interrupted);
    for (const p of workers) if (p.exitCode === null) p.kill('SIGKILL');
    server.send('stop');
    await new Promise((resolve) => {
      server.once('exit', resolve);
      setTimeout(() => server.kill('SIGKILL'), 10_000).unref();
    });
    rmSync(dir, { recursive: true, force: true });
    if (schema !== null) await dropSchema(schema);
  }
}

/** What the writer did between two of its stats, per second. */
function writerDelta(a: Record<string, number> | null, b: Record<string, number> | null, seconds: number): Record<string, number> | null {
  if (a === null || b === null) return null;
  const per = (k: string): number => Math.round((((b[k] ?? 0) - (a[k] ?? 0)) / seconds) * 10) / 10;
  const commits = (b.commits ?? 0) - (a.commits ?? 0);
  return {
    commitsPerSec: per('commits'),
    writesPerSec: per('writes'),
    ...('statements' in b ? { statementsPerSec: per('statements') } : {}),
    writesPerCommit: commits === 0 ? 0 : Math.round((((b.writes ?? 0) - (a.writes ?? 0)) / commits) * 10) / 10,
    largestBatchEver: b.maxBatch ?? 0,
    ...('slowCommits' in b ? { commitsOver250ms: (b.slowCommits ?? 0) - (a.slowCommits ?? 0), slowestCommitMsEver: Math.round(b.maxCommitMs ?? 0), longestQueueWaitMsEver: Math.round(b.maxWaitMs ?? 0) } : {}),
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
