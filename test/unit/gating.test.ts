import { describe, expect, it } from 'vitest';
import { DEFAULT_GATE } from '../../src/domain/deployment.js';
import { checkGate, parseGatingText } from '../../src/domain/gating.js';

describe('natural-language gating factors', () => {
  it("reads the seed's example: the drain and the failures, and says the scope cannot be a gate", () => {
    const p = parseGatingText('halt if battery drain rises more than 5% per hour on laptops in Coimbatore, or if more than 2% fail');
    expect(p.gate).toEqual({ maxBatteryDrainRegression: 5, maxFailureShare: 0.02 });
    expect(p.effective).toEqual({ ...DEFAULT_GATE, maxBatteryDrainRegression: 5, maxFailureShare: 0.02 });
    expect(p.understood).toEqual([
      { phrase: 'battery drain rises more than 5% per hour', as: 'maxBatteryDrainRegression = 5' },
      { phrase: 'more than 2% fail', as: 'maxFailureShare = 0.02' },
    ]);
    expect(p.notUnderstood.map((n) => n.phrase)).toEqual(['on laptops in coimbatore']);
    expect(p.notUnderstood[0]?.why).toMatch(/^a gate judges every device of its ring/);
    expect(p.clamped).toEqual([]);
  });

  it('reads every factor of the grammar', () => {
    const p = parseGatingText(
      'stop when cpu rises by more than 15 points; memory grows over 10 points; timeouts above 3%; failure rate over 1 percent; ' +
        'more than 20% of devices regress; after at least 25 devices; watch each device for 10 minutes; stalled after 90 seconds; at 95% confidence',
    );
    expect(p.gate).toEqual({
      maxCpuRegression: 15, maxMemoryRegression: 10, maxTimeoutShare: 0.03, maxFailureShare: 0.01, maxRegressedShare: 0.2,
      minDevices: 25, observeMs: 600_000, stalledMs: 90_000, confidence: 0.95,
    });
    expect(p.notUnderstood).toEqual([]);
  });

  it('clamps values outside the plan\'s bounds, and says so; what it cannot read it says, whole', () => {
    const p = parseGatingText('halt if more than 150% fail, or if the moon is full');
    expect(p.gate).toEqual({ maxFailureShare: 1 });
    expect(p.clamped).toEqual(['maxFailureShare 1.5 is outside 0–1: 1']);
    expect(p.notUnderstood).toEqual([{ phrase: 'the moon is full', why: 'no gating factor recognised (see docs/advisor.md for the phrasings understood)' }]);
    expect(parseGatingText('')).toMatchObject({ gate: {}, understood: [], notUnderstood: [] });
  });

  it('checks a proposal by the same bounds: unknown fields and non-numbers are refused, integers rounded', () => {
    expect(checkGate({ maxFailureShare: 0.5, minDevices: 2.6, maxCpuRegression: -3, teleport: 1, confidence: '0.9' })).toEqual({
      gate: { maxFailureShare: 0.5, minDevices: 3, maxCpuRegression: 0 },
      clamped: ['maxCpuRegression -3 is outside 0–100: 0'],
      rejected: ['teleport: not a gate field', 'confidence: must be a number'],
    });
  });
});
