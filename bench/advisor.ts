/**
 * npm run bench:advisor
 *
 * The built-in analyser on the rollout benchmark's releases (bench/releases.ts: 20 good, 20 bad of four kinds,
 * 10,000 simulated devices): each release is run by the rollout simulator (the real controller and gates, a
 * virtual fleet and clock) until it leaves the first ring or halts in it, and the analyser then judges that
 * ring. Figures:
 *   - bad releases whose root cause the analyser names right: the metric (CPU for bad-cpu, timeouts or
 *     offline for bad-crash, battery drain for bad-drain, failures for bad-model) and, for a broken model,
 *     the model (goal: at least 19 of 20);
 *   - good releases it advises to halt or roll back (goal: none);
 *   - beside them, in the same runs, what the deployment gates decided in that ring and whether their reason
 *     names the same cause;
 *   - the time of one analysis of a 100,000-device ring as the advisor runs it: its evidence gathered from the
 *     deployment's executions in memory and the fleet, then judged (median of 5, and of each part; goal: at
 *     most 100 ms).
 * Prints one JSON line.
 */
import { analyseRing } from '../src/domain/analysis.js';
import { causeText, deploymentAdvice } from '../src/domain/advice.js';
import type { DeploymentRecord, Execution, Stage } from '../src/domain/deployment.js';
import { DEFAULT_GATE, DEFAULT_PREFLIGHT } from '../src/domain/deployment.js';
import type { DeviceMetrics } from '../src/domain/metrics.js';
import type { DeploymentView } from '../src/core/rollout-state.js';
import { seededRng } from '../src/domain/random.js';
import { fleetSources } from '../src/advisor/analyser-advice.js';
import type { EvidenceSources } from '../src/advisor/evidence.js';
import { analyseDeployment, limitsOf, ringEvidence } from '../src/advisor/evidence.js';
import type { Scenario } from '../src/sim/rollout-sim.js';
import { simulate } from '../src/sim/rollout-sim.js';
import type { BadKind } from './releases.js';
import { badReleases, goodReleases } from './releases.js';

const DEVICES = Number(process.env.BENCH_ROLLOUT_DEVICES ?? 10_000);
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

interface Row {
  release: string;
  bad: boolean;
  kind: BadKind | null;
  model: string | null;
  gate: { verdict: 'halted' | 'passed' | 'paused' | 'undecided'; cause: string | null; reason: string | null };
  analyser: { verdict: string; decision: string; cause: string | null; right: boolean; ms: number };
}

/** The cause a gate's halt reason names, in the analyser's words. */
function gateCause(reason: string | null): string | null {
  if (!reason) return null;
  if (/ devices \([^)]*\) failed, above/.test(reason)) {
    const model = /: \d+ of \d+ (\S+) devices/.exec(reason);
    return model ? `failures (${model[1]})` : 'failures';
  }
  if (/timed out/.test(reason)) return 'timeouts';
  if (/regressed/.test(reason)) return 'health (which metric not said)';
  return 'other';
}

function right(kind: BadKind, model: string | null, metric: string | null, named: string | null): boolean {
  switch (kind) {
    case 'bad-cpu':
      return metric === 'cpu';
    case 'bad-crash':
      return metric === 'timeouts' || metric === 'offline';
    case 'bad-drain':
      return metric === 'drain';
    case 'bad-model':
      return metric === 'failures' && named === model;
  }
}

async function judge(s: Scenario & { kind?: BadKind }): Promise<Row> {
  let row: Row | null = null;
  const result = await simulate(s, {
    devices: DEVICES,
    stopAfterStage: 0,
    inspect: async ({ deploymentId, controller, fleet, virtual, now }) => {
      const view = await controller.get(deploymentId);
      const t0 = performance.now();
      // The fleet's attributes as the advisor reads them; the metrics and connectivity of the virtual fleet.
      const sources = { ...fleetSources(fleet), metrics: (id: string) => virtual.metrics(id), online: (id: string) => virtual.online(id) };
      const analyses = analyseDeployment(view, sources, now).slice(0, 1);
      const advice = deploymentAdvice(analyses, [], new Map());
      const ms = performance.now() - t0;
      const first = analyses[0];
      const evaluation = view.evaluations.find((e) => e.stage === 0 && (e.verdict === 'fail' || e.verdict === 'pass' || e.verdict === 'insufficient_evidence'));
      const model = s.release.effects?.[0]?.model ?? null;
      const named = first?.rootCause?.groups.find((g) => g.attribute === 'model')?.value ?? null;
      row = {
        release: s.name,
        bad: s.bad,
        kind: s.kind ?? null,
        model,
        gate: {
          verdict: evaluation?.verdict === 'fail' ? 'halted' : evaluation?.verdict === 'pass' ? 'passed' : evaluation ? 'paused' : 'undecided',
          cause: evaluation?.verdict === 'fail' ? gateCause(evaluation.reason) : null,
          reason: evaluation?.reason ?? null,
        },
        analyser: {
          verdict: first?.verdict ?? 'none',
          decision: advice.decision ?? 'none',
          cause: first ? causeText(first) : null,
          right: s.kind !== undefined && right(s.kind, model, first?.rootCause?.metric ?? null, named),
          ms: round(ms, 1),
        },
      };
    },
  });
  if (!row) throw new Error(`${s.name}: the simulation ended without the deployment (${result.outcome})`);
  return row;
}

/**
 * A deployment of one ring of `n` devices as the advisor finds it in memory: half of them updated by a release
 * that adds 30 CPU points on a fifth of them (1% failed), their executions holding their readings before and
 * after; the other half queued. The fleet's facts, metrics and connectivity come from maps, as the fleet's
 * registry answers them.
 */
function largeDeployment(n: number): { view: DeploymentView; sources: EvidenceSources } {
  const rng = seededRng(42);
  const models = ['latitude-7440', 'x1-carbon', 't14', 'elitebook-840', 'macbook-air', 'macbook-pro', 'surface-7', 'p1'];
  const facts = new Map<string, { model: string; site: string; osName: string }>();
  const metrics = new Map<string, DeviceMetrics>();
  const offline = new Set<string>();
  const executions: Execution[] = [];
  for (let i = 0; i < n; i++) {
    const id = `d-${i}`;
    const charging = rng() < 0.4;
    const read = (cpu: number): DeviceMetrics => ({ battery: 30 + rng() * 70, charging, cpu: 10 + rng() * 40 + cpu, memory: 30 + rng() * 40, disk: 10 + rng() * 70, drain: charging ? 0 : 3 + rng() * 7, cpuTrend: 0 });
    facts.set(id, { model: models[i % models.length] as string, site: `site-${i % 12}`, osName: i % 3 === 0 ? 'macos' : 'windows' });
    metrics.set(id, read(0));
    if (rng() < 0.02) offline.add(id);
    const updated = i % 2 === 1;
    const failed = updated && rng() < 0.01;
    executions.push({
      deviceId: id, stage: 0, state: !updated ? 'queued' : failed ? 'failed' : 'succeeded', taskId: updated ? `t-${i}` : null, reason: failed ? 'install failed' : null,
      baseline: updated ? read(0) : null, observed: updated && !failed ? read(i % 5 === 1 ? 30 : 0) : null, cpuDelta: null, memoryDelta: null, drainDelta: null,
      rollbackTaskId: null, queuedAt: 0, startedAt: updated ? 1000 : null, endedAt: updated ? 2000 : null, observedAt: updated && !failed ? 3000 : null,
    });
  }
  const stage: Stage = { ring: 'prod', rate: { maxPerMinute: 1000 }, soakMs: 0, gate: DEFAULT_GATE, preflight: DEFAULT_PREFLIGHT };
  const deployment: DeploymentRecord = {
    seq: 1, id: 'dep-large', kind: 'rollout', status: 'in_progress', stage: 0, phase: 'soaking', soakUntil: null, gateResetAt: 0, haltReason: null, detail: {},
    spec: { name: 'large', payload: { type: 'deploy', params: {} }, stages: [stage], maintenanceWindows: [], autoRollback: false, rollbackPayload: { type: 'deploy', params: {} } },
    createdAt: 0, startedAt: 0, endedAt: null,
  };
  const sources: EvidenceSources = {
    facts: (id) => facts.get(id) ?? null,
    metrics: (id) => metrics.get(id) ?? null,
    online: (id) => !offline.has(id),
  };
  return { view: { deployment, executions, evaluations: [] }, sources };
}

async function main(): Promise<void> {
  const wall = performance.now();
  const rows: Row[] = [];
  for (const s of [...goodReleases(), ...badReleases()]) rows.push(await judge(s));
  const good = rows.filter((r) => !r.bad);
  const bad = rows.filter((r) => r.bad);
  const harsh = (d: string): boolean => d === 'halt' || d === 'rollback';

  // One analysis of a 100,000-device ring as the advisor runs it: the ring's evidence gathered from the
  // deployment's executions and the fleet (ringEvidence), then judged (analyseRing). Median of five, each part.
  const large = largeDeployment(100_000);
  const gather: number[] = [];
  const judgeMs: number[] = [];
  const total: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const evidence = ringEvidence(large.view, 0, large.sources, 10_000);
    const t1 = performance.now();
    analyseRing(evidence, limitsOf(DEFAULT_GATE));
    const t2 = performance.now();
    gather.push(t1 - t0);
    judgeMs.push(t2 - t1);
    total.push(t2 - t0);
  }
  const median = (xs: number[]): number => round([...xs].sort((a, b) => a - b)[2] as number, 1);
  const analysisMs = median(total);

  const rightCauses = bad.filter((r) => r.analyser.right).length;
  const gateRight = bad.filter((r) => r.gate.verdict === 'halted' && r.kind !== null && right(r.kind, r.model, r.gate.cause?.split(' ')[0] ?? null, /\((\S+)\)/.exec(r.gate.cause ?? '')?.[1] ?? null)).length;
  const out = {
    bench: 'advisor',
    node: process.version,
    fleet: DEVICES,
    releases: { good: good.length, bad: bad.length },
    analyser: {
      rightRootCause: rightCauses,
      haltOrRollbackOnGood: good.filter((r) => harsh(r.analyser.decision)).length,
      decisionsOnBad: count(bad.map((r) => r.analyser.decision)),
      decisionsOnGood: count(good.map((r) => r.analyser.decision)),
      meanAnalysisMs: round(rows.reduce((s, r) => s + r.analyser.ms, 0) / rows.length, 1),
    },
    gates: {
      haltedBad: bad.filter((r) => r.gate.verdict === 'halted').length,
      haltedGood: good.filter((r) => r.gate.verdict === 'halted').length,
      causeNamedRight: gateRight,
      verdictsOnBad: count(bad.map((r) => r.gate.verdict)),
      verdictsOnGood: count(good.map((r) => r.gate.verdict)),
    },
    analysisAt100kDevicesMs: analysisMs,
    analysisAt100kParts: { gatherMs: median(gather), judgeMs: median(judgeMs) },
    goals: { rootCauseAtLeast19: rightCauses >= 19, noHaltOnGood: good.every((r) => !harsh(r.analyser.decision)), analysisAtMost100Ms: analysisMs <= 100 },
    wrong: rows.filter((r) => (r.bad && !r.analyser.right) || (!r.bad && harsh(r.analyser.decision))).map((r) => ({ release: r.release, analyser: r.analyser, gate: r.gate })),
    perRelease: rows.map((r) => ({ release: r.release, analyser: `${r.analyser.decision}: ${r.analyser.cause ?? '-'}`, gate: `${r.gate.verdict}: ${r.gate.cause ?? '-'}` })),
    wallSeconds: round((performance.now() - wall) / 1000, 1),
  };
  console.log(JSON.stringify(out));
}

function count(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

await main();
