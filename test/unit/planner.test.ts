import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HEALTH_SCORE_CONFIG } from '../../src/domain/health-score.js';
import type { CompiledRingConfig } from '../../src/domain/ring-config.js';
import { compileRingConfig, DEFAULT_RING_CONFIG, ringTargets } from '../../src/domain/ring-config.js';
import type { PlannedMove } from '../../src/fleet/planner.js';
import { planFull, planIncremental } from '../../src/fleet/planner.js';
import { DeviceRegistry, NO_RING } from '../../src/fleet/registry.js';

function compile(doc: unknown): CompiledRingConfig {
  const out = compileRingConfig(doc);
  if ('errors' in out) throw new Error(out.errors.join('; '));
  return out.config;
}

const SITES = ['berlin', 'austin', 'tokyo'];
const MODELS = ['x1', 't14', 'p1', 'mac'];
const OSES = ['windows', 'macos', 'linux'];
const DEPTS = ['IT', 'HR', 'Sales'];

const deviceArb = fc.record({
  site: fc.constantFrom(...SITES),
  model: fc.constantFrom(...MODELS),
  osName: fc.constantFrom(...OSES),
  department: fc.constantFrom(...DEPTS),
  battery: fc.integer({ min: 0, max: 100 }),
  charging: fc.boolean(),
  cpu: fc.integer({ min: 0, max: 100 }),
  memory: fc.integer({ min: 0, max: 100 }),
  disk: fc.integer({ min: 0, max: 100 }),
});
/** Mostly healthy devices (about one in twenty fails the seed rule), so that the targets are reachable. */
const mostlyHealthyArb = fc.oneof(
  { weight: 9, arbitrary: deviceArb.map((d) => ({ ...d, battery: 21 + (d.battery % 80), cpu: d.cpu % 80, memory: d.memory % 85 })) },
  { weight: 1, arbitrary: deviceArb },
);
type DeviceSpec = typeof deviceArb extends fc.Arbitrary<infer T> ? T : never;

function fleet(config: CompiledRingConfig, devices: readonly DeviceSpec[], at = 1): DeviceRegistry {
  const reg = new DeviceRegistry(config, DEFAULT_HEALTH_SCORE_CONFIG, 4);
  devices.forEach((d, n) => {
    const { index } = reg.upsert(`d${n}`, { site: d.site, model: d.model, osName: d.osName, department: d.department });
    reg.sample(index, { battery: d.battery, charging: d.charging, cpu: d.cpu, memory: d.memory, disk: d.disk }, at);
  });
  return reg;
}

function apply(reg: DeviceRegistry, moves: readonly PlannedMove[], now: number): void {
  for (const m of moves) reg.setRing(m.index, m.to, now);
}

function sizes(reg: DeviceRegistry): number[] {
  return reg.ringConfig.rings.map((_, k) => reg.aggregates[k]?.size ?? 0);
}

/** A brute-force recount of every aggregate, to check the incremental ones. */
function recount(reg: DeviceRegistry): { size: number[]; unhealthy: number[]; healthy: number } {
  const R = reg.ringConfig.rings.length;
  const size = new Array<number>(R + 1).fill(0);
  const unhealthy = new Array<number>(R + 1).fill(0);
  let healthy = 0;
  for (let i = 0; i < reg.size; i++) {
    if (reg.connectivity[i] === 2) continue;
    const slot = reg.ring[i] === NO_RING ? R : (reg.ring[i] as number);
    size[slot]!++;
    if (reg.unhealthy[i] === 1) unhealthy[slot]!++;
    if (reg.unhealthy[i] === 0) healthy++;
  }
  return { size, unhealthy, healthy };
}

const HOUR = 3_600_000;

describe('full rebalance', () => {
  it('health policy: each ring within one device of its target where pins and the seed rule allow, unhealthy never past dev', () => {
    let reachableRuns = 0;
    fc.assert(
      fc.property(fc.array(mostlyHealthyArb, { minLength: 1, maxLength: 300 }), fc.boolean(), (devices, withPin) => {
        const config = compile({ ...DEFAULT_RING_CONFIG, pins: withPin ? [{ rule: 'department = IT', ring: 'stage' }] : [] });
        const reg = fleet(config, devices);
        const plan = planFull(reg, 10 * HOUR, null);
        apply(reg, plan.moves, 10 * HOUR);
        const n = devices.length;
        const targets = ringTargets(config.rings, n);
        const got = sizes(reg);
        expect(got.reduce((a, b) => a + b, 0)).toBe(n);
        const pinnedStage = withPin ? devices.filter((d) => d.department === 'IT').length : 0;
        // Unhealthy devices that are free to move (not pinned) must fit in canary + dev for the targets to be reachable.
        const unhealthyFree = devices.filter((d) => !(d.battery > 20 && d.cpu < 80 && d.memory < 85) && !(withPin && d.department === 'IT')).length;
        const reachable = unhealthyFree <= (targets[0] as number) + (targets[1] as number) && pinnedStage <= (targets[2] as number);
        if (reachable) {
          reachableRuns++;
          got.forEach((s, k) => expect(Math.abs(s - (targets[k] as number))).toBeLessThanOrEqual(1));
        }
        for (let i = 0; i < reg.size; i++) {
          if (withPin && reg.department[i] === reg.interner.find('IT')) expect(reg.ringName(reg.ring[i] as number)).toBe('stage');
          else if (reg.unhealthy[i] === 1) expect(['canary', 'dev']).toContain(reg.ringName(reg.ring[i] as number));
        }
        // The incremental aggregates agree with a recount.
        const r = recount(reg);
        expect(reg.aggregates.map((a) => a.size)).toEqual(r.size);
        expect(reg.aggregates.map((a) => a.unhealthy)).toEqual(r.unhealthy);
        expect(reg.healthyCount).toBe(r.healthy);
      }),
      { numRuns: 200 },
    );
    // Most generated fleets must have reachable targets, or the size check above proves little.
    expect(reachableRuns).toBeGreaterThan(100);
  });

  it('health policy: rings are ordered by score (every healthy device in an earlier ring scores no higher than one in a later ring)', () => {
    fc.assert(
      fc.property(fc.array(deviceArb, { minLength: 2, maxLength: 200 }), (devices) => {
        const reg = fleet(compile(DEFAULT_RING_CONFIG), devices);
        apply(reg, planFull(reg, 10 * HOUR, null).moves, 10 * HOUR);
        const maxOf = new Array<number>(4).fill(-1);
        const minOf = new Array<number>(4).fill(Infinity);
        for (let i = 0; i < reg.size; i++) {
          if (reg.unhealthy[i] === 1) continue;
          const k = reg.ring[i] as number;
          maxOf[k] = Math.max(maxOf[k] as number, reg.scoreBin[i] as number);
          minOf[k] = Math.min(minOf[k] as number, reg.scoreBin[i] as number);
        }
        for (let a = 0; a < 4; a++) for (let b = a + 1; b < 4; b++) if ((maxOf[a] as number) >= 0 && (minOf[b] as number) < Infinity) expect(maxOf[a]).toBeLessThanOrEqual(minOf[b] as number);
      }),
    );
  });

  it('representative policy: every ring on target and each stratum spread over the rings in proportion', () => {
    fc.assert(
      fc.property(fc.array(deviceArb, { minLength: 1, maxLength: 400 }), (devices) => {
        const config = compile({ ...DEFAULT_RING_CONFIG, policy: 'representative' });
        const reg = fleet(config, devices);
        apply(reg, planFull(reg, 10 * HOUR, null).moves, 10 * HOUR);
        const targets = ringTargets(config.rings, devices.length);
        sizes(reg).forEach((s, k) => expect(Math.abs(s - (targets[k] as number))).toBeLessThanOrEqual(1));
        // Per stratum: each ring holds its share of the stratum within two devices.
        const strata = new Map<number, number[]>();
        for (let i = 0; i < reg.size; i++) {
          const row = strata.get(reg.stratum[i] as number) ?? [0, 0, 0, 0];
          row[reg.ring[i] as number]!++;
          strata.set(reg.stratum[i] as number, row);
        }
        for (const row of strata.values()) {
          const total = row.reduce((a, b) => a + b, 0);
          row.forEach((c, k) => expect(Math.abs(c - (config.rings[k]?.share ?? 0) * total)).toBeLessThanOrEqual(2));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a second rebalance of an unchanged fleet moves nothing', () => {
    fc.assert(
      fc.property(fc.array(deviceArb, { minLength: 1, maxLength: 200 }), fc.constantFrom('health', 'representative'), (devices, policy) => {
        const reg = fleet(compile({ ...DEFAULT_RING_CONFIG, policy, dwellMs: 0 }), devices);
        const first = planFull(reg, HOUR, null);
        apply(reg, first.moves, HOUR);
        expect(planFull(reg, 2 * HOUR, first.cuts).moves).toEqual([]);
      }),
    );
  });
});

describe('rebalancing over time', () => {
  const event = fc.oneof(
    fc.record({ kind: fc.constant('heartbeat' as const), device: fc.nat(), metrics: deviceArb, advance: fc.integer({ min: 0, max: 5 * 60_000 }) }),
    fc.record({ kind: fc.constant('rebalance' as const), advance: fc.integer({ min: 0, max: 5 * 60_000 }) }),
    fc.record({ kind: fc.constant('execution' as const), device: fc.nat(), start: fc.boolean(), advance: fc.constant(0) }),
  );

  it('no device moves twice within its dwell time, none moves during an in-flight execution, pins always win', () => {
    fc.assert(
      fc.property(fc.array(deviceArb, { minLength: 4, maxLength: 80 }), fc.array(event, { maxLength: 120 }), (devices, events) => {
        const config = compile({ ...DEFAULT_RING_CONFIG, pins: [{ rule: 'department = IT', ring: 'canary' }], hysteresis: 2 });
        // Times are epoch milliseconds, as the orchestrator's and the simulator's clocks give them: the registry
        // keeps 0 for "never moved between rings", so a timeline starting at 0 would read a move at 0 as none.
        const t0 = Date.UTC(2026, 0, 1);
        const reg = fleet(config, devices, t0);
        let now = t0;
        let cuts: number[] | null;
        const lastMove = new Map<number, number>();
        const check = (moves: readonly PlannedMove[]): void => {
          const seen = new Set<number>();
          for (const m of moves) {
            expect(reg.inflight[m.index]).toBe(0);
            expect(seen.has(m.index)).toBe(false);
            seen.add(m.index);
            const pinned = reg.pinRing[m.index] !== NO_RING;
            if (pinned) expect(m.to).toBe(reg.pinRing[m.index]);
            // Dwell runs from the last move between two rings (a first placement has not flapped).
            const last = lastMove.get(m.index);
            const betweenRings = m.from !== NO_RING && m.to !== NO_RING;
            if (!pinned && betweenRings && last !== undefined) expect(now - last).toBeGreaterThanOrEqual(config.dwellMs);
            if (betweenRings) lastMove.set(m.index, now);
          }
          apply(reg, moves, now);
        };
        const first = planFull(reg, now, null);
        cuts = first.cuts;
        check(first.moves);
        for (const e of events) {
          now += e.advance;
          if (e.kind === 'heartbeat') {
            const i = e.device % reg.size;
            const m = e.metrics;
            reg.sample(i, { battery: m.battery, charging: m.charging, cpu: m.cpu, memory: m.memory, disk: m.disk }, now);
            check(planIncremental(reg, i, now, cuts));
          } else if (e.kind === 'rebalance') {
            const plan = planFull(reg, now, cuts);
            cuts = plan.cuts;
            check(plan.moves);
          } else {
            const i = e.device % reg.size;
            reg.inflight[i] = e.start ? 1 : 0;
          }
        }
        const it = reg.interner.find('IT');
        for (let i = 0; i < reg.size; i++) if (reg.department[i] === it && reg.inflight[i] === 0) expect(reg.ringName(reg.ring[i] as number)).toBe('canary');
        const r = recount(reg);
        expect(reg.aggregates.map((a) => a.size)).toEqual(r.size);
      }),
      { numRuns: 150 },
    );
  });

  it('an incremental swap keeps ring sizes and moves a device whose score left its band', () => {
    const config = compile({ ...DEFAULT_RING_CONFIG, dwellMs: 0, hysteresis: 1 });
    const devices = Array.from({ length: 100 }, (_, n) => ({ site: 'berlin', model: 'x1', osName: 'linux', department: 'HR', battery: 90, charging: true, cpu: 30 + (n % 50), memory: 40, disk: 50 }));
    const reg = fleet(config, devices);
    const plan = planFull(reg, HOUR, null);
    apply(reg, plan.moves, HOUR);
    const before = sizes(reg);
    // The healthiest prod device turns bad (but still passes the seed rule): it should swap into an earlier ring.
    const best = reg.extreme(3, true, () => true);
    reg.sample(best, { battery: 90, charging: true, cpu: 78, memory: 80, disk: 90 }, 2 * HOUR);
    const moves = planIncremental(reg, best, 2 * HOUR, plan.cuts);
    expect(moves).toHaveLength(2);
    expect(moves[0]).toMatchObject({ index: best, from: 3, to: 2 });
    apply(reg, moves, 2 * HOUR);
    expect(sizes(reg)).toEqual(before);
    // Fails the seed rule in prod: goes to dev at once, swapped with dev's healthiest.
    const other = reg.extreme(3, true, () => true);
    reg.sample(other, { battery: 90, charging: true, cpu: 90, memory: 40, disk: 50 }, 3 * HOUR);
    const moves2 = planIncremental(reg, other, 3 * HOUR, plan.cuts);
    expect(moves2.map((m) => [m.from, m.to])).toEqual([[3, 1], [1, 3]]);
    expect(moves2[0]?.reason).toContain('cpu 90.0% >= 80%');
  });
});
