import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { detectorSettings, PhiAccrualDetector } from '../../src/domain/failure-detector.js';
import { seededRng } from '../../src/domain/random.js';

const S = detectorSettings(5000, 20_000);

describe('phi accrual failure detector', () => {
  it('learns a regular rhythm: suspicion rises with silence, and the timeout is held between the floor and the ceiling', () => {
    const d = new PhiAccrualDetector(S);
    expect(d.timeoutMs()).toBe(20_000); // nothing learned yet: the ceiling
    for (let t = 0; t <= 100_000; t += 5000) d.heartbeat(t);
    // Perfectly regular: std is taken as 10% of the mean, so 5 s + 5.6 × 0.5 s ≈ 7.8 s, below the floor of two beats.
    expect(d.timeoutMs()).toBe(10_000);
    expect(d.phi(100_000)).toBe(0);
    expect(d.phi(105_000)).toBeLessThan(1);
    expect(d.phi(107_000)).toBeGreaterThan(3);
    expect(d.suspect(109_999)).toBe(false);
    expect(d.suspect(110_001)).toBe(true);
    expect(d.phi(121_000)).toBe(Infinity);
  });

  it('an irregular agent earns a longer timeout, never past the ceiling', () => {
    const d = new PhiAccrualDetector(S);
    let t = 0;
    for (let i = 0; i < 64; i++) d.heartbeat((t += i % 2 === 0 ? 2000 : 12_000));
    // Mean 7 s, std 5 s: 7 + 5.6 × 5 = 35 s, held at the 20 s ceiling.
    expect(d.timeoutMs()).toBe(20_000);
  });

  it('with ±20% jitter it never suspects a live agent, and suspects a dead one between the floor and the ceiling', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1000, max: 30_000 }), (seed, interval) => {
        const rng = seededRng(seed);
        const s = detectorSettings(interval, interval * 4);
        const d = new PhiAccrualDetector(s);
        let t = 0;
        for (let i = 0; i < 2000; i++) {
          const next = t + interval * (1 + 0.2 * (2 * rng() - 1));
          // Just before each heartbeat arrives, the agent is not suspected.
          expect(d.suspect(next - 1)).toBe(false);
          d.heartbeat(next);
          t = next;
        }
        // Then it dies: suspected after at least the floor and at most the ceiling of silence.
        expect(d.suspect(t + s.floorMs - 1)).toBe(false);
        expect(d.suspect(t + s.ceilingMs + 1)).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('a long absence is not learned as a gap', () => {
    const d = new PhiAccrualDetector(S);
    for (let t = 0; t <= 50_000; t += 5000) d.heartbeat(t);
    d.reset();
    d.heartbeat(500_000);
    d.heartbeat(505_000);
    expect(d.timeoutMs()).toBe(10_000);
  });
});
