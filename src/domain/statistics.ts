/**
 * The statistics the analyser needs, on plain numbers: the Mann-Whitney U test with tie correction and its
 * effect size, the normal distribution's tail, medians and the median absolute deviation, and proportions'
 * confidence bounds. Pure; samples are read, never changed.
 */

/** What a Mann-Whitney U test found of two samples: is the first larger? */
export interface RankTest {
  n1: number;
  n2: number;
  /** U of the first sample: pairs (x from the first, y from the second) with x > y, ties counting one half. */
  u: number;
  /** The normal approximation's z, tie-corrected, with a continuity correction towards 0; 0 when nothing can be told. */
  z: number;
  /** One-sided p of "the first sample is larger" (for the other side, 1 − p is not exact; test the other way round). */
  pGreater: number;
  /** One-sided p of "the first sample is smaller". */
  pLess: number;
  /** P(x > y) + P(x = y) / 2 over all pairs: 0.5 when the samples are alike (the common-language effect size). */
  superiority: number;
  /** Rank-biserial correlation, 2 × superiority − 1: from −1 (every x below every y) to 1 (every x above). */
  rankBiserial: number;
}

/**
 * The Mann-Whitney U test of `x` against `y`, in O(n log n): each sample sorted once (natively, as a typed
 * array) and merged, ties given their mean rank and the variance corrected for them
 * (σ² = n1·n2/12 · ((n + 1) − Σ(t³ − t) / (n(n − 1)))). With fewer than one value on a side, or every value
 * tied, nothing can be told: z = 0 and both p are 1.
 */
export function mannWhitney(x: ArrayLike<number>, y: ArrayLike<number>): RankTest {
  const n1 = x.length;
  const n2 = y.length;
  if (n1 === 0 || n2 === 0) return { n1, n2, u: 0, z: 0, pGreater: 1, pLess: 1, superiority: 0.5, rankBiserial: 0 };
  const a = Float64Array.from(x).sort();
  const b = Float64Array.from(y).sort();
  let i = 0;
  let j = 0;
  let position = 0;
  let rankSumX = 0;
  let tieTerm = 0;
  while (i < n1 || j < n2) {
    const v = i < n1 && (j >= n2 || (a[i] as number) <= (b[j] as number)) ? (a[i] as number) : (b[j] as number);
    let tx = 0;
    while (i < n1 && a[i] === v) {
      tx++;
      i++;
    }
    let ty = 0;
    while (j < n2 && b[j] === v) {
      ty++;
      j++;
    }
    const t = tx + ty;
    rankSumX += tx * (position + (t + 1) / 2);
    if (t > 1) tieTerm += t * t * t - t;
    position += t;
  }
  return fromRanks(n1, n2, rankSumX, tieTerm);
}

/**
 * The same test on 0/1 outcomes (`k1` ones of `n1` against `k2` of `n2`), in O(1): the zeros share one mean
 * rank and the ones another.
 */
export function mannWhitneyBinary(k1: number, n1: number, k2: number, n2: number): RankTest {
  if (n1 === 0 || n2 === 0) return { n1, n2, u: 0, z: 0, pGreater: 1, pLess: 1, superiority: 0.5, rankBiserial: 0 };
  const zeros = n1 - k1 + (n2 - k2);
  const ones = k1 + k2;
  const rankSumX = (n1 - k1) * ((zeros + 1) / 2) + k1 * (zeros + (ones + 1) / 2);
  const tieTerm = (zeros > 1 ? zeros ** 3 - zeros : 0) + (ones > 1 ? ones ** 3 - ones : 0);
  return fromRanks(n1, n2, rankSumX, tieTerm);
}

function fromRanks(n1: number, n2: number, rankSumX: number, tieTerm: number): RankTest {
  const n = n1 + n2;
  const u = rankSumX - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  const superiority = u / (n1 * n2);
  if (!(variance > 0)) return { n1, n2, u, z: 0, pGreater: 1, pLess: 1, superiority, rankBiserial: 2 * superiority - 1 };
  const sd = Math.sqrt(variance);
  const d = u - mean;
  const z = d === 0 ? 0 : (d - 0.5 * Math.sign(d)) / sd;
  return { n1, n2, u, z, pGreater: normalUpperTail(z), pLess: normalUpperTail(-z), superiority, rankBiserial: 2 * superiority - 1 };
}

/**
 * At most `max` of the values, evenly spaced (every k-th): a sample large enough for a rank test's
 * verdict and effect size at any fleet size, without sorting a million values.
 */
export function evenSample(values: Float64Array, max: number): Float64Array {
  if (values.length <= max) return values;
  const out = new Float64Array(max);
  const step = values.length / max;
  for (let i = 0; i < max; i++) out[i] = values[Math.floor(i * step)] as number;
  return out;
}

/** P(Z > z) for a standard normal Z, to about 1e-7 relative (Numerical Recipes' erfc, Chebyshev fit). */
export function normalUpperTail(z: number): number {
  return 0.5 * erfc(z / Math.SQRT2);
}

function erfc(x: number): number {
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y =
    t *
    Math.exp(
      -x * x - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? y : 2 - y;
}

/** The median of the values (NaN when there are none), in O(n): a selection on a copy. */
export function median(values: ArrayLike<number>): number {
  if (values.length === 0) return Number.NaN;
  return medianInPlace(Float64Array.from(values));
}

/** The median of `a`, reordering it (quickselect, Hoare's partition). */
function medianInPlace(a: Float64Array): number {
  const n = a.length;
  const hi = select(a, n >> 1);
  if (n % 2 === 1) return hi;
  // The lower middle is the largest value left of the upper one after the selection.
  let lo = -Infinity;
  for (let i = 0; i < n >> 1; i++) if ((a[i] as number) > lo) lo = a[i] as number;
  return (lo + hi) / 2;
}

/** The k-th smallest value (0-based); after it, everything left of index k is ≤ it and everything right ≥ it. */
function select(a: Float64Array, k: number): number {
  let left = 0;
  let right = a.length - 1;
  while (right > left) {
    const pivot = a[(left + right) >> 1] as number;
    let i = left;
    let j = right;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else break;
  }
  return a[k] as number;
}

/** The median and the median absolute deviation scaled to a normal's σ (× 1.4826): a location and a spread that a few outliers do not move. O(n). */
export function robustScale(values: ArrayLike<number>): { median: number; mad: number } {
  if (values.length === 0) return { median: Number.NaN, mad: Number.NaN };
  const a = Float64Array.from(values);
  const m = medianInPlace(a);
  for (let k = 0; k < a.length; k++) a[k] = Math.abs((a[k] as number) - m);
  return { median: m, mad: 1.4826 * medianInPlace(a) };
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (let k = 0; k < values.length; k++) sum += values[k] as number;
  return sum / values.length;
}
