/**
 * The built-in analyser: what a release did to the devices of a ring, judged per metric against a baseline
 * and combined into one verdict in the manner of Kayenta's canary judge; which devices it hurt most; and
 * what carries the harm (the metric, and the device models, sites or OS versions it is concentrated on).
 * Pure and offline: the advisor (src/advisor/) gathers the evidence and stores what this says.
 *
 * Per metric, the devices on the release are compared with a baseline:
 * - health (CPU, memory, battery drain, disk): the readings of updated devices after their update against
 *   the baseline's readings (the same devices just before their update, and the ring's devices not updated
 *   yet), by a Mann-Whitney U test with tie correction, whose rank-biserial correlation is the effect size;
 *   and each updated device against itself, as the gates do: the share of devices whose change exceeds the
 *   limit. A rise of every device by a little moves the U test but hurts no device; a release that hurts a
 *   fifth of the devices barely moves it. So a metric is `high` when the share of devices over the limit, at
 *   its lower confidence bound (1 − α), is above the allowed share of regressed devices; `low` the mirror
 *   (an improvement, which passes). And as the gates count a device that regressed in any of CPU, memory
 *   and drain once: when no one metric is high but those devices together are too many, the metric that
 *   carries most of them is rated high.
 * - events (failures, timeouts, offline after the update): the devices' 0/1 outcomes against the baseline's
 *   (devices not updated cannot fail or time out; they can be offline), by the same U test; `high` when the
 *   rise is significant and the rate, at its lower confidence bound, is above the limit by more than the
 *   baseline's rate. Failures are also judged per device model, so that one broken model is not diluted.
 * Fewer than MIN_SAMPLES devices on either side (MIN_EVENT_SAMPLES for events, where two failures of two
 * updates against a ring of zeros are already significant) is `inconclusive`; so is an event rate above its
 * limit that is not significant (too few devices to tell is not a pass), and a ring with such a critical
 * metric is `inconclusive` whatever its other metrics say.
 *
 * The verdict: `fail` when a critical metric (failures, timeouts, offline) is high; otherwise a score, the
 * weight of the metrics that passed over the weight of those judged (× 100), against the pass and marginal
 * thresholds. `inconclusive` when no metric could be judged.
 *
 * The input is columns (RingEvidence, made by EvidenceBuilder as the evidence is gathered): at 100,000
 * devices, reading each device's objects once more per metric would cost more than all the judging.
 */
import { onMains, type DeviceMetrics } from './metrics.js';
import { evenSample, mannWhitney, mannWhitneyBinary, normalUpperTail, robustScale } from './statistics.js';
import { wilsonLower, zFor } from './deployment.js';

export const ANALYSED_METRICS = ['failures', 'timeouts', 'offline', 'cpu', 'memory', 'drain', 'disk'] as const;
export type AnalysedMetric = (typeof ANALYSED_METRICS)[number];
type HealthMetric = 'cpu' | 'memory' | 'drain' | 'disk';
const HEALTH: readonly HealthMetric[] = ['cpu', 'memory', 'drain', 'disk'];

export type Rating = 'pass' | 'high' | 'low' | 'inconclusive';
export type AnalysisVerdict = 'pass' | 'marginal' | 'fail' | 'inconclusive';

/** What a device is, for attributing harm to groups of devices. */
export interface DeviceFacts {
  id: string;
  model: string | null;
  site: string | null;
  osName: string | null;
}

/** A device of the ring that received the release. */
export interface UpdatedDevice extends DeviceFacts {
  outcome: 'succeeded' | 'failed' | 'timed_out';
  /** Not there when it should have been watched after its update (offline), or offline now after a timeout. */
  offlineAfter: boolean;
  /** Its metrics just before its update, and once watched after it (null when not read). */
  baseline: DeviceMetrics | null;
  observed: DeviceMetrics | null;
}

/** A device of the ring that has not received the release (yet): its metrics now, and whether it is online. */
export interface WaitingDevice {
  metrics: DeviceMetrics | null;
  online: boolean;
}

/** How much each metric may get worse: the stage gate's limits. */
export interface AnalysisLimits {
  /** Shares (0–1) of devices that may fail, time out, or be offline after their update. */
  failures: number;
  timeouts: number;
  offline: number;
  /** Points (%/h for drain) one device's metric may rise over its own baseline... */
  cpu: number;
  memory: number;
  drain: number;
  disk: number;
  /** ...and the share of devices over those limits allowed (beyond the noise). */
  regressedShare: number;
}

export interface MetricJudgement {
  metric: AnalysedMetric;
  rating: Rating;
  /** Devices on the release and in the baseline that were compared. */
  n: number;
  baselineN: number;
  /** Health: mean level on the release and in the baseline. Events: their rates (0–1). */
  release: number;
  baseline: number;
  /** Health: mean change of a device over its own baseline. Events: the difference of the rates. */
  change: number;
  /** Health: share of devices whose change exceeds the limit. Events: the rate at its lower bound, less the baseline's rate. */
  excess: number;
  limit: number;
  /** One-sided p of the rating's finding: of more devices over the limit than allowed (health), or of a higher rate (events). */
  p: number;
  /** The U test's one-sided p of a rise of the release's values over the baseline's, and its rank-biserial correlation (−1 to 1). */
  uTestP: number;
  effect: number;
  weight: number;
  critical: boolean;
  reason: string;
}

export interface Attribution {
  attribute: 'model' | 'site' | 'osName';
  value: string;
  /** Affected devices with this value, and all compared devices with it. */
  affected: number;
  devices: number;
  /** Share of the affected devices that have this value. */
  share: number;
  /** How much likelier a device with this value is to be affected than any device. */
  lift: number;
}

export interface RootCause {
  metric: AnalysedMetric;
  affected: number;
  groups: Attribution[];
  reason: string;
}

export interface DeviceImpact {
  deviceId: string;
  /** Robust score: the largest of the device's changes in units of the ring's spread of changes (MAD), 10 for a failure or timeout. */
  score: number;
  metric: AnalysedMetric;
  /** The change in that metric (points, %/h; 1 for an event). */
  change: number;
  model: string | null;
  site: string | null;
}

export interface RingAnalysis {
  ring: string;
  verdict: AnalysisVerdict;
  /** 0–100: the weight of the metrics that passed over the weight of those judged. */
  score: number;
  thresholds: { pass: number; marginal: number };
  metrics: MetricJudgement[];
  rootCause: RootCause | null;
  impacted: DeviceImpact[];
  devices: { updated: number; observed: number; waiting: number };
  /** The verdict in plain words, with the figures: the failing metrics first. */
  reasons: string[];
}

export const MIN_SAMPLES = 5;
export const MIN_EVENT_SAMPLES = 2;
/** The U test ranks at most this many values a side (an even sample beyond): enough for its verdict and effect size at any fleet size. */
export const U_TEST_MAX = 20_000;
/** Per metric: each of a health metric's two tests runs at ALPHA / 2. */
export const ALPHA = 0.01;
export const PASS_SCORE = 95;
export const MARGINAL_SCORE = 85;
/** The disk's limit: the gates do not judge disk; a release that fills a disk by more than this is noticed. */
export const DISK_LIMIT = 5;
const WEIGHTS: Record<AnalysedMetric, number> = { failures: 15, timeouts: 15, offline: 10, cpu: 20, memory: 15, drain: 20, disk: 5 };
const CRITICAL: ReadonlySet<AnalysedMetric> = new Set(['failures', 'timeouts', 'offline']);
/** Spreads of changes below these count as these (a fleet of identical readings would otherwise make any change infinite). */
const MIN_SPREAD: Record<HealthMetric, number> = { cpu: 2, memory: 1, drain: 0.5, disk: 0.5 };
const TOP_IMPACTED = 20;
/** A group must hold at least this many affected devices, half of them, and twice its share of the fleet, to be named. */
const GROUP_MIN = 3;

const LABEL: Record<AnalysedMetric, string> = {
  failures: 'failures',
  timeouts: 'timeouts',
  offline: 'offline after the update',
  cpu: 'CPU',
  memory: 'memory',
  drain: 'battery drain',
  disk: 'disk use',
};
const UNIT: Record<HealthMetric, string> = { cpu: ' points', memory: ' points', drain: ' %/h', disk: ' points' };

const round = (x: number, d = 2): number => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
const pct = (x: number): string => `${Math.round(x * 1000) / 10}%`;
const signed = (x: number): string => `${x >= 0 ? '+' : ''}${Math.round(x * 10) / 10}`;
export const pText = (p: number): string => (p < 0.001 ? 'p < 0.001' : `p = ${p < 0.01 ? p.toFixed(3) : p.toFixed(2)}`);

const SUCCEEDED = 0;
const FAILED = 1;
const TIMED_OUT = 2;

type GroupAttribute = Attribution['attribute'];
const GROUP_ATTRIBUTES: readonly GroupAttribute[] = ['model', 'site', 'osName'];

/** One attribute of the updated devices: each device's value as a code into `values`, -1 for none. */
export interface AttributeColumn {
  code: Int32Array;
  values: string[];
}

/**
 * What the analyser reads of one ring: its devices as columns, so that the judgements run over typed arrays
 * and a ring of 100,000 devices is read once (by whoever gathers it), not once per metric. Build it with
 * EvidenceBuilder, or from rows with evidenceOf.
 */
export interface RingEvidence {
  ring: string;
  /** Devices that received the release, in the order they were added. */
  updated: {
    count: number;
    ids: string[];
    /** SUCCEEDED, FAILED or TIMED_OUT (0, 1, 2), and 1 when the device was offline after its update. */
    outcome: Uint8Array;
    offline: Uint8Array;
    /** Per health metric (cpu, memory, drain, disk): the reading before the update and after it; NaN when not read, not succeeded, or on mains power for drain. */
    before: Float64Array[];
    after: Float64Array[];
    model: AttributeColumn;
    site: AttributeColumn;
    osName: AttributeColumn;
  };
  /** Devices of the ring not updated (yet): how many, how many offline, and their metrics now (NaN as above). */
  waiting: { count: number; offline: number; metrics: Float64Array[] };
}

/** The evidence as rows, one object a device: for tests and small callers (evidenceOf turns it into columns). */
export interface RingRows {
  ring: string;
  updated: readonly UpdatedDevice[];
  waiting: readonly WaitingDevice[];
}

const OUTCOME_CODE: Record<UpdatedDevice['outcome'], number> = { succeeded: SUCCEEDED, failed: FAILED, timed_out: TIMED_OUT };

/** Metrics into the columns at i (HEALTH's order). A function of the module, not a closure per call: optimised code keeps it. */
function put(cols: Float64Array[], i: number, m: DeviceMetrics): void {
  (cols[0] as Float64Array)[i] = m.cpu;
  (cols[1] as Float64Array)[i] = m.memory;
  if (!onMains(m)) (cols[2] as Float64Array)[i] = m.drain;
  (cols[3] as Float64Array)[i] = m.disk;
}

const nanColumns = (n: number): Float64Array[] => HEALTH.map(() => new Float64Array(n).fill(Number.NaN));

/** How long columns grow when they are full: twice as long, and never less than 16 (a builder may start at 0). */
const roomAfter = (length: number): number => Math.max(16, length * 2);

/** A copy of `a` that is `size` long, its new room filled with `fill`. */
function resized<T extends Float64Array | Int32Array | Uint8Array>(a: T, size: number, fill: number): T {
  const next = new (a.constructor as new (length: number) => T)(size);
  next.fill(fill);
  next.set(a);
  return next;
}

/** An attribute's values as they come, each string given a code the first time it is seen. */
class AttributeCoder {
  private readonly index = new Map<string, number>();
  readonly values: string[] = [];

  constructor(public code: Int32Array) {}

  put(i: number, v: string | null): void {
    if (v === null) {
      this.code[i] = -1;
      return;
    }
    let c = this.index.get(v);
    if (c === undefined) {
      c = this.values.length;
      this.values.push(v);
      this.index.set(v, c);
    }
    this.code[i] = c;
  }

  column(n: number): AttributeColumn {
    return { code: this.code.slice(0, n), values: this.values };
  }
}

/**
 * Gathers one ring's evidence into columns, a device at a time: each device's objects are read once, here,
 * and attribute values become integer codes.
 */
export class EvidenceBuilder {
  private n = 0;
  private w = 0;
  private waitingOffline = 0;
  private readonly ids: string[] = [];
  private outcome: Uint8Array;
  private offline: Uint8Array;
  private before: Float64Array[];
  private after: Float64Array[];
  private waiting: Float64Array[];
  private readonly coders: Record<GroupAttribute, AttributeCoder>;

  /** `capacity`: how many devices of each kind to make room for at once (more are made room for as they come). */
  constructor(
    private readonly ring: string,
    capacity = 64,
  ) {
    this.outcome = new Uint8Array(capacity);
    this.offline = new Uint8Array(capacity);
    this.before = nanColumns(capacity);
    this.after = nanColumns(capacity);
    this.waiting = nanColumns(capacity);
    this.coders = { model: new AttributeCoder(new Int32Array(capacity)), site: new AttributeCoder(new Int32Array(capacity)), osName: new AttributeCoder(new Int32Array(capacity)) };
  }

  /** A device that received the release: its outcome, whether it was away after it, its metrics before and after. */
  addUpdated(d: DeviceFacts, outcome: UpdatedDevice['outcome'], offlineAfter: boolean, baseline: DeviceMetrics | null, observed: DeviceMetrics | null): void {
    const i = this.n++;
    if (i >= this.outcome.length) {
      const size = roomAfter(this.outcome.length);
      this.outcome = resized(this.outcome, size, 0);
      this.offline = resized(this.offline, size, 0);
      this.before = this.before.map((c) => resized(c, size, Number.NaN));
      this.after = this.after.map((c) => resized(c, size, Number.NaN));
      for (const coder of Object.values(this.coders)) coder.code = resized(coder.code, size, -1);
    }
    this.ids.push(d.id);
    this.outcome[i] = OUTCOME_CODE[outcome];
    this.offline[i] = offlineAfter ? 1 : 0;
    this.coders.model.put(i, d.model);
    this.coders.site.put(i, d.site);
    this.coders.osName.put(i, d.osName);
    if (baseline === null) return;
    put(this.before, i, baseline);
    if (outcome === 'succeeded' && observed !== null) put(this.after, i, observed);
  }

  /** A device of the ring not updated: its metrics now (null before its first report), and whether it is online. */
  addWaiting(metrics: DeviceMetrics | null, online: boolean): void {
    const i = this.w++;
    const room = (this.waiting[0] as Float64Array).length;
    if (i >= room) this.waiting = this.waiting.map((c) => resized(c, roomAfter(room), Number.NaN));
    if (!online) this.waitingOffline++;
    if (metrics !== null) put(this.waiting, i, metrics);
  }

  build(): RingEvidence {
    const n = this.n;
    return {
      ring: this.ring,
      updated: {
        count: n,
        ids: this.ids,
        outcome: this.outcome.slice(0, n),
        offline: this.offline.slice(0, n),
        before: this.before.map((c) => c.slice(0, n)),
        after: this.after.map((c) => c.slice(0, n)),
        model: this.coders.model.column(n),
        site: this.coders.site.column(n),
        osName: this.coders.osName.column(n),
      },
      waiting: { count: this.w, offline: this.waitingOffline, metrics: this.waiting.map((c) => c.slice(0, this.w)) },
    };
  }
}

/** Rows into the analyser's columns. */
export function evidenceOf(rows: RingRows): RingEvidence {
  const b = new EvidenceBuilder(rows.ring, Math.max(rows.updated.length, rows.waiting.length, 1));
  for (const d of rows.updated) b.addUpdated(d, d.outcome, d.offlineAfter, d.baseline, d.observed);
  for (const d of rows.waiting) b.addWaiting(d.metrics, d.online);
  return b.build();
}

/**
 * One health metric (index `m` of HEALTH). `changes[i]`: updated device i's change over its own baseline,
 * NaN when it has no pair of readings (not succeeded, not watched, or on mains power for drain).
 */
function judgeHealth(m: number, ev: RingEvidence, limit: number, allowedShare: number): { j: MetricJudgement; changes: Float64Array } {
  const k = HEALTH[m] as HealthMetric;
  const before = ev.updated.before[m] as Float64Array;
  const after = ev.updated.after[m] as Float64Array;
  const waiting = ev.waiting.metrics[m] as Float64Array;
  const release = new Float64Array(before.length);
  const base = new Float64Array(before.length + waiting.length);
  const changes = new Float64Array(before.length).fill(Number.NaN);
  let n = 0;
  let baseN = 0;
  let sum = 0;
  let releaseSum = 0;
  let baseSum = 0;
  let up = 0;
  let down = 0;
  for (let i = 0; i < before.length; i++) {
    const b = before[i] as number;
    if (Number.isNaN(b)) continue;
    base[baseN++] = b;
    baseSum += b;
    const a = after[i] as number;
    if (Number.isNaN(a)) continue;
    const c = a - b;
    release[n++] = a;
    releaseSum += a;
    changes[i] = c;
    sum += c;
    if (c > limit) up++;
    else if (c < -limit) down++;
  }
  for (let i = 0; i < waiting.length; i++) {
    const b = waiting[i] as number;
    if (Number.isNaN(b)) continue;
    base[baseN++] = b;
    baseSum += b;
  }
  const test = mannWhitney(evenSample(release.subarray(0, n), U_TEST_MAX), evenSample(base.subarray(0, baseN), U_TEST_MAX));
  // The share of devices over the limit, at its lower confidence bound, against the allowed share (as the gates judge it).
  const z = zFor(1 - ALPHA);
  const pUp = shareTest(up, n, allowedShare);
  const pDown = shareTest(down, n, allowedShare);
  let rating: Rating;
  if (n < MIN_SAMPLES || baseN < MIN_SAMPLES) rating = 'inconclusive';
  else if (wilsonLower(up, n, z) > allowedShare) rating = 'high';
  else if (wilsonLower(down, n, z) > allowedShare) rating = 'low';
  else rating = 'pass';
  const change = n === 0 ? 0 : sum / n;
  const unit = UNIT[k];
  const reason =
    rating === 'inconclusive'
      ? `${LABEL[k]}: too few devices to judge (${n} on the release, ${baseN} in the baseline; ${MIN_SAMPLES} each needed)`
      : `${LABEL[k]} ${signed(change)}${unit} against baseline on ${n} devices (${round(releaseSum / n, 1)} against ${round(baseSum / baseN, 1)}); ` +
        `${up} of ${n} (${pct(n === 0 ? 0 : up / n)}) rose by more than ${limit}${unit}, ${pText(rating === 'low' ? pDown : pUp)}; U test ${pText(test.pGreater)}`;
  return {
    changes,
    j: {
      metric: k, rating, n, baselineN: baseN, release: round(n === 0 ? 0 : releaseSum / n), baseline: round(baseN === 0 ? 0 : baseSum / baseN), change: round(change),
      excess: round(n === 0 ? 0 : up / n, 4), limit, p: rating === 'low' ? pDown : pUp, uTestP: test.pGreater, effect: round(test.rankBiserial, 3),
      weight: WEIGHTS[k], critical: CRITICAL.has(k), reason,
    },
  };
}

/**
 * The gates' count: devices that regressed in any of CPU, memory and drain. When no one of those metrics is
 * high but together they are above the allowed share (at the lower bound), the metric with most of them is
 * rated high, with that count in its reason.
 */
function regressedTogether(ev: RingEvidence, health: readonly { j: MetricJudgement; changes: Float64Array }[], limits: AnalysisLimits): void {
  const judged = health.filter((h) => h.j.metric !== 'disk' && h.j.rating !== 'inconclusive');
  if (judged.length === 0 || judged.some((h) => h.j.rating === 'high')) return;
  let n = 0;
  let regressed = 0;
  const by = new Map<MetricJudgement, number>();
  for (let i = 0; i < ev.updated.count; i++) {
    let seen = false;
    let any = false;
    for (const h of judged) {
      const c = h.changes[i] as number;
      if (Number.isNaN(c)) continue;
      seen = true;
      if (c > h.j.limit) {
        any = true;
        by.set(h.j, (by.get(h.j) ?? 0) + 1);
      }
    }
    if (seen) n++;
    if (any) regressed++;
  }
  if (n < MIN_SAMPLES || !(wilsonLower(regressed, n, zFor(1 - ALPHA)) > limits.regressedShare)) return;
  const [top, count] = [...by].sort((a, b) => b[1] - a[1])[0] as [MetricJudgement, number];
  const names = judged.map((h) => LABEL[h.j.metric]).join(', ');
  top.rating = 'high';
  top.p = shareTest(regressed, n, limits.regressedShare);
  top.reason = `${regressed} of ${n} devices (${pct(regressed / n)}) regressed in ${names} together, above the ${pct(limits.regressedShare)} allowed, ${pText(top.p)}; ${count} of them in ${LABEL[top.metric]}: ${top.reason}`;
}

/** One-sided p of seeing `k` or more of `n` when the true share is `p0` (normal approximation, continuity-corrected). */
function shareTest(k: number, n: number, p0: number): number {
  if (n === 0) return 1;
  const q = Math.min(0.999999, Math.max(1e-6, p0));
  return normalUpperTail((k - 0.5 - n * q) / Math.sqrt(n * q * (1 - q)));
}

type EventMetric = 'failures' | 'timeouts' | 'offline';
const EVENT_TEXT: Record<EventMetric, string> = { failures: 'failed', timeouts: 'timed out', offline: 'were offline after the update' };

/** Whether updated device i had the event. */
function happened(k: EventMetric, ev: RingEvidence, i: number): boolean {
  return k === 'failures' ? ev.updated.outcome[i] === FAILED : k === 'timeouts' ? ev.updated.outcome[i] === TIMED_OUT : ev.updated.offline[i] === 1;
}

/** One group's (or the ring's) event rate against the baseline's: the U test on 0/1 outcomes and the rate's lower bound. */
function eventTest(hits: number, n: number, baseHits: number, baseN: number, z: number): { p: number; effect: number; excess: number } {
  const test = mannWhitneyBinary(hits, n, baseHits, baseN);
  const baseRate = baseN === 0 ? 0 : baseHits / baseN;
  return { p: test.pGreater, effect: test.rankBiserial, excess: wilsonLower(hits, n, z) - baseRate };
}

function judgeEvent(k: EventMetric, ev: RingEvidence, limit: number): MetricJudgement & { byModel: Attribution | null } {
  const n = ev.updated.count;
  let hits = 0;
  for (let i = 0; i < n; i++) if (happened(k, ev, i)) hits++;
  // Devices not updated cannot fail or time out; they can be offline. Without any, the baseline is as many updates that never ran.
  const baseN = ev.waiting.count > 0 ? ev.waiting.count : n;
  const baseHits = k === 'offline' ? ev.waiting.offline : 0;
  const z = zFor(1 - ALPHA);
  const all = eventTest(hits, n, baseHits, baseN, z);
  let rating: Rating = n < MIN_EVENT_SAMPLES || baseN < MIN_EVENT_SAMPLES ? 'inconclusive' : all.p < ALPHA && all.excess > limit ? 'high' : 'pass';
  let byModel: Attribution | null = null;
  let p = all.p;
  let reason = `${LABEL[k]}: ${hits} of ${n} devices (${pct(n === 0 ? 0 : hits / n)}) ${EVENT_TEXT[k]}, against ${pct(baseN === 0 ? 0 : baseHits / baseN)} of ${baseN} in the baseline; limit ${pct(limit)}, ${pText(all.p)}`;
  if (k === 'failures' && rating === 'pass') {
    // One model's failures, judged on their own (each model's test at α over the number of models).
    const { code, values } = ev.updated.model;
    const devices = new Int32Array(values.length);
    const failed = new Int32Array(values.length);
    for (let i = 0; i < n; i++) {
      const c = code[i] as number;
      if (c < 0) continue;
      (devices[c] as number)++;
      if (ev.updated.outcome[i] === FAILED) (failed[c] as number)++;
    }
    const alpha = ALPHA / Math.max(1, values.length);
    const zm = zFor(1 - alpha);
    for (let c = 0; c < values.length; c++) {
      const m = { n: devices[c] as number, hits: failed[c] as number };
      if (m.n < GROUP_MIN || m.hits < GROUP_MIN) continue;
      const t = eventTest(m.hits, m.n, 0, Math.max(baseN, m.n), zm);
      if (t.p < alpha && t.excess > limit && (byModel === null || m.hits / m.n > byModel.affected / byModel.devices)) {
        byModel = { attribute: 'model', value: values[c] as string, affected: m.hits, devices: m.n, share: round(hits === 0 ? 0 : m.hits / hits, 3), lift: round(hits === 0 ? 0 : (m.hits / m.n) / (hits / n), 2) };
        p = t.p;
      }
    }
    if (byModel) {
      rating = 'high';
      reason = `${LABEL[k]}: ${byModel.affected} of ${byModel.devices} ${byModel.value} devices (${pct(byModel.affected / byModel.devices)}) failed, against ${hits - byModel.affected} of ${n - byModel.devices} other devices; limit ${pct(limit)}, ${pText(p)}`;
    }
  }
  const rate = n === 0 ? 0 : hits / n;
  const baseRate = baseN === 0 ? 0 : baseHits / baseN;
  if (rating === 'inconclusive') {
    reason = `${LABEL[k]}: too few devices to judge (${n} on the release, ${baseN} in the baseline; ${MIN_EVENT_SAMPLES} each needed)`;
  } else if (rating === 'pass' && rate - baseRate > limit) {
    // Above the limit but not significantly: too few devices to tell, which is not a pass.
    rating = 'inconclusive';
    reason = `${LABEL[k]}: ${hits} of ${n} devices (${pct(rate)}) ${EVENT_TEXT[k]}, above the ${pct(limit)} limit, but too few to tell (${pText(all.p)}; ${pct(baseRate)} of ${baseN} in the baseline)`;
  }
  return {
    metric: k, rating, n, baselineN: baseN, release: round(n === 0 ? 0 : hits / n, 4), baseline: round(baseN === 0 ? 0 : baseHits / baseN, 4),
    change: round((n === 0 ? 0 : hits / n) - (baseN === 0 ? 0 : baseHits / baseN), 4), excess: round(all.excess, 4), limit, p, uTestP: all.p, effect: round(all.effect, 3),
    weight: WEIGHTS[k], critical: CRITICAL.has(k), reason, byModel,
  };
}

/**
 * Which groups of devices carry the harm: for each attribute, the value holding most of the affected devices,
 * when it holds at least half of them and a device with it is at least twice as likely to be affected.
 */
function attribute(ev: RingEvidence, affected: Uint8Array, compared: Uint8Array): Attribution[] {
  const out: Attribution[] = [];
  const n = ev.updated.count;
  let total = 0;
  let hit = 0;
  for (let i = 0; i < n; i++) {
    total += compared[i] as number;
    hit += affected[i] as number;
  }
  if (hit < GROUP_MIN || total === 0) return out;
  for (const attr of GROUP_ATTRIBUTES) {
    // Per value: its affected devices, and its compared devices.
    const { code, values } = ev.updated[attr];
    const inGroup = new Int32Array(values.length);
    const devicesWith = new Int32Array(values.length);
    for (let i = 0; i < n; i++) {
      const c = code[i] as number;
      if (c < 0 || compared[i] === 0) continue;
      (devicesWith[c] as number)++;
      if (affected[i] === 1) (inGroup[c] as number)++;
    }
    // Only the value most of the affected devices share can hold half of them.
    let top = -1;
    for (let c = 0; c < values.length; c++) if (top < 0 || (inGroup[c] as number) > (inGroup[top] as number)) top = c;
    if (top < 0) continue;
    const k = inGroup[top] as number;
    if (k < GROUP_MIN || k / hit < 0.5) continue;
    const lift = k / (devicesWith[top] as number) / (hit / total);
    if (lift >= 2) out.push({ attribute: attr, value: values[top] as string, affected: k, devices: devicesWith[top] as number, share: round(k / hit, 3), lift: round(lift, 2) });
  }
  return out.sort((a, b) => b.share - a.share);
}

const ATTRIBUTE_TEXT: Record<Attribution['attribute'], string> = { model: '', site: 'at ', osName: 'on ' };

export function attributionText(a: Attribution): string {
  return `${pct(a.share)} of them ${ATTRIBUTE_TEXT[a.attribute]}${a.value}`;
}

/** Judges one ring of a deployment: every metric, the verdict, the root cause and the devices hurt most. */
export function analyseRing(ev: RingEvidence, limits: AnalysisLimits): RingAnalysis {
  const metrics: MetricJudgement[] = [];
  const events = (['failures', 'timeouts', 'offline'] as const).map((k) => judgeEvent(k, ev, limits[k]));
  const health = HEALTH.map((k, m) => judgeHealth(m, ev, limits[k], limits.regressedShare));
  for (const e of events) {
    const { byModel: _byModel, ...j } = e;
    metrics.push(j);
  }
  for (const h of health) metrics.push(h.j);
  regressedTogether(ev, health, limits);

  const judged = metrics.filter((m) => m.rating !== 'inconclusive');
  const weight = judged.reduce((s, m) => s + m.weight, 0);
  const passed = judged.filter((m) => m.rating !== 'high').reduce((s, m) => s + m.weight, 0);
  const score = weight === 0 ? 0 : round((100 * passed) / weight, 1);
  const criticalHigh = judged.some((m) => m.critical && m.rating === 'high');
  // A critical metric above its limit on too few devices to tell leaves the ring undecided: the others cannot pass it.
  const criticalUndecided = metrics.some((m) => m.critical && m.rating === 'inconclusive' && m.change > m.limit);
  const verdict: AnalysisVerdict =
    judged.length === 0 || (criticalUndecided && !criticalHigh) ? 'inconclusive' : criticalHigh || score < MARGINAL_SCORE ? 'fail' : score < PASS_SCORE ? 'marginal' : 'pass';

  // The root cause: the high metric furthest over its limit, and the groups its affected devices share.
  const highs = metrics.filter((m) => m.rating === 'high').sort((a, b) => (b.critical ? 1 : 0) - (a.critical ? 1 : 0) || a.p - b.p);
  let rootCause: RootCause | null = null;
  const top = highs[0];
  if (top) {
    const affected = new Uint8Array(ev.updated.count);
    const compared = new Uint8Array(ev.updated.count);
    const event = top.metric === 'failures' || top.metric === 'timeouts' || top.metric === 'offline' ? top.metric : null;
    const changes = event === null ? health[HEALTH.indexOf(top.metric as HealthMetric)]?.changes : undefined;
    for (let i = 0; i < ev.updated.count; i++) {
      if (event !== null) {
        compared[i] = 1;
        affected[i] = happened(event, ev, i) ? 1 : 0;
      } else if (changes && !Number.isNaN(changes[i])) {
        compared[i] = 1;
        affected[i] = (changes[i] as number) > top.limit ? 1 : 0;
      }
    }
    const byModel = events.find((e) => e.metric === top.metric)?.byModel ?? null;
    const groups = attribute(ev, affected, compared).filter((g) => byModel === null || g.attribute !== 'model');
    if (byModel) groups.unshift(byModel);
    const count = affected.reduce((x, y) => x + y, 0);
    rootCause = { metric: top.metric, affected: byModel ? byModel.affected : count, groups, reason: [top.reason, ...groups.map(attributionText)].join('; ') };
  }

  const impacted = impactRanking(ev, health.map((h) => h.changes));
  const reasons = [...highs.map((m) => m.reason), ...metrics.filter((m) => m.rating !== 'high').map((m) => m.reason)];
  if (rootCause && rootCause.groups.length > 0) reasons[0] = rootCause.reason;
  return {
    ring: ev.ring,
    verdict,
    score,
    thresholds: { pass: PASS_SCORE, marginal: MARGINAL_SCORE },
    metrics,
    rootCause,
    impacted,
    devices: { updated: ev.updated.count, observed: health[0]?.j.n ?? 0, waiting: ev.waiting.count },
    reasons,
  };
}

/**
 * Each updated device's impact: its changes in units of the ring's spread of changes (1.4826 × MAD, not less
 * than a floor per metric), centred on no change, so that a release that hurts every device shows on every
 * device; a failure or a timeout scores 10. The TOP_IMPACTED highest, highest first.
 */
function impactRanking(ev: RingEvidence, health: readonly Float64Array[]): DeviceImpact[] {
  const n = ev.updated.count;
  const score = new Float64Array(n);
  const metric = new Uint8Array(n);
  const change = new Float64Array(n);
  health.forEach((changes, m) => {
    const paired = new Float64Array(n);
    let k = 0;
    for (let i = 0; i < n; i++) if (!Number.isNaN(changes[i])) paired[k++] = changes[i] as number;
    // The ring's spread of changes around their median: a release that moves every device does not widen it.
    const spread = Math.max(MIN_SPREAD[HEALTH[m] as HealthMetric], robustScale(paired.subarray(0, k)).mad || 0);
    for (let i = 0; i < n; i++) {
      const s = (changes[i] as number) / spread;
      if (s > (score[i] as number)) {
        score[i] = s;
        metric[i] = m;
        change[i] = changes[i] as number;
      }
    }
  });
  const EVENT = HEALTH.length;
  for (let i = 0; i < n; i++) {
    if (ev.updated.outcome[i] === SUCCEEDED) continue;
    score[i] = 10;
    metric[i] = ev.updated.outcome[i] === FAILED ? EVENT : EVENT + 1;
    change[i] = 1;
  }
  // The top few by a bounded insertion: no sort of the whole ring.
  const top: number[] = [];
  const ids = ev.updated.ids;
  const before = (a: number, b: number): boolean => (score[a] as number) > (score[b] as number) || (score[a] === score[b] && (ids[a] as string) < (ids[b] as string));
  for (let i = 0; i < n; i++) {
    if (!((score[i] as number) > 0)) continue;
    if (top.length === TOP_IMPACTED && !before(i, top[TOP_IMPACTED - 1] as number)) continue;
    let at = top.length === TOP_IMPACTED ? TOP_IMPACTED - 1 : top.length;
    while (at > 0 && before(i, top[at - 1] as number)) at--;
    top.splice(at, 0, i);
    if (top.length > TOP_IMPACTED) top.pop();
  }
  const valueAt = (col: AttributeColumn, i: number): string | null => col.values[col.code[i] as number] ?? null;
  return top.map((i) => {
    const m = metric[i] as number;
    const name: AnalysedMetric = m < EVENT ? (HEALTH[m] as HealthMetric) : m === EVENT ? 'failures' : 'timeouts';
    return { deviceId: ids[i] as string, score: round(score[i] as number), metric: name, change: round(change[i] as number), model: valueAt(ev.updated.model, i), site: valueAt(ev.updated.site, i) };
  });
}
