import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseRing, emptyRingCounts, planRebalance } from '../../src/domain/rings.js';
import type { RingMember } from '../../src/domain/rings.js';
import { RINGS } from '../../src/domain/types.js';
import type { RingOrUnassigned } from '../../src/domain/types.js';

describe('chooseRing (the seed rule)', () => {
  it.each([
    [true, { canary: 0, dev: 0, stage: 0, prod: 0 }, 'canary'],
    [true, { canary: 1, dev: 0, stage: 0, prod: 0 }, 'dev'],
    [true, { canary: 1, dev: 1, stage: 1, prod: 0 }, 'prod'],
    [true, { canary: 3, dev: 2, stage: 2, prod: 2 }, 'dev'],
    [false, { canary: 0, dev: 0, stage: 0, prod: 0 }, 'canary'],
    [false, { canary: 5, dev: 1, stage: 0, prod: 0 }, 'dev'],
    // An unhealthy device never goes to prod, however empty prod is.
    [false, { canary: 9, dev: 9, stage: 0, prod: 0 }, 'canary'],
  ] as const)('healthy=%s counts=%o → %s', (healthy, counts, expected) => {
    expect(chooseRing(healthy, { ...emptyRingCounts(), ...counts })).toBe(expected);
  });

  it('never sends an unhealthy device past dev, for any counts', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(1000), { minLength: 4, maxLength: 4 }), (n) => {
        const counts = { ...emptyRingCounts(), canary: n[0] ?? 0, dev: n[1] ?? 0, stage: n[2] ?? 0, prod: n[3] ?? 0 };
        expect(['canary', 'dev']).toContain(chooseRing(false, counts));
        const healthyRing = chooseRing(true, counts);
        expect(counts[healthyRing]).toBe(Math.min(...RINGS.map((r) => counts[r])));
      }),
    );
  });
});

const memberArb = fc.record({
  id: fc.uuid(),
  ring: fc.constantFrom<RingOrUnassigned>('canary', 'dev', 'stage', 'prod', 'unassigned'),
  healthy: fc.boolean(),
  unhealthyReasons: fc.constant<string[]>(['cpu 90% >= 80%']),
});

describe('planRebalance', () => {
  it('moves exactly the unhealthy prod devices, to canary or dev, with a reason', () => {
    fc.assert(
      fc.property(fc.uniqueArray(memberArb, { selector: (m) => m.id, maxLength: 60 }), (members: RingMember[]) => {
        const counts = emptyRingCounts();
        for (const m of members) counts[m.ring] += 1;
        const moves = planRebalance(members, counts);
        const expected = members.filter((m) => m.ring === 'prod' && !m.healthy).map((m) => m.id);
        expect(moves.map((m) => m.agentId)).toEqual(expected);
        for (const move of moves) {
          expect(move.from).toBe('prod');
          expect(['canary', 'dev']).toContain(move.to);
          expect(move.reason).toMatch(/unhealthy in prod/);
        }
        // Deterministic: no random moves.
        expect(planRebalance(members, counts)).toEqual(moves);
      }),
    );
  });

  it('spreads moved devices over canary and dev by fill', () => {
    const members: RingMember[] = ['a', 'b', 'c'].map((id) => ({ id, ring: 'prod', healthy: false, unhealthyReasons: [] }));
    const moves = planRebalance(members, { ...emptyRingCounts(), canary: 1, dev: 0, prod: 3 });
    expect(moves.map((m) => m.to)).toEqual(['dev', 'canary', 'dev']);
  });
});
