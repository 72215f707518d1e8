import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { seededRng } from '../../src/domain/random.js';
import { TASK_TYPES } from '../../src/domain/types.js';
import type { TaskType } from '../../src/domain/types.js';
import { driftStep, randomCapabilities, randomDevice } from '../../src/sim/device-model.js';

describe('simulated device drift (the seed dynamics)', () => {
  it('keeps every metric in its range and moves by the seed steps', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 200 }), (seed, steps) => {
        const rng = seededRng(seed);
        let d = randomDevice(rng);
        for (let i = 0; i < steps; i++) {
          const next = driftStep(d, rng);
          expect(Math.abs(next.cpu - d.cpu)).toBeLessThanOrEqual(10.01);
          expect(Math.abs(next.memory - d.memory)).toBeLessThanOrEqual(5.01);
          expect(next.disk).toBeGreaterThanOrEqual(Math.min(d.disk, 95) - 0.01);
          const level = d.battery ?? Number.NaN;
          if (d.charging) expect(next.battery).toBeGreaterThanOrEqual(Math.min(100, level + 1) - 0.01);
          else expect(next.battery).toBeLessThanOrEqual(level + 0.01);
          expect(next.cpu).toBeGreaterThanOrEqual(5);
          expect(next.cpu).toBeLessThanOrEqual(95);
          expect(next.memory).toBeGreaterThanOrEqual(20);
          expect(next.memory).toBeLessThanOrEqual(90);
          expect(next.battery).toBeGreaterThanOrEqual(0);
          expect(next.battery).toBeLessThanOrEqual(100);
          expect(next.disk).toBeLessThanOrEqual(95);
          d = next;
        }
      }),
    );
  });

  it('names a device after its asset', () => {
    const d = randomDevice(seededRng(1), { id: 'a1', name: 'LAPTOP-1', osName: 'Win 11 Home' });
    expect(d.name).toBe('LAPTOP-1');
    expect(d.osVersion).toBe('Win 11 Home');
  });
});

describe('capabilities', () => {
  it('gives 1–3 types, and two agents always cover all five', () => {
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const rng = seededRng(seed);
        const covered = new Set<TaskType>();
        for (let i = 0; i < 2; i++) {
          const caps = randomCapabilities(rng, covered);
          expect(caps.length).toBeGreaterThanOrEqual(1);
          expect(caps.length).toBeLessThanOrEqual(3);
          expect(new Set(caps).size).toBe(caps.length);
          caps.forEach((c) => covered.add(c));
        }
        expect([...covered].sort()).toEqual([...TASK_TYPES].sort());
        const third = randomCapabilities(rng, covered);
        expect(third.length).toBeGreaterThanOrEqual(1);
        expect(third.length).toBeLessThanOrEqual(3);
      }),
    );
  });
});
