import { describe, expect, it } from 'vitest';
import { readingRisk, ringRisk } from '../../src/domain/risk.js';

describe("a device's risk (the seed's analyze_risk)", () => {
  it('is none for a healthy device on its charger', () => {
    expect(readingRisk({ battery: 90, charging: true, cpu: 20, memory: 40, disk: 30 })).toEqual({ risk_score: 0, level: 'low', factors: [] });
  });

  it("is 100 less the health score, with the seed rule's failures first and then every factor that weighs, heaviest first", () => {
    // battery 25 + charging 5 + CPU 20 × 60/65 + memory 20 × 35/45 + disk 10 × 35/38 = 73.2 points off.
    expect(readingRisk({ battery: 10, charging: false, cpu: 90, memory: 85, disk: 95 })).toEqual({
      risk_score: 73.2,
      level: 'high',
      factors: [
        'fails the seed health rule: battery 10% <= 20%',
        'fails the seed health rule: cpu 90% >= 80%',
        'fails the seed health rule: memory 85% >= 85%',
        'battery 10% and not charging',
        'CPU 90%',
        'memory 85%',
        'disk 95% full',
        'not charging',
      ],
    });
  });

  it('is high whenever the seed rule fails, even on a charger; medium from 25', () => {
    expect(readingRisk({ battery: 10, charging: true, cpu: 20, memory: 40, disk: 30 })).toMatchObject({ risk_score: 50, level: 'high', factors: ['fails the seed health rule: battery 10% <= 20%'] });
    // battery (80 − 40) / 70 × 25 = 14.3, charging 5, CPU 20 × 30/65 = 9.2: 28.5.
    expect(readingRisk({ battery: 40, charging: false, cpu: 60, memory: 40, disk: 30 })).toMatchObject({ risk_score: 28.5, level: 'medium' });
  });

  it('counts a machine without a battery as on mains power', () => {
    expect(readingRisk({ battery: null, charging: null, cpu: 20, memory: 40, disk: 30 })).toEqual({ risk_score: 0, level: 'low', factors: [] });
  });
});

describe("a ring's risk", () => {
  const ring = { name: 'prod', size: 1000, target: 1000, allowUnhealthy: false, p10: 70, p50: 85, unhealthy: 0, unknown: 0 };

  it('is low when its devices fit it, and says so with its figures', () => {
    expect(ringRisk(ring)).toEqual({ risk: 'low', reasons: ['1000 devices, median score 85, tenth 70; none fails the seed rule where it should not'] });
  });

  it('is high with unhealthy devices in a ring meant for healthy ones, or a tenth of scores below 30', () => {
    expect(ringRisk({ ...ring, unhealthy: 12 })).toEqual({ risk: 'high', reasons: ['12 of its 1000 devices (1.2%) fail the seed health rule, in a ring meant for healthy devices'] });
    expect(ringRisk({ ...ring, unhealthy: 3 }).risk).toBe('medium');
    expect(ringRisk({ ...ring, unhealthy: 50, allowUnhealthy: true }).risk).toBe('low');
    expect(ringRisk({ ...ring, p10: 25.04 })).toEqual({ risk: 'high', reasons: ['a tenth of its devices score below 25 (median 85)'] });
  });

  it('is medium off its target by more than a tenth, or with many devices not heard from; unknown when empty', () => {
    expect(ringRisk({ ...ring, size: 1200 })).toEqual({ risk: 'medium', reasons: ['holds 1200 devices against a target of 1000'] });
    expect(ringRisk({ ...ring, unknown: 150 }).risk).toBe('medium');
    expect(ringRisk({ ...ring, size: 0 })).toEqual({ risk: 'unknown', reasons: ['prod has no devices'] });
    expect(ringRisk({ ...ring, size: 1, target: 1 }).reasons).toEqual(['1 device, median score 85, tenth 70; none fails the seed rule where it should not']);
  });
});
