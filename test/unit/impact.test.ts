import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { activityBurst, affectedCount, deploymentImpact, deploymentRecovery, recoveredCount } from '../../src/domain/impact.js';
import { applyAdjustments } from '../../src/domain/metrics.js';
import { seededRng } from '../../src/domain/random.js';
import type { Reading } from '../../src/domain/metrics.js';

const metricsArb = fc.record({
  battery: fc.double({ min: 0, max: 100, noNaN: true }),
  charging: fc.boolean(),
  cpu: fc.double({ min: 5, max: 95, noNaN: true }),
  memory: fc.double({ min: 20, max: 90, noNaN: true }),
  disk: fc.double({ min: 0, max: 95, noNaN: true }),
});

describe('applyAdjustments', () => {
  const m: Reading = { battery: 40, charging: false, cpu: 50, memory: 60, disk: 30 };

  it('adds, scales and clamps', () => {
    const out = applyAdjustments(m, [
      { metric: 'cpu_usage', op: 'add', value: 60, max: 95 },
      { metric: 'memory_usage', op: 'scale', value: 0.5, min: 20 },
      { metric: 'battery_level', op: 'add', value: -50, min: 5 },
    ]);
    expect(out).toMatchObject({ cpu: 95, memory: 30, battery: 5, disk: 30 });
  });

  it('skips battery changes while charging and above onlyBelow', () => {
    expect(applyAdjustments({ ...m, charging: true }, [{ metric: 'battery_level', op: 'add', value: -10, unlessCharging: true }]).battery).toBe(40);
    expect(applyAdjustments({ ...m, battery: 60 }, [{ metric: 'battery_level', op: 'add', value: 5, onlyBelow: 50 }]).battery).toBe(60);
    expect(applyAdjustments(m, [{ metric: 'battery_level', op: 'add', value: 5, onlyBelow: 50 }]).battery).toBe(45);
  });
});

describe('the seed deployment dynamics', () => {
  it('impact raises CPU by 10–50 (cap 95) and memory by 10–30 (cap 90); battery drops 5–15 (floor 5) unless charging', () => {
    fc.assert(
      fc.property(metricsArb, fc.integer(), (m, seed) => {
        const out = applyAdjustments(m, deploymentImpact(seededRng(seed)));
        expect(out.cpu).toBeCloseTo(Math.min(95, Math.max(out.cpu, m.cpu + 10)), 1);
        expect(out.cpu).toBeLessThanOrEqual(Math.min(95, m.cpu + 50) + 0.01);
        expect(out.memory).toBeLessThanOrEqual(Math.min(90, m.memory + 30) + 0.01);
        expect(out.memory).toBeGreaterThanOrEqual(Math.min(90, m.memory + 10) - 0.01);
        if (m.charging) expect(out.battery).toBeCloseTo(m.battery, 1);
        else {
          expect(out.battery).toBeGreaterThanOrEqual(Math.min(5, m.battery) - 0.01);
          expect(out.battery).toBeLessThanOrEqual(Math.max(5, m.battery - 5) + 0.01);
        }
      }),
    );
  });

  it('recovery lowers CPU by 30–70% (floor 5) and memory by 10–30% (floor 20)', () => {
    fc.assert(
      fc.property(metricsArb, fc.integer(), (m, seed) => {
        const out = applyAdjustments(m, deploymentRecovery(seededRng(seed)));
        expect(out.cpu).toBeLessThanOrEqual(Math.max(5, m.cpu * 0.7) + 0.01);
        expect(out.cpu).toBeGreaterThanOrEqual(Math.max(5, m.cpu * 0.3) - 0.01);
        expect(out.memory).toBeLessThanOrEqual(Math.max(20, m.memory * 0.9) + 0.01);
        expect(out.memory).toBeGreaterThanOrEqual(Math.max(20, m.memory * 0.7) - 0.01);
        if (m.charging || m.battery >= 50) expect(out.battery).toBeCloseTo(m.battery, 1);
        else expect(out.battery).toBeGreaterThanOrEqual(m.battery + 2 - 0.01);
      }),
    );
  });

  it('activity stays within the drift bounds', () => {
    fc.assert(
      fc.property(metricsArb, fc.integer(), (m, seed) => {
        const out = applyAdjustments(m, activityBurst(seededRng(seed)));
        expect(out.cpu).toBeGreaterThanOrEqual(5);
        expect(out.cpu).toBeLessThanOrEqual(95);
        expect(Math.abs(out.cpu - m.cpu)).toBeLessThanOrEqual(10.01);
        expect(out.memory).toBeGreaterThanOrEqual(20);
        expect(out.memory).toBeLessThanOrEqual(90);
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
