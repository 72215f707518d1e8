import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mannWhitney, median, normalUpperTail, robustScale } from '../../src/domain/statistics.js';

/** The U test from its definitions, in O(n²): U by counting pairs, the variance from explicit tie groups. */
function bruteForce(x: number[], y: number[]): { u: number; variance: number } {
  let u = 0;
  for (const a of x) for (const b of y) u += a > b ? 1 : a === b ? 0.5 : 0;
  const all = [...x, ...y];
  const counts = new Map<number, number>();
  for (const v of all) counts.set(v, (counts.get(v) ?? 0) + 1);
  let ties = 0;
  for (const t of counts.values()) ties += t ** 3 - t;
  const n = all.length;
  const variance = ((x.length * y.length) / 12) * (n + 1 - ties / (n * (n - 1)));
  return { u, variance };
}

describe('Mann-Whitney U', () => {
  it('matches the textbook: [1,2,3] against [4,5,6], continuity-corrected', () => {
    const t = mannWhitney([1, 2, 3], [4, 5, 6]);
    expect(t.u).toBe(0);
    expect(t.superiority).toBe(0);
    expect(t.rankBiserial).toBe(-1);
    // z = (0 − 4.5 + 0.5) / √5.25; scipy.stats.mannwhitneyu(..., alternative='less') gives 0.0404.
    expect(t.z).toBeCloseTo(-4 / Math.sqrt(5.25), 10);
    expect(t.pLess).toBeCloseTo(0.0404, 4);
    expect(t.pGreater).toBeCloseTo(0.9596, 4);
  });

  it('gives U and the tie-corrected z of the definitions, on any samples with ties', () => {
    const sample = fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 40 });
    fc.assert(
      fc.property(sample, sample, (x, y) => {
        const t = mannWhitney(x, y);
        const ref = bruteForce(x, y);
        expect(t.u).toBeCloseTo(ref.u, 9);
        if (ref.variance > 0) {
          const d = ref.u - (x.length * y.length) / 2;
          const z = d === 0 ? 0 : (d - 0.5 * Math.sign(d)) / Math.sqrt(ref.variance);
          expect(t.z).toBeCloseTo(z, 9);
        } else {
          expect(t.z).toBe(0);
          expect(t.pGreater).toBe(1);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('tells nothing from an empty side or from samples all tied', () => {
    expect(mannWhitney([], [1, 2])).toMatchObject({ z: 0, pGreater: 1, pLess: 1, superiority: 0.5 });
    expect(mannWhitney([3, 3, 3], [3, 3])).toMatchObject({ z: 0, pGreater: 1, pLess: 1, superiority: 0.5 });
  });

  it('finds a shift of one standard deviation in 50 against 50, and none in the same distribution', () => {
    let seed = 7;
    const rand = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const gauss = (): number => Math.sqrt(-2 * Math.log(rand())) * Math.cos(2 * Math.PI * rand());
    const a = Array.from({ length: 50 }, () => gauss() + 1);
    const b = Array.from({ length: 50 }, gauss);
    expect(mannWhitney(a, b).pGreater).toBeLessThan(0.001);
    const c = Array.from({ length: 50 }, gauss);
    expect(mannWhitney(c, b).pGreater).toBeGreaterThan(0.01);
  });
});

describe('the normal tail, medians and MAD', () => {
  it('P(Z > z) to 1e-7', () => {
    expect(normalUpperTail(0)).toBeCloseTo(0.5, 7);
    expect(normalUpperTail(1.959964)).toBeCloseTo(0.025, 7);
    expect(normalUpperTail(3)).toBeCloseTo(0.0013499, 7);
    expect(normalUpperTail(-1)).toBeCloseTo(0.8413447, 6);
  });

  it('the median by selection is the median by sorting, on any values with ties', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -5, max: 5 }), { minLength: 1, maxLength: 60 }), (xs) => {
        const s = [...xs].sort((a, b) => a - b);
        const mid = s.length >> 1;
        expect(median(xs)).toBe(s.length % 2 === 1 ? s[mid] : ((s[mid - 1] as number) + (s[mid] as number)) / 2);
      }),
      { numRuns: 500 },
    );
  });

  it('a median and a spread that an outlier does not move', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
    expect(robustScale([1, 2, 3, 4, 100])).toEqual({ median: 3, mad: 1.4826 });
  });
});
