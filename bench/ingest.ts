/**
 * npm run bench:ingest
 *
 * Heartbeats per second through three HTTP routes, each served by a child
 * process of its own on this machine, loaded by the same generator
 * (autocannon, 100 keep-alive connections, 10 s each, in this process):
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
 * Prints one JSON line with requests/s, latency p50/p99 and the ratios.
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
const SECONDS = Number(process.env.BENCH_INGEST_SECONDS ?? 10);
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
  const config = loadConfig({ PORT: '0', DATA_DIR: dir, DEFAULT_AGENTS: '0', LOG_LEVEL: 'warn', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '10s', AGENT_TIMEOUT: '60s' });
  const server = await startServer(config, { print: () => undefined, logger: pino({ level: 'warn' }) });
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
  return server.url;
}

async function child(kind: string, dir: string): Promise<void> {
  const url = kind === 'bare' ? await serveBare() : kind === 'naive' ? await serveNaive(dir) : await serveOurs(dir);
  process.send?.({ url });
}

// ------------------------------------------------------------------ load

function start(kind: string, dir: string): Promise<{ url: string; stop: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const proc = fork(fileURLToPath(import.meta.url), ['--serve', kind, dir], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    proc.once('message', (m: { url: string }) =>
      resolve({
        url: m.url,
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

async function load(autocannon: Autocannon, url: string, path: string, auths: string[]) {
  let next = 0;
  const r = await autocannon({
    url: `${url}${path}`,
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
  return { requestsPerSec: Math.round(r.requests.average), total: r.requests.total, latencyMs: { p50: r.latency.p50, p99: r.latency.p99 }, non2xx: r.non2xx, errors: r.errors };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--serve');
  if (i >= 0) return child(process.argv[i + 1] ?? 'bare', process.argv[i + 2] ?? tmpdir());
  const { default: autocannon } = (await import('autocannon')) as unknown as { default: Autocannon };
  const dir = mkdtempSync(join(tmpdir(), 'bench-ingest-'));
  const results: Record<string, unknown> = {};
  try {
    const plain = Array.from({ length: AGENTS }, (_, k) => `Bearer agent-${k}`);
    for (const kind of ['bare', 'naive']) {
      process.stderr.write(`bench:ingest ${kind}...\n`);
      const s = await start(kind, dir);
      results[kind] = await load(autocannon, s.url, '/hb', plain);
      await s.stop();
      process.stderr.write(`  ${JSON.stringify(results[kind])}\n`);
    }
    process.stderr.write('bench:ingest ours: enrolling agents...\n');
    const s = await start('ours', dir);
    const auths: string[] = [];
    for (let k = 0; k < AGENTS; k++) {
      const res = await fetch(`${s.url}/api/v1/agent/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: TOKEN, hostname: `host-${k}`, capabilities: ['health_check'], metrics }),
      });
      const body = (await res.json()) as { agentId: string; credential: string };
      auths.push(`Bearer ${body.agentId}:${body.credential}`);
    }
    results.ours = await load(autocannon, s.url, '/api/v1/agent/heartbeat', auths);
    await s.stop();
    process.stderr.write(`  ${JSON.stringify(results.ours)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rps = (k: string): number => (results[k] as { requestsPerSec: number }).requestsPerSec;
  const summary = {
    bench: 'ingest',
    node: process.version,
    load: { tool: 'autocannon', connections: CONNECTIONS, seconds: SECONDS, agents: AGENTS },
    results,
    ratios: { 'ours/bare': Math.round((rps('ours') / rps('bare')) * 100) / 100, 'naive/bare': Math.round((rps('naive') / rps('bare')) * 100) / 100 },
    goal: { oursAtLeast: 0.8 },
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
