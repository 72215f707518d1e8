import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { apportion, compileRingConfig, DEFAULT_RING_CONFIG, matchesRule, parseRule, ringTargets } from '../../src/domain/ring-config.js';

describe('ring rules', () => {
  it.each([
    ['department = IT', { id: 'd1', department: 'IT' }, true],
    ['department = IT', { id: 'd1', department: 'HR' }, false],
    ['department != IT', { id: 'd1', department: 'HR' }, true],
    ['department != IT', { id: 'd1' }, true],
    ['site = "Berlin HQ" and model in (X1, T14)', { id: 'd1', site: 'Berlin HQ', model: 'T14' }, true],
    ['site = "Berlin HQ" and model in (X1, T14)', { id: 'd1', site: 'Berlin HQ', model: 'P1' }, false],
    ['model not in (X1,T14)', { id: 'd1', model: 'P1' }, true],
    ['tag = kiosk', { id: 'd1', tags: ['lobby', 'kiosk'] }, true],
    ['tag = kiosk', { id: 'd1', tags: [] }, false],
    ['id in (d1, d2)', { id: 'd2' }, true],
  ] as const)('%s on %o → %s', (text, subject, expected) => {
    const rule = parseRule(text);
    if ('error' in rule) throw new Error(rule.error);
    expect(matchesRule(rule, subject)).toBe(expected);
  });

  it.each([
    ['', 'a rule must not be empty'],
    ['colour = red', 'expected a field (id, site, department, manufacturer, model, osName, tag) but found "colour"'],
    ['site', 'expected =, !=, in or not in after "site" but found the end'],
    ['site =', 'expected a value after "site ="'],
    ['site in (a b)', 'expected "," or ")" in the list of "site in"'],
    ['site = a or site = b', 'expected "and" between clauses but found "or"'],
    ['site = "open', 'unterminated quote at position 8'],
  ])('refuses %j: %s', (text, message) => {
    expect(parseRule(text)).toEqual({ error: message });
  });
});

describe('ring configuration', () => {
  it('accepts the defaults and marks the early half as allowing unhealthy devices', () => {
    const out = compileRingConfig(DEFAULT_RING_CONFIG);
    if ('errors' in out) throw new Error(out.errors.join('; '));
    expect(out.config.unhealthyOk).toEqual([true, true, false, false]);
  });

  it('names every problem with its place', () => {
    const out = compileRingConfig({
      rings: [
        { name: 'canary', share: 0.5 },
        { name: 'canary', share: 0.2, min: 5, max: 2 },
        { name: 'Prod!', share: 2 },
      ],
      pins: [{ rule: 'department == IT', ring: 'nowhere' }],
      holds: ['tag ='],
      policy: 'random',
      hysteresis: -1,
      dwellMs: 'soon',
      extra: true,
    });
    expect(out).toEqual({
      errors: [
        'extra: unknown setting',
        'rings[1].name: "canary" is used twice; ring names must be unique',
        'rings[1]: min must not exceed max',
        'rings[2].name: must match ^[a-z][a-z0-9_-]{0,31}$ and not be "unassigned"',
        'rings[2].share: must be a number from 0 to 1',
        'pins[0].rule: expected a value after "department ="',
        'pins[0].ring: must name one of the rings (canary, canary, Prod!)',
        'holds[0]: expected a value after "tag ="',
        'policy: must be one of health, representative',
        'hysteresis: must be a score margin from 0 to 100',
        'dwellMs: must be an integer number of milliseconds from 0 to 30 days',
      ],
    });
    expect(compileRingConfig({ rings: [{ name: 'a', share: 0.5 }, { name: 'b', share: 0.4 }] })).toEqual({ errors: ['rings: the shares must sum to 1 (they sum to 0.9)'] });
    expect(compileRingConfig([])).toEqual({ errors: ['the ring configuration must be an object'] });
  });

  it('splits the fleet by share, summing exactly, within min and max', () => {
    expect(ringTargets(DEFAULT_RING_CONFIG.rings, 100)).toEqual([5, 15, 30, 50]);
    expect(ringTargets(DEFAULT_RING_CONFIG.rings, 7)).toEqual([0, 1, 2, 4]);
    expect(ringTargets([{ name: 'a', share: 0.05, min: 3 }, { name: 'b', share: 0.95, max: 10 }], 20)).toEqual([10, 10]);
    expect(ringTargets([{ name: 'a', share: 0.05, min: 3 }, { name: 'b', share: 0.95 }], 20)).toEqual([3, 17]);
    fc.assert(
      fc.property(fc.array(fc.nat(100), { minLength: 1, maxLength: 8 }), fc.nat(1_000_000), (w, n) => {
        const parts = apportion(w, n);
        expect(parts.reduce((a, b) => a + b, 0)).toBe(n);
        const total = w.reduce((a, b) => a + b, 0);
        parts.forEach((p, i) => expect(Math.abs(p - (total > 0 ? ((w[i] as number) / total) * n : n / w.length))).toBeLessThan(1));
      }),
    );
  });
});
