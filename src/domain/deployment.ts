/**
 * Staged deployments: the plan, the gates and their arithmetic, the rate of
 * each stage, maintenance windows, and the state machines of a deployment and
 * of each device's execution. Pure: no I/O, time is a parameter.
 */
import { onMains, type DeviceMetrics } from './metrics.js';

export const DEPLOYMENT_STATUSES = ['scheduled', 'in_progress', 'paused', 'halted', 'completed', 'cancelled', 'rolled_back'] as const;
export type DeploymentState = (typeof DEPLOYMENT_STATUSES)[number];

/** Per-device execution states, in the manner of AWS IoT Jobs. */
export const EXECUTION_STATES = ['queued', 'in_progress', 'succeeded', 'failed', 'timed_out', 'rejected', 'skipped', 'cancelled', 'rolled_back'] as const;
export type ExecutionState = (typeof EXECUTION_STATES)[number];

export const DEPLOYMENT_ACTIONS = ['start', 'pause', 'resume', 'promote', 'abort', 'rollback', 'acknowledge', 'halt'] as const;
export type DeploymentAction = (typeof DEPLOYMENT_ACTIONS)[number];

/** Which states each action may be taken from, and where it leads. */
export const TRANSITIONS: Record<DeploymentAction, { from: readonly DeploymentState[]; to: DeploymentState }> = {
  start: { from: ['scheduled'], to: 'in_progress' },
  pause: { from: ['in_progress'], to: 'paused' },
  resume: { from: ['paused'], to: 'in_progress' },
  promote: { from: ['in_progress', 'paused'], to: 'in_progress' },
  abort: { from: ['scheduled', 'in_progress', 'paused', 'halted'], to: 'cancelled' },
  rollback: { from: ['in_progress', 'paused', 'halted', 'completed', 'cancelled'], to: 'rolled_back' },
  acknowledge: { from: ['halted'], to: 'in_progress' },
  /** An operator's (or the advisor's) halt: as a gate's, it waits for an acknowledgement, a rollback or an abort. */
  halt: { from: ['in_progress', 'paused'], to: 'halted' },
};

export const TERMINAL_DEPLOYMENT_STATES: ReadonlySet<DeploymentState> = new Set(['completed', 'cancelled', 'rolled_back']);
export const TERMINAL_EXECUTION_STATES: ReadonlySet<ExecutionState> = new Set(['succeeded', 'failed', 'timed_out', 'rejected', 'cancelled', 'rolled_back']);

export type Rate = { maxPerMinute: number } | { exponential: { base: number; factor: number; every: number; max: number } };

export interface Gate {
  /** Halt when more than this share of judged devices failed or rejected the update. */
  maxFailureShare: number;
  /** Halt when more than this share of judged devices timed out. */
  maxTimeoutShare: number;
  /**
   * A device has *regressed* when, watched for `observeMs` after its update,
   * its CPU rose by more than this many points over its own baseline (taken
   * just before its update)...
   */
  maxCpuRegression: number;
  /** ...or its memory by more than this many points... */
  maxMemoryRegression: number;
  /** ...or its battery drain by more than this many % per hour. */
  maxBatteryDrainRegression: number;
  /** Halt when more than this share of observed devices regressed. */
  maxRegressedShare: number;
  /** No verdict before this many devices are judged (unless the ring has fewer). */
  minDevices: number;
  /**
   * The evidence a stage needs to pass: when its soak ends, at least this many
   * of its devices (or all of them, in a smaller ring) must have an outcome the
   * gate could judge. Fewer (devices offline, skipped, failing pre-flight)
   * pauses the deployment with `insufficient_evidence` for an operator to
   * decide, instead of moving on with no evidence. Defaults to `minDevices`,
   * the outcomes a verdict needs anyway; 0 turns the rule off.
   */
  minJudged: number;
  /**
   * Failures are also judged per device model, so that a release that breaks
   * one model halts before that model's share of the fleet dilutes it: a model
   * is judged once this many of its devices have an outcome (0 turns it off).
   */
  minModelDevices: number;
  /** How long after its update a device is watched before its health counts. */
  observeMs: number;
  /**
   * An update still running after this long counts as timed out for the gate
   * (a crashed agent answers nothing; waiting for the task's own timeout would
   * let the release reach more devices meanwhile). 0 turns it off.
   */
  stalledMs: number;
  /**
   * 0: halt as soon as an observed share is over its limit (a fixed
   * threshold). Above 0 (default 0.99): halt only when the limit is exceeded at
   * that confidence (the Wilson lower bound of the share), so that noise in
   * small samples does not halt good releases.
   */
  confidence: number;
}

export interface Preflight {
  minBattery: number;
  requireCharging: boolean;
  /** % of the disk that must be free. */
  minFreeDisk: number;
}

export interface Stage {
  ring: string;
  rate: Rate;
  soakMs: number;
  gate: Gate;
  preflight: Preflight;
}

/** A weekly window in UTC: `days` 0 (Sunday) – 6, `start` and `end` "HH:MM"; an end before the start runs past midnight. */
export interface MaintenanceWindow {
  days: number[];
  start: string;
  end: string;
}

export interface Payload {
  type: string;
  params: Record<string, unknown>;
}

export interface DeploymentSpec {
  name: string;
  payload: Payload;
  stages: Stage[];
  maintenanceWindows: MaintenanceWindow[];
  autoRollback: boolean;
  rollbackPayload: Payload;
}

export const DEFAULT_GATE: Gate = {
  maxFailureShare: 0.05,
  maxTimeoutShare: 0.05,
  maxCpuRegression: 20,
  maxMemoryRegression: 15,
  maxBatteryDrainRegression: 6,
  maxRegressedShare: 0.1,
  minDevices: 10,
  minJudged: 10,
  minModelDevices: 3,
  observeMs: 2 * 60_000,
  stalledMs: 5 * 60_000,
  confidence: 0.99,
};

export const DEFAULT_PREFLIGHT: Preflight = { minBattery: 20, requireCharging: false, minFreeDisk: 5 };

/** Canary starts slowly and soaks longest; later rings go faster. */
export function defaultStage(ring: string, index: number): Stage {
  return {
    ring,
    // Canary starts at 10 devices a minute, so that a bad release is caught within about the first hundred.
    rate: index === 0 ? { exponential: { base: 10, factor: 2, every: 100, max: 500 } } : { exponential: { base: 50, factor: 2, every: 100, max: 2000 } },
    soakMs: index === 0 ? 15 * 60_000 : 10 * 60_000,
    gate: { ...DEFAULT_GATE },
    preflight: { ...DEFAULT_PREFLIGHT },
  };
}

// ------------------------------------------------------------------ rate

/** Executions per minute allowed now, given how many have succeeded in this stage. */
export function ratePerMinute(rate: Rate, successes: number): number {
  if ('maxPerMinute' in rate) return rate.maxPerMinute;
  const e = rate.exponential;
  const steps = Math.floor(successes / Math.max(1, e.every));
  return Math.min(e.max, e.base * e.factor ** Math.min(steps, 60));
}

// ------------------------------------------------------------------ maintenance windows

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

/** Whether `at` (ms since the epoch) falls in one of the windows; no windows means always. */
export function inMaintenanceWindow(windows: readonly MaintenanceWindow[], at: number): boolean {
  if (windows.length === 0) return true;
  const d = new Date(at);
  const day = d.getUTCDay();
  const minute = d.getUTCHours() * 60 + d.getUTCMinutes();
  return windows.some((w) => {
    const start = minutesOf(w.start);
    const end = minutesOf(w.end);
    if (start <= end) return w.days.includes(day) && minute >= start && minute < end;
    // Past midnight: the part before midnight belongs to the listed day, the part after to the next one.
    return (w.days.includes(day) && minute >= start) || (w.days.includes((day + 6) % 7) && minute < end);
  });
}

// ------------------------------------------------------------------ pre-flight

/** Null when the device qualifies, else why not. A device on mains power (charging, or without a battery) passes the battery checks. */
export function preflightFailure(p: Preflight, d: DeviceMetrics): string | null {
  const mains = onMains(d);
  if (p.requireCharging && !mains) return 'pre-flight: not charging, and the stage requires it';
  if (!mains && d.battery !== null && d.battery < p.minBattery) return `pre-flight: battery ${d.battery.toFixed(0)}% is below the ${p.minBattery}% minimum`;
  const free = 100 - d.disk;
  if (free < p.minFreeDisk) return `pre-flight: ${free.toFixed(1)}% of the disk is free, below the ${p.minFreeDisk}% minimum`;
  return null;
}

// ------------------------------------------------------------------ gate

/** What a gate judges: the devices of one stage that have an outcome. */
export interface GateInput {
  ring: string;
  /** Devices in the stage's ring that are not held (the denominator's upper bound, for small rings). */
  ringDevices: number;
  /** Whether every device of the stage has an outcome (or cannot get one now). */
  stageDone: boolean;
  succeeded: number;
  failed: number;
  rejected: number;
  timedOut: number;
  /**
   * Updates still running after the gate's `stalledMs`, or whose device went
   * offline during the update: counted as timed out.
   */
  stalled: number;
  /** Devices watched long enough after a successful update, and how many of them regressed over their own baselines. */
  observed: number;
  regressed: number;
  /** Per-device health changes over each device's own baseline (for the averages in reasons). */
  cpu: Moments;
  memory: Moments;
  drain: Moments;
  /** Outcomes per device model: judged and failed (failed or rejected). */
  models: ReadonlyMap<string, { judged: number; failed: number }>;
}

/** Count, sum and sum of squares: enough for a mean and its confidence bound, kept incrementally. */
export interface Moments {
  n: number;
  sum: number;
  sumSq: number;
}

export function emptyMoments(): Moments {
  return { n: 0, sum: 0, sumSq: 0 };
}

export function addMoment(m: Moments, x: number, sign: 1 | -1 = 1): void {
  m.n += sign;
  m.sum += sign * x;
  m.sumSq += sign * x * x;
}

export function momentsOf(xs: readonly number[]): Moments {
  const m = emptyMoments();
  for (const x of xs) addMoment(m, x);
  return m;
}

export type Verdict = { verdict: 'pass' | 'fail' | 'wait'; reason: string; figures: Record<string, number> };

/** z for a one-sided bound at `confidence` (0.8–0.999); 0 for a fixed threshold. */
export function zFor(confidence: number): number {
  if (confidence <= 0) return 0;
  // Acklam's rational approximation of the normal quantile, good to 1e-9 here.
  const p = Math.min(0.999999, Math.max(0.5, confidence));
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const q = Math.sqrt(-2 * Math.log(1 - p));
  if (p > 0.97575) {
    return -((((((c[0] as number) * q + (c[1] as number)) * q + (c[2] as number)) * q + (c[3] as number)) * q + (c[4] as number)) * q + (c[5] as number)) /
      (((((d[0] as number) * q + (d[1] as number)) * q + (d[2] as number)) * q + (d[3] as number)) * q + 1);
  }
  const r = p - 0.5;
  const s = r * r;
  return ((((((a[0] as number) * s + (a[1] as number)) * s + (a[2] as number)) * s + (a[3] as number)) * s + (a[4] as number)) * s + (a[5] as number)) * r /
    (((((((b[0] as number) * s + (b[1] as number)) * s + (b[2] as number)) * s + (b[3] as number)) * s + (b[4] as number)) * s + 1));
}

/** Wilson score lower bound of a proportion k/n at one-sided z. */
export function wilsonLower(k: number, n: number, z: number): number {
  if (n === 0) return 0;
  const p = k / n;
  if (z === 0) return p;
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const margin = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return Math.max(0, (centre - margin) / (1 + z2 / n));
}

/** Lower confidence bound of a mean (normal approximation); the mean itself at z = 0. */
export function meanLower(m: Moments, z: number): { mean: number; lower: number } {
  if (m.n === 0) return { mean: 0, lower: 0 };
  const mean = m.sum / m.n;
  if (z === 0) return { mean, lower: mean };
  if (m.n < 2) return { mean, lower: -Infinity };
  const variance = Math.max(0, (m.sumSq - m.n * mean * mean) / (m.n - 1));
  return { mean, lower: mean - (z * Math.sqrt(variance)) / Math.sqrt(m.n) };
}

const pct = (x: number): string => `${Math.round(x * 1000) / 10}%`;
/** A lower bound shown with enough digits to be visibly above its limit. */
const pctOver = (x: number, limit: number): string => (Math.round(x * 1000) / 1000 > limit ? pct(x) : `${Math.floor(x * 100_000) / 1000}%`);
const num = (x: number): string => (Math.round(x * 10) / 10).toString();

/** Whether one device's changes over its own baseline exceed the gate's limits. */
export function regressed(g: Gate, cpu: number, memory: number, drain: number): boolean {
  return cpu > g.maxCpuRegression || memory > g.maxMemoryRegression || drain > g.maxBatteryDrainRegression;
}

/**
 * Judges one stage. `fail` when a limit is exceeded (at the gate's confidence),
 * `pass` when enough devices were judged and none is, `wait` otherwise. The
 * reason says what was measured against which limit, in plain words.
 */
export function judgeGate(g: Gate, x: GateInput): Verdict {
  const timedOut = x.timedOut + x.stalled;
  const judged = x.succeeded + x.failed + x.rejected + timedOut;
  const failures = x.failed + x.rejected;
  const z = zFor(g.confidence);
  const mean = (m: Moments): number => (m.n === 0 ? 0 : Math.round((m.sum / m.n) * 100) / 100);
  const figures: Record<string, number> = {
    judged, failed: failures, timedOut, stalled: x.stalled, observed: x.observed, regressed: x.regressed,
    cpuRegression: mean(x.cpu), memoryRegression: mean(x.memory), drainRegression: mean(x.drain),
  };
  // A ring smaller than minDevices is judged once it is done; otherwise wait for minDevices outcomes.
  const need = Math.min(g.minDevices, Math.max(1, x.ringDevices));
  const enough = judged >= need || (x.stageDone && judged > 0);
  const at = `ring ${x.ring}`;
  const bound = (low: number, limit: number): string => (z === 0 ? '' : ` (at ${Math.round(g.confidence * 100)}% confidence: at least ${pctOver(low, limit)})`);
  if (enough) {
    const fLow = wilsonLower(failures, judged, z);
    if (failures > 0 && fLow > g.maxFailureShare) {
      return { verdict: 'fail', figures, reason: `halted at ${at}: ${failures} of ${judged} devices (${pct(failures / judged)}) failed, above the ${pct(g.maxFailureShare)} limit${bound(fLow, g.maxFailureShare)}` };
    }
    const tLow = wilsonLower(timedOut, judged, z);
    if (timedOut > 0 && tLow > g.maxTimeoutShare) {
      const stalled = x.stalled > 0 ? ` (${x.stalled} of them stalled: still running after ${Math.round(g.stalledMs / 60_000)} minutes, or offline since the update began)` : '';
      return { verdict: 'fail', figures, reason: `halted at ${at}: ${timedOut} of ${judged} devices (${pct(timedOut / judged)}) timed out${stalled}, above the ${pct(g.maxTimeoutShare)} limit${bound(tLow, g.maxTimeoutShare)}` };
    }
  }
  if (g.minModelDevices > 0) {
    // Every model is judged again at every outcome: each look asks for much stronger evidence (the
    // error rate split 50 ways), or a good release would halt on the first unlucky model.
    const zModel = z === 0 ? 0 : zFor(1 - (1 - g.confidence) / 50);
    const modelBound = (low: number): string => (z === 0 ? '' : ` (at ${Math.round((1 - (1 - g.confidence) / 50) * 1000) / 10}% confidence: at least ${pctOver(low, g.maxFailureShare)})`);
    for (const [model, m] of x.models) {
      if (m.judged < g.minModelDevices || m.failed === 0) continue;
      const low = wilsonLower(m.failed, m.judged, zModel);
      if (low > g.maxFailureShare) {
        return { verdict: 'fail', figures, reason: `halted at ${at}: ${m.failed} of ${m.judged} ${model} devices (${pct(m.failed / m.judged)}) failed, above the ${pct(g.maxFailureShare)} limit${modelBound(low)}` };
      }
    }
  }
  const needObserved = Math.min(g.minDevices, Math.max(1, x.succeeded));
  const enoughObserved = x.observed >= needObserved || (x.stageDone && x.observed > 0 && x.observed >= x.succeeded);
  if (enoughObserved && x.regressed > 0) {
    const rLow = wilsonLower(x.regressed, x.observed, z);
    if (rLow > g.maxRegressedShare) {
      return {
        verdict: 'fail',
        figures,
        reason:
          `halted at ${at}: ${x.regressed} of ${x.observed} devices (${pct(x.regressed / x.observed)}) regressed over their own baselines, above the ${pct(g.maxRegressedShare)} limit${bound(rLow, g.maxRegressedShare)}; ` +
          `on average CPU ${signed(figures.cpuRegression ?? 0)} points, memory ${signed(figures.memoryRegression ?? 0)} points, battery drain ${signed(figures.drainRegression ?? 0)}%/h`,
      };
    }
  }
  if (!enough || !enoughObserved) {
    return { verdict: 'wait', figures, reason: `${at}: ${judged} of ${need} devices judged and ${x.observed} observed so far` };
  }
  return {
    verdict: 'pass',
    figures,
    reason: `${at} passed: ${failures} of ${judged} failed (${pct(judged === 0 ? 0 : failures / judged)}), ${timedOut} timed out, ${x.regressed} of ${x.observed} regressed; CPU ${signed(figures.cpuRegression ?? 0)} points, memory ${signed(figures.memoryRegression ?? 0)} points, battery drain ${signed(figures.drainRegression ?? 0)}%/h on average`,
  };
}

function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${num(x)}`;
}

// ------------------------------------------------------------------ evidence

/** What became of a stage's devices when its soak ended: how many the gate could judge, and why not the others. */
export interface StageEvidence {
  ring: string;
  /** The stage's devices (executions). */
  devices: number;
  /** Devices with an outcome the gate judges: succeeded, failed, rejected, timed out, or stalled mid-update. */
  judged: number;
  /** Updates still running (and not stalled). */
  running: number;
  /** Waiting for their device: offline when their turn came, or gone during the update. */
  offline: number;
  /** Waiting with their device online (not dispatched yet). */
  queued: number;
  /** Skipped because the device cannot run the payload (no agent, no handler), by reason. */
  refused: ReadonlyMap<string, number>;
  /** Skipped by the stage's pre-flight checks, by reason. */
  preflight: ReadonlyMap<string, number>;
}

const total = (m: ReadonlyMap<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0);

/** "3 skipped (the agent does not offer task type deploy: 2; no agent runs on this device: 1)": the commonest reasons first, at most three. */
function byReason(n: number, what: string, reasons: ReadonlyMap<string, number>): string {
  const sorted = [...reasons.entries()].sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
  const shown = sorted.slice(0, 3).map(([r, k]) => `${r}: ${k}`);
  if (sorted.length > 3) shown.push(`${sorted.length - 3} other reasons: ${sorted.slice(3).reduce((x, [, k]) => x + k, 0)}`);
  return `${n} ${what} (${shown.join('; ')})`;
}

/** Why devices of a stage were not judged, in words: "1 offline, 2 skipped (...), 1 failed pre-flight (...)"; empty when all were. */
export function unjudgedNote(x: StageEvidence): string {
  const parts: string[] = [];
  if (x.offline > 0) parts.push(`${x.offline} offline`);
  if (x.queued > 0) parts.push(`${x.queued} not dispatched yet`);
  if (x.running > 0) parts.push(`${x.running} still updating`);
  const refused = total(x.refused);
  if (refused > 0) parts.push(byReason(refused, 'skipped', x.refused));
  const preflight = total(x.preflight);
  if (preflight > 0) parts.push(byReason(preflight, 'failed pre-flight', x.preflight));
  return parts.join(', ');
}

export function evidenceFigures(x: StageEvidence, required: number): Record<string, number> {
  return { devices: x.devices, judged: x.judged, required, offline: x.offline, queued: x.queued, running: x.running, skipped: total(x.refused), failedPreflight: total(x.preflight) };
}

/**
 * How many judged devices a stage needs to pass: the gate's `minJudged`, or
 * every device of a smaller ring. Specs stored before `minJudged` existed
 * take `minDevices`, its default.
 */
export function requiredEvidence(g: Gate, devices: number): number {
  return Math.min(minJudgedOf(g), devices);
}

function minJudgedOf(g: Gate): number {
  return typeof g.minJudged === 'number' && Number.isFinite(g.minJudged) ? g.minJudged : g.minDevices;
}

/**
 * Null when the stage has the evidence its gate asks for; otherwise the reason
 * (how many devices could be judged, and why the rest could not) and figures
 * for the evaluation that pauses the deployment.
 */
export function evidenceShortfall(g: Gate, x: StageEvidence): { reason: string; figures: Record<string, number> } | null {
  const required = requiredEvidence(g, x.devices);
  if (x.judged >= required) return null;
  const note = unjudgedNote(x);
  return {
    figures: evidenceFigures(x, required),
    reason:
      `insufficient evidence at ring ${x.ring}: ${x.judged} of ${x.devices} devices could be judged, below the ${required} required` +
      `${required < minJudgedOf(g) ? ` (every device, in a ring smaller than minJudged ${minJudgedOf(g)})` : ' (minJudged)'}` +
      `${note === '' ? '' : `; not judged: ${note}`}; paused: promote to go on without it, resume to wait one more soak for it, or abort`,
  };
}

// ------------------------------------------------------------------ outcome

/** How a deployment ended, kept with it: what each device's execution came to. */
export interface DeploymentOutcome {
  devices: number;
  /** Devices that run the release (succeeded). */
  updated: number;
  notUpdated: number;
  counts: Record<ExecutionState, number>;
  /** In words, with the reasons devices were not updated. */
  summary: string;
}

export function countExecutionStates(executions: Iterable<Execution>): Record<ExecutionState, number> {
  const out = Object.fromEntries(EXECUTION_STATES.map((s) => [s, 0])) as Record<ExecutionState, number>;
  for (const e of executions) out[e.state]++;
  return out;
}

export function deploymentOutcome(executions: Iterable<Execution>): DeploymentOutcome {
  const list = [...executions];
  const counts = countExecutionStates(list);
  const skipped = new Map<string, number>();
  for (const e of list) if (e.state === 'skipped') skipped.set(e.reason ?? 'no reason given', (skipped.get(e.reason ?? 'no reason given') ?? 0) + 1);
  const devices = list.length;
  const updated = counts.succeeded;
  const parts: string[] = [];
  if (counts.skipped > 0) parts.push(byReason(counts.skipped, 'skipped', skipped));
  if (counts.failed > 0) parts.push(`${counts.failed} failed`);
  if (counts.rejected > 0) parts.push(`${counts.rejected} rejected`);
  if (counts.timed_out > 0) parts.push(`${counts.timed_out} timed out`);
  if (counts.queued > 0) parts.push(`${counts.queued} never reached (offline)`);
  if (counts.in_progress > 0) parts.push(`${counts.in_progress} still updating`);
  if (counts.cancelled > 0) parts.push(`${counts.cancelled} cancelled`);
  if (counts.rolled_back > 0) parts.push(`${counts.rolled_back} rolled back`);
  const summary = devices === 0 ? 'no device was in any ring' : updated === devices ? `all ${devices} devices updated` : `${updated} of ${devices} devices updated; not updated: ${parts.join(', ')}`;
  return { devices, updated, notUpdated: devices - updated, counts, summary };
}

/** Why a deployment is paused: an operator paused it, or its gate had too little evidence to pass. */
export type PauseReason = 'operator' | 'insufficient_evidence';

export function pauseReasonOf(d: DeploymentRecord): PauseReason | null {
  if (d.status !== 'paused') return null;
  return d.detail.pauseReason === 'insufficient_evidence' ? 'insufficient_evidence' : 'operator';
}

export function outcomeOf(d: DeploymentRecord): DeploymentOutcome | null {
  const o = d.detail.outcome;
  return typeof o === 'object' && o !== null ? (o as DeploymentOutcome) : null;
}

/**
 * The baseline of the deployment-safety benchmark, in the manner of AWS IoT
 * Jobs `abortConfig`: abort when more than `share` of at least `min` executed
 * devices failed. Health is not looked at.
 */
export function fixedThresholdGate(share = 0.1, min = 10): Gate {
  return { ...DEFAULT_GATE, maxFailureShare: share, maxTimeoutShare: share, minDevices: min, minJudged: min, confidence: 0, maxRegressedShare: 1, minModelDevices: 0, observeMs: 0, stalledMs: 0 };
}

// ------------------------------------------------------------------ records

export type DeploymentKind = 'rollout' | 'seed';

/** A deployment as stored. */
export interface DeploymentRecord {
  seq: number;
  id: string;
  kind: DeploymentKind;
  spec: DeploymentSpec;
  status: DeploymentState;
  /** Index of the stage being rolled out. */
  stage: number;
  /** `dispatching` the stage's devices, or `soaking` after the last of them is done. */
  phase: 'dispatching' | 'soaking';
  soakUntil: number | null;
  /** A halt acknowledged at this instant: the stage's gate only counts outcomes after it. */
  gateResetAt: number;
  haltReason: string | null;
  /**
   * What only one kind needs: the seed facade's recovered agents; a rollout's
   * `pauseReason` (see `pauseReasonOf`) and, once it ended, its `outcome`
   * (a `DeploymentOutcome`).
   */
  detail: Record<string, unknown>;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

/** One device's execution of a deployment. */
export interface Execution {
  deviceId: string;
  stage: number;
  state: ExecutionState;
  taskId: string | null;
  reason: string | null;
  /** The device's health just before its update, and once it was watched for `observeMs` after. */
  baseline: DeviceMetrics | null;
  observed: DeviceMetrics | null;
  cpuDelta: number | null;
  memoryDelta: number | null;
  drainDelta: number | null;
  rollbackTaskId: string | null;
  queuedAt: number;
  startedAt: number | null;
  endedAt: number | null;
  observedAt: number | null;
}

export interface GateEvaluation {
  stage: number;
  ring: string;
  at: number;
  /**
   * `skip`: the ring had no devices and was passed at once; `insufficient_evidence`: the soak ended with
   * too few devices judged, and the deployment was paused.
   */
  verdict: 'pass' | 'fail' | 'wait' | 'override' | 'skip' | 'insufficient_evidence';
  reason: string;
  figures: Record<string, number>;
}
