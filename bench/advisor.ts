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
 *   - the time of one analysis of a 100,000-device ring (median of 5; goal: at most 100 ms).
 * Prints one JSON line.
 */
import type { RingEvidence, UpdatedDevice, WaitingDevice } from '../src/domain/analysis.js';
import { analyseRing } from '../src/domain/analysis.js';
import { causeText, deploymentAdvice } from '../src/domain/advice.js';
import { DEFAULT_GATE } from '../src/domain/deployment.js';
import { seededRng } from '../src/domain/random.js';
import { fleetSources } from '../src/advisor/analyser-advice.js';
import { analyseDeployment, limitsOf } from '../src/advisor/evidence.js';
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

/** A ring of `n` devices, half of them updated by a release that adds CPU on a fifth of them. */
function largeRing(n: number): RingEvidence {
  const rng = seededRng(42);
  const updated: UpdatedDevice[] = [];
  const waiting: WaitingDevice[] = [];
  const models = ['latitude-7440', 'x1-carbon', 't14', 'elitebook-840', 'macbook-air', 'macbook-pro', 'surface-7', 'p1'];
  for (let i = 0; i < n; i++) {
    const charging = rng() < 0.4;
    const read = (cpu: number) => ({ battery: 30 + rng() * 70, charging, cpu: 10 + rng() * 40 + cpu, memory: 30 + rng() * 40, disk: 10 + rng() * 70, drain: charging ? 0 : 3 + rng() * 7, cpuTrend: 0 });
    const facts = { id: `d-${i}`, model: models[i % models.length] as string, site: `site-${i % 12}`, osName: i % 3 === 0 ? 'macos' : 'windows' };
    if (i % 2 === 0) waiting.push({ ...facts, metrics: read(0), online: rng() > 0.02 });
    else updated.push({ ...facts, outcome: rng() < 0.01 ? 'failed' : 'succeeded', offlineAfter: false, baseline: read(0), observed: read(i % 5 === 1 ? 30 : 0) });
  }
  return { ring: 'prod', updated, waiting };
}

async function main(): Promise<void> {
  const wall = performance.now();
  const rows: Row[] = [];
  for (const s of [...goodReleases(), ...badReleases()]) rows.push(await judge(s));
  const good = rows.filter((r) => !r.bad);
  const bad = rows.filter((r) => r.bad);
  const harsh = (d: string): boolean => d === 'halt' || d === 'rollback';

  const ring = largeRing(100_000);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    analyseRing(ring, limitsOf(DEFAULT_GATE));
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const analysisMs = round(times[2] as number, 1);

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
