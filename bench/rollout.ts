/**
 * npm run bench:rollout
 *
 * Deployment safety: 20 good and 20 bad releases on a 10,000-device simulated
 * fleet (the rollout simulator: the real controller and gates, a virtual fleet
 * and clock), each run twice in the same process:
 *   - with our gates (each device against its own baseline, per-model failures,
 *     stalled updates, confidence bounds);
 *   - with a fixed-threshold baseline in the manner of AWS IoT Jobs
 *     `abortConfig`: abort when more than 10% of at least 10 executed devices
 *     failed (or timed out); health is not looked at.
 * Same plan otherwise (rates, soaks). Figures: for bad releases, how many were
 * halted and the blast radius (share of the fleet that received the release
 * before the halt), mean and max; for good releases, false halts and the
 * rollout duration (virtual time).
 *
 * Then rollout dispatch on the real path: an orchestrator (SQLite file, writer
 * thread) with 3,000 simulated agents, one deployment whose stages have no rate
 * limit; executions started per second, each start committed (its task and its
 * execution record).
 *
 * Prints one JSON line. BENCH_ROLLOUT_DEVICES changes the fleet size.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Orchestrator } from '../src/core/orchestrator.js';
import { DEFAULT_GATE, DEFAULT_PREFLIGHT, fixedThresholdGate } from '../src/domain/deployment.js';
import type { SimResult } from '../src/sim/rollout-sim.js';
import { simulate } from '../src/sim/rollout-sim.js';
import { badReleases, goodReleases } from './releases.js';
import { SimulatedFleet } from '../src/sim/simulated-fleet.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { systemClock } from '../src/util/clock.js';
import { silentLogger } from '../src/util/logger.js';
import { TASK_TYPES } from '../src/domain/types.js';

const DEVICES = Number(process.env.BENCH_ROLLOUT_DEVICES ?? 10_000);
const AGENTS = Number(process.env.BENCH_DISPATCH_AGENTS ?? 3000);
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

interface Summary {
  badHalted: number;
  bad: number;
  blastRadius: { meanShare: number; maxShare: number; maxDevices: number };
  falseHalts: number;
  good: number;
  goodRolloutMinutes: { mean: number; max: number };
  badTimeToHaltMinutes: { mean: number; max: number };
}

function summarize(results: SimResult[]): Summary {
  const bad = results.filter((r) => r.bad);
  const good = results.filter((r) => !r.bad);
  const halted = bad.filter((r) => r.outcome === 'halted');
  // A bad release that was never halted exposed everyone it reached.
  const shares = bad.map((r) => r.exposedShare);
  const completedGood = good.filter((r) => r.outcome === 'completed');
  const mean = (xs: number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
  return {
    badHalted: halted.length,
    bad: bad.length,
    blastRadius: { meanShare: round(mean(shares), 4), maxShare: round(Math.max(...shares), 4), maxDevices: Math.max(...bad.map((r) => r.exposed)) },
    falseHalts: good.filter((r) => r.falseHalt).length,
    good: good.length,
    goodRolloutMinutes: { mean: round(mean(completedGood.map((r) => r.virtualMs / 60_000)), 1), max: round(Math.max(0, ...completedGood.map((r) => r.virtualMs / 60_000)), 1) },
    badTimeToHaltMinutes: { mean: round(mean(halted.map((r) => r.virtualMs / 60_000)), 1), max: round(Math.max(0, ...halted.map((r) => r.virtualMs / 60_000)), 1) },
  };
}

async function dispatchRate(): Promise<{ agents: number; executions: number; seconds: number; perSecond: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-rollout-'));
  const store = new SqliteStore(join(dir, 'orchestrator.db'), { writer: 'thread' });
  const launcher = new SimulatedFleet({ clock: systemClock, rng: Math.random, heartbeatIntervalMs: 30_000, capabilities: [...TASK_TYPES] });
  const orchestrator = new Orchestrator({
    store,
    clock: systemClock,
    rng: Math.random,
    launcher,
    log: silentLogger,
    settings: { heartbeatIntervalMs: 30_000, agentTimeoutMs: 120_000, taskTimeoutMs: 60_000, taskRetryLimit: 0, rebalanceIntervalMs: 3_600_000 },
    deploymentTickMs: 3_600_000,
  });
  await orchestrator.start();
  for (let i = 0; i < AGENTS; i += 100) await Promise.all(Array.from({ length: Math.min(100, AGENTS - i) }, () => orchestrator.agents.spawn()));
  while ((orchestrator.fleet.ringCounts().unassigned ?? 0) > 0) await new Promise((r) => setTimeout(r, 50));
  // Pre-flight needs charge: the agents' batteries are whatever the simulation drew, so the bench asks for none.
  const stages = orchestrator.fleet.ringNames().map((ring) => ({
    ring,
    rate: { maxPerMinute: 1_000_000 },
    soakMs: 0,
    gate: { ...DEFAULT_GATE, observeMs: 0 },
    preflight: { ...DEFAULT_PREFLIGHT, minBattery: 0, minFreeDisk: 0 },
  }));
  const controller = orchestrator.deployments;
  const d = await controller.create(
    { name: 'dispatch', payload: { type: 'health_check', params: {} }, stages, maintenanceWindows: [], autoRollback: false, rollbackPayload: { type: 'health_check', params: {} } },
    { start: true },
  );
  // The largest ring (prod, half the fleet) is the measure: run the earlier stages first.
  while ((await controller.get(d.id)).deployment.stage < stages.length - 1) {
    await controller.tick();
    await new Promise((r) => setTimeout(r, 20));
  }
  const before = (await controller.get(d.id)).executions.filter((e) => e.startedAt !== null).length;
  const t0 = performance.now();
  await controller.tick();
  await controller.flush();
  const seconds = (performance.now() - t0) / 1000;
  const after = (await controller.get(d.id)).executions.filter((e) => e.startedAt !== null).length;
  await orchestrator.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  const executions = after - before;
  return { agents: AGENTS, executions, seconds: round(seconds, 3), perSecond: Math.round(executions / seconds) };
}

async function main(): Promise<void> {
  const scenarios = [...goodReleases(), ...badReleases()];
  const ours: SimResult[] = [];
  const baseline: SimResult[] = [];
  const t0 = performance.now();
  for (const [i, sc] of scenarios.entries()) {
    ours.push(await simulate(sc, { devices: DEVICES }));
    baseline.push(await simulate(sc, { devices: DEVICES, gate: fixedThresholdGate(0.1, 10) }));
    const o = ours.at(-1) as SimResult;
    const b = baseline.at(-1) as SimResult;
    process.stderr.write(`  [${i + 1}/${scenarios.length}] ${sc.name}: ours ${o.outcome} (${o.exposed} exposed) · baseline ${b.outcome} (${b.exposed} exposed)\n`);
  }
  const simSeconds = (performance.now() - t0) / 1000;
  const dispatch = await dispatchRate();
  process.stderr.write(`  dispatch: ${JSON.stringify(dispatch)}\n`);
  const o = summarize(ours);
  const b = summarize(baseline);
  const summary = {
    bench: 'rollout',
    node: process.version,
    fleet: DEVICES,
    releases: { good: 20, bad: 20 },
    ours: o,
    baseline: { rule: 'abort when more than 10% of at least 10 executed devices failed or timed out (AWS IoT Jobs abortConfig)', ...b },
    goals: {
      everyBadHalted: o.badHalted === o.bad,
      blastRadiusAtMost1Percent: o.blastRadius.maxShare <= 0.01,
      zeroFalseHalts: o.falseHalts === 0,
      atLeastAsGoodAsBaseline: o.badHalted >= b.badHalted && o.blastRadius.maxShare <= b.blastRadius.maxShare && o.falseHalts <= b.falseHalts,
      dispatchAtLeast1000PerSecond: dispatch.perSecond >= 1000,
    },
    dispatch,
    perRelease: scenarios.map((sc, i) => ({
      name: sc.name,
      ours: { outcome: ours[i]?.outcome, exposed: ours[i]?.exposed, minutes: round((ours[i]?.virtualMs ?? 0) / 60_000, 1) },
      baseline: { outcome: baseline[i]?.outcome, exposed: baseline[i]?.exposed, minutes: round((baseline[i]?.virtualMs ?? 0) / 60_000, 1) },
    })),
    simulationSeconds: round(simSeconds, 1),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
