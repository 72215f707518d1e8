/**
 * npm run bench:rings
 *
 * Health scores and ring assignment at a million devices, in one process:
 *   - memory: RSS and JS heap growth per device after registering 1,000,000
 *     devices (cheap simulated devices: attributes and metrics, no agent) by bulk
 *     import into a running orchestrator, every one committed to its SQLite file;
 *   - a full rebalance (plan, apply, commit the moves) after 1% of the devices
 *     changed their health, against the time to sort 1,000,000 Float64 scores
 *     in the same process (goal: at most 3×);
 *   - one heartbeat's incremental update (new score, aggregates, ring rules) at
 *     10,000, 100,000 and 1,000,000 devices: O(log n) shows as a flat line;
 *   - GET /cluster_status and GET /api/v1/rings over HTTP on loopback at 1M
 *     devices, p50/p99 (goal: p99 at most 5 ms).
 *
 * Prints one JSON line. BENCH_DEVICES changes the fleet size (default 1,000,000).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import { DEFAULT_HEALTH_SCORE_CONFIG } from '../src/domain/health-score.js';
import { compileRingConfig, DEFAULT_RING_CONFIG } from '../src/domain/ring-config.js';
import type { DeviceImport } from '../src/fleet/fleet.js';
import { planFull, planIncremental } from '../src/fleet/planner.js';
import { DeviceRegistry } from '../src/fleet/registry.js';
import { startServer } from '../src/server.js';

const N = Number(process.env.BENCH_DEVICES ?? 1_000_000);
const CHUNK = 50_000;
const SITES = ['berlin', 'austin', 'tokyo', 'sao-paulo', 'sydney', 'toronto', 'paris', 'mumbai'];
const MODELS = ['x1-carbon', 't14', 'p1', 'macbook-pro', 'macbook-air', 'latitude-7440', 'elitebook-840', 'surface-7'];
const OSES = ['windows', 'macos', 'linux'];
const DEPTS = ['IT', 'Sales', 'Finance', 'Engineering', 'HR', 'Support'];

/** A deterministic pseudo-random stream, so every run measures the same fleet. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function device(i: number, r: () => number): DeviceImport {
  return {
    id: `dev-${i.toString(36).padStart(5, '0')}`,
    site: SITES[Math.floor(r() * SITES.length)],
    model: MODELS[Math.floor(r() * MODELS.length)],
    osName: OSES[Math.floor(r() * OSES.length)],
    department: DEPTS[Math.floor(r() * DEPTS.length)],
    // About one device in six fails the seed rule (battery <= 20, cpu >= 80 or memory >= 85), fewer than canary and dev hold.
    metrics: { battery: 15 + r() * 85, charging: r() < 0.4, cpu: 5 + r() * 80, memory: 20 + r() * 68, disk: r() * 95 },
  };
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

function memory(): { rss: number; heap: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed + m.arrayBuffers };
}

async function httpLatency(url: string, n: number): Promise<{ p50: number; p99: number; max: number }> {
  for (let k = 0; k < 50; k++) await (await fetch(url)).arrayBuffer(); // warm-up
  const times: number[] = [];
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    const res = await fetch(url);
    await res.arrayBuffer();
    times.push(performance.now() - t0);
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  }
  times.sort((a, b) => a - b);
  return { p50: round(percentile(times, 50), 3), p99: round(percentile(times, 99), 3), max: round(times.at(-1) as number, 3) };
}

/** Time of one heartbeat's in-memory work (score, aggregates, ring rules), averaged over many devices. */
function incrementalAt(n: number): number {
  const out = compileRingConfig({ ...DEFAULT_RING_CONFIG, dwellMs: 0 });
  if ('errors' in out) throw new Error(out.errors.join('; '));
  const reg = new DeviceRegistry(out.config, DEFAULT_HEALTH_SCORE_CONFIG, n);
  const r = rng(7);
  for (let i = 0; i < n; i++) {
    const d = device(i, r);
    const { index } = reg.upsert(d.id, d);
    reg.sample(index, d.metrics as NonNullable<DeviceImport['metrics']>, 1);
  }
  const plan = planFull(reg, 2, null);
  for (const m of plan.moves) reg.setRing(m.index, m.to, 2);
  const updates = 200_000;
  const picks = Int32Array.from({ length: updates }, () => Math.floor(r() * n));
  const samples = Array.from({ length: 1000 }, () => device(0, r).metrics as NonNullable<DeviceImport['metrics']>);
  let moved = 0;
  const t0 = performance.now();
  for (let k = 0; k < updates; k++) {
    const i = picks[k] as number;
    reg.sample(i, samples[k % 1000] as NonNullable<DeviceImport['metrics']>, 1000 + k);
    const moves = planIncremental(reg, i, 1000 + k, plan.cuts);
    for (const m of moves) reg.setRing(m.index, m.to, 1000 + k);
    moved += moves.length;
  }
  const us = ((performance.now() - t0) * 1000) / updates;
  process.stderr.write(`  incremental at ${n}: ${round(us, 3)} µs per heartbeat (${moved} moves in ${updates} updates)\n`);
  return round(us, 3);
}

async function main(): Promise<void> {
  process.stderr.write(`bench:rings with ${N.toLocaleString('en')} devices\n`);
  const incremental = { n10k: incrementalAt(10_000), n100k: incrementalAt(100_000), n1m: incrementalAt(1_000_000) };
  gc();

  const dir = mkdtempSync(join(tmpdir(), 'bench-rings-'));
  const config = loadConfig({ PORT: '0', DATA_DIR: dir, LOG_LEVEL: 'warn', DEFAULT_AGENTS: '2', REBALANCE_INTERVAL: '3600s' });
  const server = await startServer(config, { print: () => undefined, logger: pino({ level: 'warn' }) });
  const fleet = server.orchestrator.fleet;
  const before = memory();

  // Register the fleet by bulk import, each chunk committed before the next.
  const r = rng(42);
  const tImport = performance.now();
  for (let from = 0; from < N; from += CHUNK) {
    const chunk = Array.from({ length: Math.min(CHUNK, N - from) }, (_, k) => device(from + k, r));
    await fleet.importDevices(chunk);
  }
  const importSeconds = (performance.now() - tImport) / 1000;
  const after = memory();
  const devices = fleet.size;
  const perDevice = { rssBytes: Math.round((after.rss - before.rss) / N), jsBytes: Math.round((after.heap - before.heap) / N) };
  process.stderr.write(`  imported ${devices} devices in ${round(importSeconds, 1)} s; ${perDevice.rssBytes} B RSS, ${perDevice.jsBytes} B JS per device\n`);

  // The sort every rebalance is compared with: 1M Float64 scores, median of 5.
  const reg = fleet.registry;
  const sortTimes: number[] = [];
  for (let k = 0; k < 5; k++) {
    const scores = new Float64Array(reg.size);
    for (let i = 0; i < reg.size; i++) scores[i] = (reg.scoreBin[i] as number) / 10 + r() * 0.05;
    const t0 = performance.now();
    scores.sort();
    sortTimes.push(performance.now() - t0);
  }
  sortTimes.sort((a, b) => a - b);
  const sortMs = sortTimes[2] as number;

  // 1% of the devices change health; then one full rebalance, median of 3 rounds.
  const rounds: { planMs: number; totalMs: number; moves: number }[] = [];
  for (let k = 0; k < 3; k++) {
    for (let j = 0; j < N / 100; j++) {
      const i = Math.floor(r() * reg.size);
      reg.sample(i, device(i, r).metrics as NonNullable<DeviceImport['metrics']>, Date.now());
    }
    const out = await fleet.rebalance('bench');
    rounds.push({ planMs: round(out.planMs), totalMs: round(out.totalMs), moves: out.moves });
  }
  const mid = [...rounds].sort((a, b) => a.totalMs - b.totalMs)[1] as (typeof rounds)[number];
  process.stderr.write(`  sort ${round(sortMs)} ms; rebalance rounds ${JSON.stringify(rounds)}\n`);

  // Steady state for the reads: the background snapshot of the import's moves is written, garbage collected.
  await fleet.snapshot();
  gc();
  const cluster = await httpLatency(`${server.url}/cluster_status`, 2000);
  const rings = await httpLatency(`${server.url}/api/v1/rings`, 2000);
  process.stderr.write(`  GET /cluster_status ${JSON.stringify(cluster)}; GET /api/v1/rings ${JSON.stringify(rings)}\n`);
  const ringSizes = fleet.rings().rings.map((x) => ({ name: x.name, size: x.size, target: x.target }));
  await server.close();
  rmSync(dir, { recursive: true, force: true });

  const summary = {
    bench: 'rings',
    node: process.version,
    devices,
    importSeconds: round(importSeconds, 1),
    memoryPerDevice: { ...perDevice, goalBytes: 1024 },
    fullRebalance: { sortFloat64Ms: round(sortMs), planMs: mid.planMs, totalMs: mid.totalMs, moves: mid.moves, ratioToSort: round(mid.totalMs / sortMs), goalRatio: 3 },
    incrementalHeartbeatUs: incremental,
    http: { clusterStatusMs: cluster, ringsMs: rings, goalP99Ms: 5 },
    rings: ringSizes,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
