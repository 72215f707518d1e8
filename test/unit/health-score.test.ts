import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HealthInputs } from '../../src/domain/health-score.js';
import { badness, DEFAULT_HEALTH_SCORE_CONFIG, explainHealth, healthScore, mergeHealthScoreConfig } from '../../src/domain/health-score.js';

const base: HealthInputs = { battery: 90, charging: true, cpu: 20, memory: 40, disk: 50, drain: 0, cpuTrend: 0, impact: 0 };
const C = DEFAULT_HEALTH_SCORE_CONFIG;

describe('health score', () => {
  it.each<[string, Partial<HealthInputs>, number]>([
    ['an idle device on power', {}, 100],
    ['not charging, full battery', { charging: false, battery: 100 }, 95],
    ['not charging, battery 45% (half way from 80 to 10)', { charging: false, battery: 45 }, 82.5],
    ['not charging, battery 10%', { charging: false, battery: 10 }, 70],
    ['charging at 5% battery: the level does not count', { charging: true, battery: 5 }, 100],
    ['cpu 95%', { cpu: 95 }, 80],
    ['cpu 62.5% (half way from 30 to 95)', { cpu: 62.5 }, 90],
    ['memory 95%', { memory: 95 }, 80],
    ['disk 98%', { disk: 98 }, 90],
    ['draining 40%/h on battery', { charging: false, battery: 100, drain: 40 }, 90],
    ['draining 40%/h while charging does not count', { drain: 40 }, 100],
    ['no battery at all: on mains power, like charging', { battery: null, charging: null, drain: 40 }, 100],
    ['cpu rising 60 points/h', { cpuTrend: 60 }, 95],
    ['cpu falling does not count', { cpuTrend: -60 }, 100],
    ['hurt by every recent deployment', { impact: 1 }, 90],
    ['bad in every way', { charging: false, battery: 0, cpu: 100, memory: 100, disk: 100, drain: 100, cpuTrend: 100, impact: 1 }, 0],
  ])('%s → %d', (_name, change, expected) => {
    const x = { ...base, ...change };
    expect(healthScore(x, C)).toBe(expected);
    const explained = explainHealth(x, C);
    expect(explained.score).toBe(expected);
    // The contributions account for every point taken off.
    const total = explained.factors.reduce((a, f) => a + f.contribution, 0);
    expect(100 + total).toBeCloseTo(expected, 1);
  });

  it('badness runs from 0 at good to 1 at bad in either direction', () => {
    expect(badness(80, { good: 80, bad: 10 })).toBe(0);
    expect(badness(90, { good: 80, bad: 10 })).toBe(0);
    expect(badness(10, { good: 80, bad: 10 })).toBe(1);
    expect(badness(45, { good: 80, bad: 10 })).toBe(0.5);
    expect(badness(30, { good: 30, bad: 95 })).toBe(0);
    expect(badness(200, { good: 30, bad: 95 })).toBe(1);
    expect(badness(Number.NaN, { good: 30, bad: 95 })).toBe(0);
  });

  it('stays within 0..100 and never rises when a metric gets worse', () => {
    const inputs = fc.record({
      battery: fc.double({ min: 0, max: 100, noNaN: true }),
      charging: fc.boolean(),
      cpu: fc.double({ min: 0, max: 100, noNaN: true }),
      memory: fc.double({ min: 0, max: 100, noNaN: true }),
      disk: fc.double({ min: 0, max: 100, noNaN: true }),
      drain: fc.double({ min: -50, max: 100, noNaN: true }),
      cpuTrend: fc.double({ min: -100, max: 100, noNaN: true }),
      impact: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    fc.assert(
      fc.property(inputs, fc.double({ min: 0, max: 50, noNaN: true }), (x, d) => {
        const s = healthScore(x, C);
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s).toBeLessThanOrEqual(100);
        expect(healthScore({ ...x, cpu: x.cpu + d }, C)).toBeLessThanOrEqual(s);
        expect(healthScore({ ...x, memory: x.memory + d }, C)).toBeLessThanOrEqual(s);
        expect(healthScore({ ...x, battery: Math.max(0, x.battery - d) }, C)).toBeLessThanOrEqual(s);
      }),
    );
  });

  it('weights and thresholds are configuration, checked when merged', () => {
    const { config, errors } = mergeHealthScoreConfig({ weights: { cpu: 50 }, thresholds: { cpu: { bad: 80 } } });
    expect(errors).toEqual([]);
    expect(healthScore({ ...base, cpu: 80 }, config)).toBe(50);
    const bad = mergeHealthScoreConfig({ weights: { cpu: -1, wifi: 3 }, thresholds: { disk: { good: 90, bad: 90 } } });
    expect(bad.errors).toEqual([
      'weights.cpu: must be a number from 0 to 100',
      'weights.wifi: unknown factor; expected one of battery, charging, cpu, memory, disk, batteryDrain, cpuTrend, impact',
      'thresholds.disk: good and bad must differ',
    ]);
  });
});
