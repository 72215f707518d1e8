import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { activityBurst, affectedCount, deploymentImpact, deploymentRecovery, recoveredCount } from '../../src/domain/impact.js';
import { applyAdjustments } from '../../src/domain/metrics.js';
import { seededRng } from '../../src/domain/random.js';
import type { DeviceMetrics } from '../../src/domain/types.js';

const metricsArb = fc.record({
  battery_level: fc.double({ min: 0, max: 100, noNaN: true }),
  battery_charging: fc.boolean(),
  cpu_usage: fc.double({ min: 5, max: 95, noNaN: true }),
  memory_usage: fc.double({ min: 20, max: 90, noNaN: true }),
  disk_usage: fc.double({ min: 0, max: 95, noNaN: true }),
});

describe('applyAdjustments', () => {
  const m: DeviceMetrics = { battery_level: 40, battery_charging: false, cpu_usage: 50, memory_usage: 60, disk_usage: 30 };

  it('adds, scales and clamps', () => {
    const out = applyAdjustments(m, [
      { metric: 'cpu_usage', op: 'add', value: 60, max: 95 },
      { metric: 'memory_usage', op: 'scale', value: 0.5, min: 20 },
      { metric: 'battery_level', op: 'add', value: -50, min: 5 },
    ]);
    expect(out).toMatchObject({ cpu_usage: 95, memory_usage: 30, battery_level: 5, disk_usage: 30 });
  });

  it('skips battery changes while charging and above onlyBelow', () => {
    expect(applyAdjustments({ ...m, battery_charging: true }, [{ metric: 'battery_level', op: 'add', value: -10, unlessCharging: true }]).battery_level).toBe(40);
    expect(applyAdjustments({ ...m, battery_level: 60 }, [{ metric: 'battery_level', op: 'add', value: 5, onlyBelow: 50 }]).battery_level).toBe(60);
    expect(applyAdjustments(m, [{ metric: 'battery_level', op: 'add', value: 5, onlyBelow: 50 }]).battery_level).toBe(45);
  });
});

describe('the seed deployment dynamics', () => {
  it('impact raises CPU by 10–50 (cap 95) and memory by 10–30 (cap 90); battery drops 5–15 (floor 5) unless charging', () => {
    fc.assert(
      fc.property(metricsArb, fc.integer(), (m, seed) => {
        const out = applyAdjustments(m, deploymentImpact(seededRng(seed)));
        expect(out.cpu_usage).toBeCloseTo(Math.min(95, Math.max(out.cpu_usage, m.cpu_usage + 10)), 1);
        expect(out.cpu_usage).toBeLessThanOrEqual(Math.min(95, m.cpu_usage + 50) + 0.01);
        expect(out.memory_usage).toBeLessThanOrEqual(Math.min(90, m.memory_usage + 30) + 0.01);
        expect(out.memory_usage).toBeGreaterThanOrEqual(Math.min(90, m.memory_usage + 10) - 0.01);
        if (m.battery_charging) expect(out.battery_level).toBeCloseTo(m.battery_level, 1);
        else {
          expect(out.battery_level).toBeGreaterThanOrEqual(Math.min(5, m.battery_level) - 0.01);
          expect(out.battery_level).toBeLessThanOrEqual(Math.max(5, m.battery_level - 5) + 0.01);
        }
      }),
    );
  });

  it('recovery lowers CPU by 30–70% (floor 5) and memory by 10–30% (floor 20)', () => {
    fc.assert(
      fc.property(metricsArb, fc.integer(), (m, seed) => {
        const out = applyAdjustments(m, deploymentRecovery(seededRng(seed)));
        expect(out.cpu_usage).toBeLessThanOrEqual(Math.max(5, m.cpu_usage * 0.7) + 0.01);
        expect(out.cpu_usage).toBeGreaterThanOrEqual(Math.max(5, m.cpu_usage * 0.3) - 0.01);
        expect(out.memory_usage).toBeLessThanOrEqual(Math.max(20, m.memory_usage * 0.9) + 0.01);
        expect(out.memory_usage).toBeGreaterThanOrEqual(Math.max(20, m.memory_usage * 0.7) - 0.01);
        if (m.battery_charging || m.battery_level >= 50) expect(out.battery_level).toBeCloseTo(m.battery_level, 1);
        else expect(out.battery_level).toBeGreaterThanOrEqual(m.battery_level + 2 - 0.01);
      }),
    );
  });

  it('activity stays within the drift bounds', () => {
    fc.assert(
      fc.property(metricsArb, fc.integer(), (m, seed) => {
        const out = applyAdjustments(m, activityBurst(seededRng(seed)));
        expect(out.cpu_usage).toBeGreaterThanOrEqual(5);
        expect(out.cpu_usage).toBeLessThanOrEqual(95);
        expect(Math.abs(out.cpu_usage - m.cpu_usage)).toBeLessThanOrEqual(10.01);
        expect(out.memory_usage).toBeGreaterThanOrEqual(20);
        expect(out.memory_usage).toBeLessThanOrEqual(90);
      }),
    );
  });

  it('affects max(1, floor(n × 0.3..0.5)) agents and recovers max(1, floor(n × 0.4..0.8))', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer(), (n, seed) => {
        const a = affectedCount(seededRng(seed), n);
        const r = recoveredCount(seededRng(seed), n);
        if (n === 0) {
          expect(a).toBe(0);
          expect(r).toBe(0);
          return;
        }
        expect(a).toBeGreaterThanOrEqual(Math.max(1, Math.floor(n * 0.3)));
        expect(a).toBeLessThanOrEqual(Math.max(1, Math.floor(n * 0.5)));
        expect(r).toBeGreaterThanOrEqual(Math.max(1, Math.floor(n * 0.4)));
        expect(r).toBeLessThanOrEqual(Math.max(1, Math.floor(n * 0.8)));
      }),
    );
  });
});
