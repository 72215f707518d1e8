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
 * With BENCH_DEVICES=N (default 0), N devices are imported first (through the follower, 2,000 a request),
 * so that each new leader loads a fleet of that size; each take-over is then reported in two parts: until the
 * follower is elected (its /readyz says leader, loading), and until it serves.
 * Prints one JSON line.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const LEASE = process.env.BENCH_LEADER_LEASE ?? '10s';
const DEVICES = Number(process.env.BENCH_DEVICES ?? 0);
const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const schema = `bench_failover_${process.pid}`;
const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;

function start(port: number): ChildProcess {
  return spawn(process.execPath, [MAIN, 'serve'], {
    env: { ...process.env, DATABASE_URL: url, PORT: String(port), DEFAULT_AGENTS: '0', LOG_LEVEL: 'warn', LEADER_LEASE: LEASE },
    stdio: 'ignore',
  });
}

/** 'leader' or 'follower' once /readyz answers 200; 'elected' while it loads the state to lead; otherwise what stands in the way. */
async function role(port: number): Promise<string> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`);
    const body = (await r.json()) as { replica?: { role: string } };
    if (r.status !== 200 && body.replica?.role === 'leader') return 'elected';
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

async function importDevices(port: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < DEVICES; i += 2000) {
    const devices = Array.from({ length: Math.min(2000, DEVICES - i) }, (_, k) => {
      const n = i + k;
      return { id: `dev-${n}`, site: `site-${n % 40}`, metrics: { battery: 20 + (n % 80), charging: n % 3 === 0, cpu: n % 90, memory: 10 + (n % 80), disk: 5 + (n % 90) } };
    });
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/devices`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ devices }) });
    if (r.status !== 201) throw new Error(`import answered ${r.status}: ${await r.text()}`);
  }
  return Math.round(performance.now() - t0);
}

/** The time until the replica on `port` is elected, and until it serves as leader. */
async function takeOver(port: number): Promise<{ electedMs: number; servingMs: number }> {
  const t0 = performance.now();
  let electedMs = -1;
  await until(async () => {
    const r = await role(port);
    if (electedMs < 0 && (r === 'elected' || r === 'leader')) electedMs = Math.round(performance.now() - t0);
    return r === 'leader';
  }, 120_000);
  return { electedMs, servingMs: Math.round(performance.now() - t0) };
}

async function main(): Promise<void> {
  let ports = [8301, 8302];
  let procs = [start(ports[0] as number)];
  try {
    await until(async () => (await role(ports[0] as number)) === 'leader', 120_000);
    procs.push(start(ports[1] as number));
    await until(async () => (await role(ports[1] as number)) === 'follower');
    const importMs = DEVICES > 0 ? await importDevices(ports[1] as number) : 0;
    const sigkill: number[] = [];
    const phases: { electedMs: number; servingMs: number }[] = [];
    for (let i = 0; i < 3; i++) {
      (procs[0] as ChildProcess).kill('SIGKILL');
      const t = await takeOver(ports[1] as number);
      phases.push(t);
      sigkill.push(t.servingMs);
      const freed = ports[0] as number;
      procs = [procs[1] as ChildProcess, start(freed)];
      ports = [ports[1] as number, freed];
      await until(async () => (await role(ports[1] as number)) === 'follower', 120_000);
    }
    (procs[0] as ChildProcess).kill('SIGSTOP');
    const stopped = await takeOver(ports[1] as number);
    const sigstop = stopped.servingMs;
    (procs[0] as ChildProcess).kill('SIGCONT');
    const resumedFollows = await until(async () => (await role(ports[0] as number)) === 'follower', 120_000);
    process.stdout.write(`${JSON.stringify({ bench: 'failover', node: process.version, leaderLease: LEASE, devices: DEVICES, importMs, takeOverMs: { sigkill, sigstop }, phasesMs: { sigkill: phases, sigstop: stopped }, resumedLeaderFollowsAfterMs: resumedFollows })}\n`);
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
