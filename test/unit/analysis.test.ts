import { describe, expect, it } from 'vitest';
import type { AnalysisLimits, RingEvidence, RingRows, UpdatedDevice, WaitingDevice } from '../../src/domain/analysis.js';
import { analyseRing, EvidenceBuilder, evidenceOf } from '../../src/domain/analysis.js';
import type { DeviceMetrics } from '../../src/domain/metrics.js';
import type { Rng } from '../../src/domain/random.js';
import { seededRng } from '../../src/domain/random.js';

const LIMITS: AnalysisLimits = { failures: 0.05, timeouts: 0.05, offline: 0.05, cpu: 20, memory: 15, drain: 6, disk: 5, regressedShare: 0.1 };
const MODELS = ['latitude-7440', 'x1-carbon', 't14', 'elitebook-840', 'macbook-air'];

function gauss(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(Math.max(1e-12, rng()))) * Math.cos(2 * Math.PI * rng());
}

interface Release {
  /** Added to an affected device's readings after its update. */
  cpu?: number;
  drain?: number;
  /** Which devices it affects (all by default). */
  affects?: (i: number, model: string) => boolean;
  /** Probability an affected device's update fails / times out (offline after). */
  fail?: number;
  crash?: number;
}

/** A ring of devices with their own baselines and noise on every reading, `updated` of them on the release. */
function ring(seed: number, updated: number, waiting: number, release: Release, models: readonly string[] = MODELS): RingEvidence {
  return evidenceOf(rows(seed, updated, waiting, release, models));
}

/** The same ring as rows, one object a device. */
function rows(seed: number, updated: number, waiting: number, release: Release, models: readonly string[] = MODELS): RingRows {
  const rng = seededRng(seed);
  const up: UpdatedDevice[] = [];
  const wait: WaitingDevice[] = [];
  for (let i = 0; i < updated + waiting; i++) {
    const model = models[i % models.length] as string;
    const charging = rng() < 0.4;
    const base = { cpu: 10 + rng() * 40, memory: 30 + rng() * 40, battery: 30 + rng() * 70, disk: 10 + rng() * 70, drain: charging ? 0 : 3 + rng() * 7 };
    const read = (effect: { cpu: number; drain: number }): DeviceMetrics => ({
      battery: base.battery, charging, cpu: Math.min(100, Math.max(0, base.cpu + 6 * gauss(rng) + effect.cpu)), memory: base.memory + 3 * gauss(rng),
      disk: base.disk, drain: charging ? 0 : Math.max(0, base.drain + 1.5 * gauss(rng) + effect.drain), cpuTrend: 0,
    });
    const facts = { id: `d-${i}`, model, site: i % 2 === 0 ? 'berlin' : 'austin', osName: 'windows' };
    if (i >= updated) {
      wait.push({ ...facts, metrics: read({ cpu: 0, drain: 0 }), online: rng() > 0.02 });
      continue;
    }
    const hit = release.affects ? release.affects(i, model) : true;
    const effect = hit ? { cpu: release.cpu ?? 0, drain: release.drain ?? 0 } : { cpu: 0, drain: 0 };
    const baseline = read({ cpu: 0, drain: 0 });
    if (hit && rng() < (release.crash ?? 0)) {
      up.push({ ...facts, outcome: 'timed_out', offlineAfter: true, baseline, observed: null });
    } else if ((hit && rng() < (release.fail ?? 0)) || rng() < 0.005) {
      up.push({ ...facts, outcome: 'failed', offlineAfter: false, baseline, observed: null });
    } else {
      up.push({ ...facts, outcome: 'succeeded', offlineAfter: false, baseline, observed: read(effect) });
    }
  }
  return { ring: 'canary', updated: up, waiting: wait };
}

describe('the analyser on one ring', () => {
  it('gathers the same evidence a device at a time, its columns growing, as from all the rows at once', () => {
    const r = rows(5, 150, 200, { cpu: 40, fail: 0.05, affects: (i) => i % 3 === 0 });
    for (const capacity of [0, 1]) {
      const b = new EvidenceBuilder(r.ring, capacity);
      for (const d of r.updated) b.addUpdated(d, d.outcome, d.offlineAfter, d.baseline, d.observed);
      for (const d of r.waiting) b.addWaiting(d.metrics, d.online);
      const grown = b.build();
      expect(grown.updated.count).toBe(150);
      expect(grown.waiting.count).toBe(200);
      expect(grown.updated.model.values).toEqual([...MODELS]);
      expect(grown).toEqual(evidenceOf(r));
      const a = analyseRing(grown, LIMITS);
      expect(a.verdict).toBe('fail');
      expect(a).toEqual(analyseRing(evidenceOf(r), LIMITS));
    }
  });

  it('passes a good release: small shifts on every device, a few failures', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const a = analyseRing(ring(seed, 200, 300, { cpu: 4, drain: 1.5 }), LIMITS);
      expect(a.verdict, `seed ${seed}: ${a.reasons.join(' | ')}`).toBe('pass');
      expect(a.rootCause).toBeNull();
      expect(a.score).toBe(100);
    }
  });

  it('fails a CPU regression on a third of the devices, and names CPU', () => {
    const a = analyseRing(ring(3, 120, 380, { cpu: 40, affects: (i) => i % 3 === 0 }), LIMITS);
    expect(a.verdict).toBe('fail');
    expect(a.metrics.find((m) => m.metric === 'cpu')).toMatchObject({ rating: 'high', critical: false });
    expect(a.rootCause?.metric).toBe('cpu');
    expect(a.reasons[0]).toMatch(/^CPU \+\d+(\.\d)? points against baseline on \d+ devices .*rose by more than 20 points, p < 0\.001/);
    // The devices most impacted in CPU are the affected ones (failed updates, if any, rank first).
    expect(a.impacted.length).toBe(20);
    const byCpu = a.impacted.filter((d) => d.metric === 'cpu');
    expect(byCpu.length).toBeGreaterThanOrEqual(10);
    for (const d of byCpu.slice(0, 10)) expect(Number(d.deviceId.slice(2)) % 3).toBe(0);
  });

  it('names the model that carries a battery drain regression, with its share', () => {
    const a = analyseRing(ring(4, 300, 200, { drain: 10, affects: (_i, model) => model === 'x1-carbon' }), LIMITS);
    expect(a.verdict).toBe('fail');
    expect(a.rootCause?.metric).toBe('drain');
    expect(a.rootCause?.groups[0]).toMatchObject({ attribute: 'model', value: 'x1-carbon' });
    expect(a.rootCause?.groups[0]?.share).toBeGreaterThan(0.9);
    expect(a.reasons[0]).toMatch(/^battery drain \+\d+(\.\d)? %\/h against baseline on \d+ devices .*p < 0\.001; \d+(\.\d)?% of them x1-carbon$/);
  });

  it('names the model that carries the failures', () => {
    const a = analyseRing(ring(5, 100, 400, { fail: 0.9, affects: (_i, model) => model === 't14' }), LIMITS);
    expect(a.metrics.find((m) => m.metric === 'failures')?.rating).toBe('high');
    expect(a.verdict).toBe('fail');
    expect(a.rootCause?.metric).toBe('failures');
    expect(a.rootCause?.groups[0]).toMatchObject({ attribute: 'model', value: 't14' });
    expect(a.rootCause?.reason).toMatch(/^failures: \d+ of 100 devices \(\d+%\) failed, against 0% of 400 in the baseline; limit 5%, p < 0\.001; \d+(\.\d)?% of them t14$/);
  });

  it('finds one broken model that the whole ring dilutes below the limit', () => {
    const models = Array.from({ length: 12 }, (_, i) => `model-${i}`);
    const a = analyseRing(ring(5, 100, 400, { fail: 0.9, affects: (_i, model) => model === 'model-7' }, models), LIMITS);
    const failures = a.metrics.find((m) => m.metric === 'failures');
    // The ring's failure rate alone (about 8%) is not above the 5% limit at 99% confidence; the model's is.
    expect(failures?.release).toBeLessThan(0.12);
    expect(failures?.rating).toBe('high');
    expect(a.verdict).toBe('fail');
    expect(a.rootCause?.groups[0]).toMatchObject({ attribute: 'model', value: 'model-7' });
    expect(a.rootCause?.reason).toMatch(/^failures: \d+ of \d+ model-7 devices \(\d+(\.\d)?%\) failed, against \d+ of \d+ other devices/);
  });

  it('fails updates that time out and leave the device offline: critical metrics', () => {
    const a = analyseRing(ring(6, 100, 400, { crash: 0.25 }), LIMITS);
    expect(a.verdict).toBe('fail');
    expect(a.metrics.find((m) => m.metric === 'timeouts')?.rating).toBe('high');
    expect(a.metrics.find((m) => m.metric === 'offline')?.rating).toBe('high');
    expect(['timeouts', 'offline']).toContain(a.rootCause?.metric);
    expect(a.impacted[0]).toMatchObject({ score: 10, metric: 'timeouts' });
  });

  it('does not pass a ring whose few updates all failed: above the limit but too few to tell is undecided, not a pass', () => {
    // Two updates, both failed, and no device left waiting: 100% against a 5% limit, yet no test is significant.
    const up: UpdatedDevice[] = ['a', 'b'].map((id) => ({ id, model: 'x1-carbon', site: null, osName: null, outcome: 'failed', offlineAfter: false, baseline: null, observed: null }));
    const a = analyseRing(evidenceOf({ ring: 'canary', updated: up, waiting: [] }), LIMITS);
    const failures = a.metrics.find((m) => m.metric === 'failures');
    expect(failures).toMatchObject({ rating: 'inconclusive', release: 1 });
    expect(failures?.reason).toMatch(/^failures: 2 of 2 devices \(100%\) failed, above the 5% limit, but too few to tell \(p = 0\.\d+; 0% of 2 in the baseline\)$/);
    expect(a.verdict).toBe('inconclusive');
    // A rate under the limit with as few devices still passes: nothing says the release is worse.
    const ok = analyseRing(evidenceOf({ ring: 'canary', updated: up.map((d) => ({ ...d, outcome: 'succeeded' as const })), waiting: [] }), LIMITS);
    expect(ok.metrics.find((m) => m.metric === 'failures')?.rating).toBe('pass');
  });

  it('is inconclusive with too few devices, and says how many it had', () => {
    const a = analyseRing(ring(7, 1, 1, { cpu: 50 }), LIMITS);
    expect(a.verdict).toBe('inconclusive');
    expect(a.metrics.every((m) => m.rating === 'inconclusive')).toBe(true);
    expect(a.reasons).toContain('CPU: too few devices to judge (1 on the release, 2 in the baseline; 5 each needed)');
    expect(a.reasons).toContain('failures: too few devices to judge (1 on the release, 1 in the baseline; 2 each needed)');
    // Events need fewer: two updates that both failed, against a ring of zeros, are already significant.
    const two = analyseRing(ring(7, 2, 20, { fail: 1 }), LIMITS);
    expect(two.metrics.find((m) => m.metric === 'failures')?.rating).toBe('high');
  });

  it('rates an improvement low, and passes it', () => {
    const a = analyseRing(ring(8, 200, 300, { cpu: -35, affects: (i) => i % 2 === 0 }), LIMITS);
    expect(a.metrics.find((m) => m.metric === 'cpu')?.rating).toBe('low');
    expect(a.verdict).toBe('pass');
  });
});
