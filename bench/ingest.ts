/**
 * npm run bench:ingest
 *
 * Heartbeats per second through three HTTP routes, each served by a child
 * process of its own on this machine, loaded by the same generator
 * (autocannon, 100 keep-alive connections, in this process) in three
 * interleaved rounds of 5 s each (BENCH_INGEST_ROUNDS, BENCH_INGEST_SECONDS):
 *   - bare: a Fastify route that parses the heartbeat and returns the same
 *     reply as the real one, and does nothing else (the ceiling of HTTP on
 *     this stack);
 *   - naive: the same route doing one SQLite UPSERT per request (WAL,
 *     synchronous=NORMAL), the obvious implementation;
 *   - ours: the orchestrator's real `/api/v1/agent/heartbeat`, from the
 *     compiled build as `npm start` runs it (authenticated, validated, metrics
 *     scored, leases renewed; written behind, within 1 s, through group commit
 *     with synchronous=FULL), with 1,000 enrolled agents whose credentials
 *     rotate over the requests.
 * Prints one JSON line with each route's median requests/s over the rounds
 * (and every round's figure), latency p50/p99, the CPU time each server and
 * the load generator spent per request, and the ratios.
 * BENCH_PROF=DIR writes a CPU profile of each server process into DIR/<route>.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as ConfigModuleNs from '../src/config/config.js';
import type * as ServerModuleNs from '../src/server.js';

type ConfigModule = typeof ConfigModuleNs;
type ServerModule = typeof ServerModuleNs;

const AGENTS = 1000;
const SECONDS = Number(process.env.BENCH_INGEST_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_INGEST_ROUNDS ?? 3);
const CONNECTIONS = 100;
const TOKEN = 'bench-ingest-token-0123456789';
const metrics = { battery: 80, charging: false, cpu: 23.5, memory: 48.1, disk: 61 };

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;

// ------------------------------------------------------------------ servers (child processes)

async function serveBare(): Promise<string> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify();
  app.post('/hb', (request) => ({ ok: true, seq: (request.body as { seq: number }).seq }));
  return app.listen({ host: '127.0.0.1', port: 0 });
}

async function serveNaive(dir: string): Promise<string> {
  const { default: Fastify } = await import('fastify');
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(join(dir, 'naive.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE IF NOT EXISTS heartbeats (agent TEXT PRIMARY KEY, seq INTEGER, metrics TEXT, at INTEGER)');
  const upsert = db.prepare('INSERT INTO heartbeats (agent, seq, metrics, at) VALUES (?, ?, ?, ?) ON CONFLICT(agent) DO UPDATE SET seq = excluded.seq, metrics = excluded.metrics, at = excluded.at');
  const app = Fastify();
  app.post('/hb', (request) => {
    const b = request.body as { seq: number; metrics: unknown };
    upsert.run(request.headers.authorization ?? '?', b.seq, JSON.stringify(b.metrics), Date.now());
    return { ok: true, seq: b.seq };
  });
  return app.listen({ host: '127.0.0.1', port: 0 });
}

async function serveOurs(dir: string): Promise<string> {
  const { pino } = await import('pino');
  // The compiled build, as `npm start` runs it (the script builds first).
  const { loadConfig } = (await import(String(new URL('../dist/config/config.js', import.meta.url)))) as ConfigModule;
  const { startServer } = (await import(String(new URL('../dist/server.js', import.meta.url)))) as ServerModule;
  const config = loadConfig({ PORT: '0', DATA_DIR: dir, DEFAULT_AGENTS: '0', LOG_LEVEL: 'warn', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '10s', AGENT_TIMEOUT: '60s',
    // 1,000 agents enroll from this one address at once.
    ENROLL_RATE_LIMIT: 'off' });
  const server = await startServer(config, { print: () => undefined, logger: pino({ level: 'warn' }) });
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
  return server.url;
}

async function child(kind: string, dir: string): Promise<void> {
  const url = kind === 'bare' ? await serveBare() : kind === 'naive' ? await serveNaive(dir) : await serveOurs(dir);
  if (kind !== 'ours') process.on('SIGTERM', () => process.exit(0));
  // The parent asks for this process's CPU time (every thread: main, writer, GC) around each load.
  process.on('message', (m) => {
    if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  });
  process.send?.({ url });
}

// ------------------------------------------------------------------ load

interface Served {
  url: string;
  /** CPU microseconds (user + system) the server process has used so far. */
  cpu: () => Promise<number>;
  stop: () => Promise<void>;
}

function start(kind: string, dir: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const proc = fork(fileURLToPath(import.meta.url), ['--serve', kind, dir], { execArgv: ['--import', 'tsx', ...(process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}/${kind}`] : [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    proc.once('message', (m: { url: string }) =>
      resolve({
        url: m.url,
        cpu: () =>
          new Promise<number>((r) => {
            proc.once('message', (c: { cpu: NodeJS.CpuUsage }) => r(c.cpu.user + c.cpu.system));
            proc.send('cpu');
          }),
        stop: () =>
          new Promise<void>((r) => {
            proc.once('exit', () => r());
            proc.kill('SIGTERM');
            setTimeout(() => proc.kill('SIGKILL'), 5000).unref();
          }),
      }),
    );
    proc.once('exit', (code) => reject(new Error(`${kind} server exited with ${String(code)}`)));
  });
}

async function load(autocannon: Autocannon, server: Served, path: string, auths: string[]) {
  let next = 0;
  const serverBefore = await server.cpu();
  const clientBefore = process.cpuUsage();
  const r = await autocannon({
    url: `${server.url}${path}`,
    method: 'POST',
    connections: CONNECTIONS,
    duration: SECONDS,
    headers: { 'content-type': 'application/json' },
    requests: [
      {
        setupRequest: (req: Record<string, unknown>) => {
          const i = next++;
          return { ...req, headers: { ...(req.headers as Record<string, string>), authorization: auths[i % auths.length] }, body: JSON.stringify({ seq: i, metrics, running: [] }) };
        },
      },
    ],
  });
  const client = process.cpuUsage(clientBefore);
  const serverUs = (await server.cpu()) - serverBefore;
  const perRequest = (us: number): number => Math.round((us / Math.max(1, r.requests.total)) * 10) / 10;
  return {
    requestsPerSec: Math.round(r.requests.average),
    total: r.requests.total,
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99 },
    cpuUsPerRequest: { server: perRequest(serverUs), client: perRequest(client.user + client.system) },
    non2xx: r.non2xx,
    errors: r.errors,
  };
}

type Kind = 'bare' | 'naive' | 'ours';
type Round = Awaited<ReturnType<typeof load>>;

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

async function enroll(url: string): Promise<string[]> {
  const auths: string[] = [];
  for (let k = 0; k < AGENTS; k++) {
    const res = await fetch(`${url}/api/v1/agent/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: TOKEN, hostname: `host-${k}`, capabilities: ['health_check'], metrics }),
    });
    const body = (await res.json()) as { agentId: string; credential: string };
    auths.push(`Bearer ${body.agentId}:${body.credential}`);
  }
  return auths;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--serve');
  if (i >= 0) return child(process.argv[i + 1] ?? 'bare', process.argv[i + 2] ?? tmpdir());
  const { default: autocannon } = (await import('autocannon')) as unknown as { default: Autocannon };
  const dir = mkdtempSync(join(tmpdir(), 'bench-ingest-'));
  const kinds: Kind[] = ['bare', 'naive', 'ours'];
  const rounds: Record<Kind, Round[]> = { bare: [], naive: [], ours: [] };
  const servers: Partial<Record<Kind, Served>> = {};
  try {
    for (const kind of kinds) servers[kind] = await start(kind, dir);
    process.stderr.write('bench:ingest: enrolling agents...\n');
    const plain = Array.from({ length: AGENTS }, (_, k) => `Bearer agent-${k}`);
    const auths: Record<Kind, string[]> = { bare: plain, naive: plain, ours: await enroll((servers.ours as Served).url) };
    // Rounds interleave the three routes, each round in another order, so that a change in the machine's
    // load during the run falls on all three alike; each route's figure is the median of its rounds.
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < kinds.length; k++) {
        const kind = kinds[(k + round) % kinds.length] as Kind;
        const r = await load(autocannon, servers[kind] as Served, kind === 'ours' ? '/api/v1/agent/heartbeat' : '/hb', auths[kind]);
        rounds[kind].push(r);
        process.stderr.write(`  round ${round + 1} ${kind}: ${JSON.stringify(r)}\n`);
      }
    }
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
  const summarize = (kind: Kind) => {
      const rs = rounds[kind];
      return {
          requestsPerSec: Math.round(median(rs.map((r) => r.requestsPerSec))),
          rounds: rs.map((r) => r.requestsPerSec),
          latencyMs: { p50: median(rs.map((r) => r.latencyMs.p50)), p99: median(rs.map((r) => r.latencyMs.p99)) },
          cpuUsPerRequest: { server: median(rs.map((r) => r.cpuUsPerRequest.server)), client: median(rs.map((r) => r.cpuUsPerRequest.client)) },
          non2xx: rs.reduce((n, r) => n + r.non2xx, 0),
          errors: rs.reduce((n, r) => n + r.errors, 0),
      };
  };
  const results = { bare: summarize('bare'), naive: summarize('naive'), ours: summarize('ours') };
  const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100;
  const summary = {
    bench: 'ingest',
    node: process.version,
    load: { tool: 'autocannon', connections: CONNECTIONS, secondsPerRound: SECONDS, rounds: ROUNDS, agents: AGENTS },
    results,
    ratios: {
      'ours/bare': ratio(results.ours.requestsPerSec, results.bare.requestsPerSec),
      'naive/bare': ratio(results.naive.requestsPerSec, results.bare.requestsPerSec),
      'serverCpu ours/bare': ratio(results.ours.cpuUsPerRequest.server, results.bare.cpuUsPerRequest.server),
    },
    goal: { oursAtLeast: 0.8 },
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
