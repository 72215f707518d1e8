import { describe, expect, it } from 'vitest';
import type { Execution, GateInput, StageEvidence } from '../../src/domain/deployment.js';
import {
  DEFAULT_GATE, deploymentOutcome, evidenceShortfall, fixedThresholdGate, inMaintenanceWindow, judgeGate, meanLower, momentsOf, preflightFailure, ratePerMinute, regressed,
  requiredEvidence, TRANSITIONS, unjudgedNote, wilsonLower, zFor,
} from '../../src/domain/deployment.js';
import { parseDeploymentSpec } from '../../src/domain/deployment-spec.js';

const base: GateInput = {
  ring: 'canary', ringDevices: 500, stageDone: false, succeeded: 0, failed: 0, rejected: 0, timedOut: 0, stalled: 0,
  observed: 0, regressed: 0, cpu: momentsOf([]), memory: momentsOf([]), drain: momentsOf([]), models: new Map(),
};
/** Test rows give per-device deltas as arrays, and per-model outcomes as an object. */
type Row = Partial<Omit<GateInput, 'cpu' | 'memory' | 'drain' | 'models'>> & { cpuDeltas?: number[]; memoryDeltas?: number[]; drainDeltas?: number[]; models?: Record<string, { judged: number; failed: number }> };
const input = ({ cpuDeltas = [], memoryDeltas = [], drainDeltas = [], models = {}, ...rest }: Row): GateInput => ({
  ...base, ...rest, cpu: momentsOf(cpuDeltas), memory: momentsOf(memoryDeltas), drain: momentsOf(drainDeltas), models: new Map(Object.entries(models)),
});
const fixed = { ...DEFAULT_GATE, confidence: 0, maxFailureShare: 0.1, maxTimeoutShare: 0.1 };

describe('gate arithmetic', () => {
  it.each<[string, typeof DEFAULT_GATE, Row, 'pass' | 'fail' | 'wait', string]>([
    ['too few judged', fixed, { succeeded: 5, failed: 4 }, 'wait', 'ring canary: 9 of 10 devices judged and 0 observed so far'],
    ['4 of 20 failed, fixed 10% limit', fixed, { succeeded: 16, failed: 4 }, 'fail', 'halted at ring canary: 4 of 20 devices (20%) failed, above the 10% limit'],
    ['rejections count as failures', fixed, { succeeded: 17, failed: 1, rejected: 2 }, 'fail', 'halted at ring canary: 3 of 20 devices (15%) failed, above the 10% limit'],
    ['exactly at the limit passes', fixed, { succeeded: 18, failed: 2, observed: 18, cpuDeltas: [3, -3] }, 'pass', 'ring canary passed: 2 of 20 failed (10%), 0 timed out, 0 of 18 regressed; CPU +0 points, memory +0 points, battery drain +0%/h on average'],
    ['timeouts have their own limit', fixed, { succeeded: 8, timedOut: 2 }, 'fail', 'halted at ring canary: 2 of 10 devices (20%) timed out, above the 10% limit'],
    ['updates still running past stalledMs count as timed out', fixed, { succeeded: 8, timedOut: 1, stalled: 2 }, 'fail', 'halted at ring canary: 3 of 11 devices (27.3%) timed out (2 of them stalled: still running after 5 minutes, or offline since the update began), above the 10% limit'],
    ['2 of 10 at 95% confidence is not enough evidence', { ...DEFAULT_GATE, maxFailureShare: 0.1, confidence: 0.95 }, { succeeded: 8, failed: 2 }, 'wait', 'ring canary: 10 of 10 devices judged and 0 observed so far'],
    ['6 of 20 at 95% confidence halts', { ...DEFAULT_GATE, maxFailureShare: 0.1, confidence: 0.95 }, { succeeded: 14, failed: 6 }, 'fail', 'halted at ring canary: 6 of 20 devices (30%) failed, above the 10% limit (at 95% confidence: at least 16.4%)'],
    ['one model failing halts before it is diluted', { ...DEFAULT_GATE, confidence: 0.95 }, { succeeded: 60, failed: 4, models: { x1: { judged: 60, failed: 0 }, t14: { judged: 4, failed: 4 } } }, 'fail', 'halted at ring canary: 4 of 4 t14 devices (100%) failed, above the 5% limit (at 99.9% confidence: at least 29.5%)'],
    ['one failure in three of a model is not enough evidence', DEFAULT_GATE, { succeeded: 60, failed: 1, models: { x1: { judged: 58, failed: 0 }, t14: { judged: 3, failed: 1 } } }, 'wait', 'ring canary: 61 of 10 devices judged and 0 observed so far'],
    ['regressed devices over their own baselines', fixed, { succeeded: 10, observed: 10, regressed: 4, cpuDeltas: [40, 40, 40, 40, 0, 0, 0, 0, 0, 0] }, 'fail', 'halted at ring canary: 4 of 10 devices (40%) regressed over their own baselines, above the 10% limit; on average CPU +16 points, memory +0 points, battery drain +0%/h'],
    ['one regressed device in 30 is noise at 95% confidence', DEFAULT_GATE, { succeeded: 30, observed: 30, regressed: 1 }, 'pass', 'ring canary passed: 0 of 30 failed (0%), 0 timed out, 1 of 30 regressed; CPU +0 points, memory +0 points, battery drain +0%/h on average'],
    ['a small ring is judged when done', fixed, { ringDevices: 3, stageDone: true, succeeded: 3, observed: 3, cpuDeltas: [1, 2, 3] }, 'pass', 'ring canary passed: 0 of 3 failed (0%), 0 timed out, 0 of 3 regressed; CPU +2 points, memory +0 points, battery drain +0%/h on average'],
  ])('%s', (_name, gate, row, verdict, reason) => {
    const out = judgeGate(gate, input(row));
    expect(out.verdict).toBe(verdict);
    expect(out.reason).toBe(reason);
  });

  it('a device regressed when any change over its own baseline exceeds its limit', () => {
    expect(regressed(DEFAULT_GATE, 20, 15, 6)).toBe(false);
    expect(regressed(DEFAULT_GATE, 20.5, 0, 0)).toBe(true);
    expect(regressed(DEFAULT_GATE, 0, 15.5, 0)).toBe(true);
    expect(regressed(DEFAULT_GATE, 0, 0, 6.5)).toBe(true);
  });

  it('statistics: z, Wilson bound and the mean bound', () => {
    expect(zFor(0.95)).toBeCloseTo(1.6449, 3);
    expect(zFor(0.99)).toBeCloseTo(2.3263, 3);
    expect(zFor(0)).toBe(0);
    expect(wilsonLower(0, 10, 1.645)).toBe(0);
    expect(wilsonLower(5, 10, 0)).toBe(0.5);
    expect(wilsonLower(6, 20, 1.6449)).toBeCloseTo(0.1639, 3);
    expect(meanLower(momentsOf([1, 2, 3]), 0)).toEqual({ mean: 2, lower: 2 });
    expect(meanLower(momentsOf([1, 2, 3]), 1.6449).lower).toBeCloseTo(2 - 1.6449 / Math.sqrt(3), 6);
  });

  it('the fixed-threshold baseline looks at failures only', () => {
    const g = fixedThresholdGate();
    expect(judgeGate(g, input({ succeeded: 10, observed: 10, regressed: 10, cpuDeltas: Array.from({ length: 10 }, () => 80) })).verdict).toBe('pass');
    expect(judgeGate(g, input({ succeeded: 8, failed: 2 })).verdict).toBe('fail');
    expect(judgeGate(g, input({ succeeded: 9, failed: 1, observed: 9, models: { t14: { judged: 1, failed: 1 } } })).verdict).toBe('pass');
  });
});

describe('rates, windows and pre-flight', () => {
  it('rates: fixed, and exponential by successes up to a maximum', () => {
    expect(ratePerMinute({ maxPerMinute: 30 }, 1000)).toBe(30);
    const e = { exponential: { base: 10, factor: 2, every: 50, max: 100 } };
    expect([0, 49, 50, 100, 150, 200, 10_000].map((s) => ratePerMinute(e, s))).toEqual([10, 10, 20, 40, 80, 100, 100]);
  });

  it('maintenance windows in UTC, including one past midnight', () => {
    const at = (iso: string): number => Date.parse(iso);
    const nights = [{ days: [1, 2, 3, 4, 5], start: '22:00', end: '06:00' }];
    expect(inMaintenanceWindow([], at('2026-11-25T12:00:00Z'))).toBe(true);
    expect(inMaintenanceWindow(nights, at('2026-11-25T23:00:00Z'))).toBe(true); // Wednesday night
    expect(inMaintenanceWindow(nights, at('2026-11-26T05:59:00Z'))).toBe(true); // Thursday early, Wednesday's window
    expect(inMaintenanceWindow(nights, at('2026-11-25T12:00:00Z'))).toBe(false);
    expect(inMaintenanceWindow(nights, at('2026-11-29T23:00:00Z'))).toBe(false); // Sunday night
    expect(inMaintenanceWindow(nights, at('2026-11-30T01:00:00Z'))).toBe(false); // Monday early belongs to Sunday
    expect(inMaintenanceWindow([{ days: [3], start: '09:00', end: '17:00' }], at('2026-11-25T16:59:00Z'))).toBe(true);
  });

  it('pre-flight checks battery (unless charging), charging and free disk', () => {
    const d = { battery: 50, charging: false, cpu: 10, memory: 30, disk: 50, drain: 0, cpuTrend: 0 };
    expect(preflightFailure({ minBattery: 20, requireCharging: false, minFreeDisk: 5 }, d)).toBeNull();
    expect(preflightFailure({ minBattery: 60, requireCharging: false, minFreeDisk: 5 }, d)).toBe('pre-flight: battery 50% is below the 60% minimum');
    expect(preflightFailure({ minBattery: 60, requireCharging: false, minFreeDisk: 5 }, { ...d, charging: true })).toBeNull();
    expect(preflightFailure({ minBattery: 0, requireCharging: true, minFreeDisk: 5 }, d)).toBe('pre-flight: not charging, and the stage requires it');
    expect(preflightFailure({ minBattery: 0, requireCharging: false, minFreeDisk: 60 }, d)).toBe('pre-flight: 50.0% of the disk is free, below the 60% minimum');
    // A machine without a battery is on mains power: neither battery check holds it back.
    expect(preflightFailure({ minBattery: 60, requireCharging: true, minFreeDisk: 5 }, { ...d, battery: null, charging: null })).toBeNull();
  });

  it('state transitions: which action is allowed from where', () => {
    expect(TRANSITIONS.start.from).toEqual(['scheduled']);
    expect(TRANSITIONS.acknowledge).toEqual({ from: ['halted'], to: 'in_progress' });
    expect(TRANSITIONS.rollback.from).not.toContain('scheduled');
    expect(TRANSITIONS.abort.from).not.toContain('completed');
  });
});

describe('deployment requests', () => {
  const rings = ['canary', 'dev', 'stage', 'prod'];
  it('fills a default plan over every ring in order', () => {
    const out = parseDeploymentSpec({ name: 'v2', payload: { type: 'deploy', params: { version: '2' } } }, rings);
    if ('errors' in out) throw new Error(out.errors.join('; '));
    expect(out.spec.stages.map((s) => s.ring)).toEqual(rings);
    expect(out.spec.rollbackPayload).toEqual({ type: 'deploy', params: { version: '2', rollback: true } });
    expect(out.spec.autoRollback).toBe(false);
  });

  it('names every problem', () => {
    const out = parseDeploymentSpec(
      {
        name: '',
        payload: { type: 'teleport' },
        plan: { stages: [{ ring: 'moon', rate: { maxPerMinute: 0 } }, { ring: 'dev', gate: { maxFailureShare: 2, bogus: 1 }, preflight: { minBattery: -1 } }, { ring: 'dev' }] },
        maintenanceWindows: [{ days: [7], start: '25:00', end: '06:00' }],
        extra: 1,
      },
      rings,
    );
    expect(out).toEqual({
      errors: [
        'extra: unknown field',
        'name: must be a non-empty string of at most 200 characters',
        'payload.type: must be one of process_data, health_check, deploy, analyze_risk, monitor',
        'plan.stages[0].ring: must name one of the rings (canary, dev, stage, prod)',
        'plan.stages[0].rate.maxPerMinute: must be a number from 0.01 to 1000000',
        'plan.stages[1].gate.maxFailureShare: must be a number from 0 to 1',
        'plan.stages[1].gate.bogus: unknown field',
        'plan.stages[1].preflight.minBattery: must be a number from 0 to 100',
        'plan.stages[2].ring: ring dev has two stages',
        'maintenanceWindows[0].days: must be a non-empty list of weekdays 0 (Sunday) to 6',
        'maintenanceWindows[0].start: must be "HH:MM" (UTC)',
      ],
    });
  });
});

describe('evidence and outcome', () => {
  const evidence = (over: Partial<StageEvidence> = {}): StageEvidence => ({ ring: 'canary', devices: 2, judged: 2, running: 0, offline: 0, queued: 0, refused: new Map(), preflight: new Map(), ...over });

  it('a ring needs minJudged judged devices, or all of a smaller ring; old specs without minJudged take minDevices; 0 turns it off', () => {
    expect(requiredEvidence(DEFAULT_GATE, 2)).toBe(2);
    expect(requiredEvidence(DEFAULT_GATE, 500)).toBe(10);
    expect(requiredEvidence({ ...DEFAULT_GATE, minJudged: 0 }, 500)).toBe(0);
    const stored = { ...DEFAULT_GATE, minDevices: 4 } as Partial<typeof DEFAULT_GATE>;
    delete stored.minJudged;
    expect(requiredEvidence(stored as typeof DEFAULT_GATE, 500)).toBe(4);
    expect(evidenceShortfall(DEFAULT_GATE, evidence())).toBeNull();
    expect(evidenceShortfall(DEFAULT_GATE, evidence({ devices: 0, judged: 0 }))).toBeNull();
    expect(evidenceShortfall({ ...DEFAULT_GATE, minJudged: 0 }, evidence({ devices: 40, judged: 0, offline: 40 }))).toBeNull();
  });

  it('says how many devices could be judged and why not the others, commonest reasons first', () => {
    const x = evidence({
      ring: 'dev', devices: 30, judged: 8, offline: 3, queued: 1, running: 2,
      refused: new Map([['no agent runs on this device', 1], ['the agent does not offer task type deploy', 6]]),
      preflight: new Map([['pre-flight: battery 12% is below the 20% minimum', 2], ['pre-flight: not charging, and the stage requires it', 3], ['pre-flight: a', 1], ['pre-flight: b', 1], ['pre-flight: c', 2]]),
    });
    expect(evidenceShortfall(DEFAULT_GATE, x)).toEqual({
      reason:
        'insufficient evidence at ring dev: 8 of 30 devices could be judged, below the 10 required (minJudged); not judged: 3 offline, 1 not dispatched yet, 2 still updating, ' +
        '7 skipped (the agent does not offer task type deploy: 6; no agent runs on this device: 1), ' +
        '9 failed pre-flight (pre-flight: not charging, and the stage requires it: 3; pre-flight: battery 12% is below the 20% minimum: 2; pre-flight: c: 2; 2 other reasons: 2); ' +
        'paused: promote to go on without it, resume to wait one more soak for it, or abort',
      figures: { devices: 30, judged: 8, required: 10, offline: 3, queued: 1, running: 2, skipped: 7, failedPreflight: 9 },
    });
    expect(unjudgedNote(evidence())).toBe('');
  });

  it('the outcome of a deployment counts every execution state and names why devices were not updated', () => {
    const e = (deviceId: string, state: Execution['state'], reason: string | null = null): Execution => ({
      deviceId, stage: 0, state, taskId: null, reason, baseline: null, observed: null, cpuDelta: null, memoryDelta: null, drainDelta: null,
      rollbackTaskId: null, queuedAt: 0, startedAt: null, endedAt: null, observedAt: null,
    });
    const out = deploymentOutcome([e('a', 'succeeded'), e('b', 'succeeded'), e('c', 'skipped', 'no agent runs on this device'), e('d', 'failed', 'boom'), e('e', 'queued'), e('f', 'timed_out', 'late')]);
    expect(out).toEqual({
      devices: 6, updated: 2, notUpdated: 4,
      counts: { queued: 1, in_progress: 0, succeeded: 2, failed: 1, timed_out: 1, rejected: 0, skipped: 1, cancelled: 0, rolled_back: 0 },
      summary: '2 of 6 devices updated; not updated: 1 skipped (no agent runs on this device: 1), 1 failed, 1 timed out, 1 never reached (offline)',
    });
    expect(deploymentOutcome([e('a', 'succeeded')]).summary).toBe('all 1 devices updated');
    expect(deploymentOutcome([]).summary).toBe('no device was in any ring');
  });

  it('a plan without minJudged takes each stage\'s minDevices; a bad minJudged is named', () => {
    const out = parseDeploymentSpec({ name: 'v', payload: { type: 'deploy' }, plan: { stages: [{ ring: 'canary', gate: { minDevices: 3 } }, { ring: 'dev', gate: { minDevices: 3, minJudged: 1 } }, { ring: 'prod' }] } }, ['canary', 'dev', 'prod']);
    if ('errors' in out) throw new Error(out.errors.join('; '));
    expect(out.spec.stages.map((s) => [s.gate.minDevices, s.gate.minJudged])).toEqual([[3, 3], [3, 1], [10, 10]]);
    expect(parseDeploymentSpec({ name: 'v', payload: { type: 'deploy' }, plan: { stages: [{ ring: 'canary', gate: { minJudged: 1.5 } }] } }, ['canary'])).toEqual({ errors: ['plan.stages[0].gate.minJudged: must be a number from 0 to 1000000'] });
  });
});
