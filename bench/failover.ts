/**
 * npm run bench:failover
 *
 * How long replicas on PostgreSQL take to replace their leader. Two `orchestrator serve` processes from the
 * compiled build on the local PostgreSQL (a schema of its own, dropped after), the default lease (10 s, or
 * BENCH_LEADER_LEASE). Each figure is the time from the signal until the other replica's /readyz answers 200
 * as leader (polled every 20 ms):
 *   - SIGKILL of the leader, three times (after each, a new follower joins);
 *   - SIGSTOP of the leader (it is replaced when its lease expires), then SIGCONT: the time until the old
 *     leader follows again.
 * Prints one JSON line.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const LEASE = process.env.BENCH_LEADER_LEASE ?? '10s';
const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const schema = `bench_failover_${process.pid}`;
const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;

function start(port: number): ChildProcess {
  return spawn(process.execPath, [MAIN, 'serve'], {
    env: { ...process.env, DATABASE_URL: url, PORT: String(port), DEFAULT_AGENTS: '0', LOG_LEVEL: 'warn', LEADER_LEASE: LEASE },
    stdio: 'ignore',
  });
}

/** 'leader' or 'follower' once /readyz answers 200; otherwise what stands in the way. */
async function role(port: number): Promise<string> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`);
    const body = (await r.json()) as { replica?: { role: string } };
    return r.status === 200 ? (body.replica?.role ?? '?') : 'not ready';
  } catch {
    return 'down';
  }
}

async function until(ok: () => Promise<boolean>, timeoutMs = 60_000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (await ok()) return Math.round(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not within ${timeoutMs} ms`);
}

async function main(): Promise<void> {
  let ports = [8301, 8302];
  let procs = [start(ports[0] as number)];
  try {
    await until(async () => (await role(ports[0] as number)) === 'leader');
    procs.push(start(ports[1] as number));
    await until(async () => (await role(ports[1] as number)) === 'follower');
    const sigkill: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      (procs[0] as ChildProcess).kill('SIGKILL');
      await until(async () => (await role(ports[1] as number)) === 'leader');
      sigkill.push(Math.round(performance.now() - t0));
      const freed = ports[0] as number;
      procs = [procs[1] as ChildProcess, start(freed)];
      ports = [ports[1] as number, freed];
      await until(async () => (await role(ports[1] as number)) === 'follower');
    }
    const t0 = performance.now();
    (procs[0] as ChildProcess).kill('SIGSTOP');
    await until(async () => (await role(ports[1] as number)) === 'leader');
    const sigstop = Math.round(performance.now() - t0);
    (procs[0] as ChildProcess).kill('SIGCONT');
    const resumedFollows = await until(async () => (await role(ports[0] as number)) === 'follower');
    process.stdout.write(`${JSON.stringify({ bench: 'failover', node: process.version, leaderLease: LEASE, takeOverMs: { sigkill, sigstop }, resumedLeaderFollowsAfterMs: resumedFollows })}\n`);
  } finally {
    for (const p of procs) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    }
    const c = new pg.Client({ connectionString: DATABASE_URL });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
