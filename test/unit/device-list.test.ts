import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HEALTH_SCORE_CONFIG } from '../../src/domain/health-score.js';
import { compileRingConfig, DEFAULT_RING_CONFIG } from '../../src/domain/ring-config.js';
import type { DeviceFilter, DeviceSort } from '../../src/fleet/fleet-views.js';
import { fleetCensus, listDevices } from '../../src/fleet/fleet-views.js';
import { CONNECTIVITY, DeviceRegistry, NO_RING } from '../../src/fleet/registry.js';

const compiled = compileRingConfig(DEFAULT_RING_CONFIG);
if ('errors' in compiled) throw new Error(compiled.errors.join('; '));
const CONFIG = compiled.config;
const RINGS = ['canary', 'dev', 'stage', 'prod'];
const MODELS = ['x1', 't14', 'mac'];

const deviceArb = fc.record({
  model: fc.constantFrom(...MODELS),
  site: fc.constantFrom('berlin', 'austin'),
  // Few distinct readings: many devices share a score bin, as in a real fleet.
  cpu: fc.constantFrom(5, 40, 95),
  battery: fc.constantFrom(10, 60, 100),
  sampled: fc.integer({ min: 0, max: 9 }),
  ring: fc.integer({ min: -1, max: 3 }),
  connectivity: fc.constantFrom(...CONNECTIVITY),
  sampledAt: fc.integer({ min: 0, max: 5 }),
});

type DeviceSpec = typeof deviceArb extends fc.Arbitrary<infer T> ? T : never;

function fleet(devices: readonly DeviceSpec[]): DeviceRegistry {
  const reg = new DeviceRegistry(CONFIG, DEFAULT_HEALTH_SCORE_CONFIG, 4);
  devices.forEach((d, n) => {
    const { index } = reg.upsert(`d${String(n).padStart(3, '0')}`, { model: d.model, site: d.site });
    // One in ten never sampled: no score.
    if (d.sampled > 0) reg.sample(index, { battery: d.battery, charging: false, cpu: d.cpu, memory: 30, disk: 30 }, 60_000 * (1 + d.sampledAt));
    reg.setRing(index, d.ring < 0 ? NO_RING : d.ring, 1);
    reg.setConnectivity(index, d.connectivity);
  });
  return reg;
}

/** The order the API promises, computed the obvious way: scored devices in rings by score, then the rest, each by number. */
function expected(reg: DeviceRegistry, filter: DeviceFilter, sort: DeviceSort): string[] {
  const all = listDevices(reg, filter, 'id', 1000, undefined).devices;
  if (sort === 'id') return all.map((d) => d.id);
  const inBins = (id: string): boolean => {
    const d = all.find((x) => x.id === id);
    return d !== undefined && d.score !== null && d.status !== 'decommissioned';
  };
  const ranked = all.filter((d) => inBins(d.id)).sort((a, b) => (sort === 'score' ? (a.score as number) - (b.score as number) : (b.score as number) - (a.score as number)) || (a.id < b.id ? -1 : 1));
  return [...ranked, ...all.filter((d) => !inBins(d.id))].map((d) => d.id);
}

function pageThrough(reg: DeviceRegistry, filter: DeviceFilter, sort: DeviceSort, limit: number): string[] {
  const out: string[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = listDevices(reg, filter, sort, limit, cursor);
    out.push(...page.devices.map((d) => d.id));
    if (page.nextCursor === null) return out;
    cursor = page.nextCursor;
  }
  throw new Error('paging did not end');
}

describe('the device list', () => {
  it('pages in score order from the per-bin lists exactly as a sort of the whole fleet would, for any filter and page size', () => {
    fc.assert(
      fc.property(
        fc.array(deviceArb, { minLength: 0, maxLength: 120 }),
        fc.constantFrom<DeviceSort>('score', '-score', 'id'),
        fc.record({ ring: fc.option(fc.constantFrom(...RINGS, 'unassigned'), { nil: undefined }), model: fc.option(fc.constantFrom(...MODELS), { nil: undefined }), healthBelow: fc.option(fc.constantFrom(50, 90), { nil: undefined }) }),
        fc.integer({ min: 1, max: 17 }),
        (devices, sort, f, limit) => {
          const reg = fleet(devices);
          const filter: DeviceFilter = Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined));
          expect(pageThrough(reg, filter, sort, limit)).toEqual(expected(reg, filter, sort));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('counts the fleet from its aggregates: online, offline, missing by last sample, decommissioned, health bands', () => {
    fc.assert(
      fc.property(fc.array(deviceArb, { maxLength: 80 }), fc.integer({ min: 0, max: 8 }), (devices, minutes) => {
        const reg = fleet(devices);
        const cutoff = 60_000 * (1 + minutes);
        const census = fleetCensus(reg, cutoff);
        const ids = listDevices(reg, {}, 'id', 1000, undefined).devices;
        const count = (p: (d: (typeof ids)[number], n: number) => boolean): number => ids.filter((d, n) => p(d, n)).length;
        expect(census.total).toBe(devices.length);
        expect(census.online).toBe(count((d) => d.status === 'online'));
        expect(census.offline).toBe(count((d) => d.status === 'offline'));
        expect(census.decommissioned).toBe(count((d) => d.status === 'decommissioned'));
        // Missing: offline, and last sampled before the cutoff (never sampled counts as long ago).
        const lastSample = (n: number): number => ((devices[n]?.sampled ?? 0) > 0 ? 60_000 * (1 + (devices[n]?.sampledAt ?? 0)) : 0);
        expect(census.missing).toBe(count((d, n) => d.status === 'offline' && lastSample(n) < cutoff));
        expect(census.health.reduce((a, b) => a + b, 0)).toBe(count((d) => d.score !== null && d.status !== 'decommissioned'));
        for (let b = 0; b < 20; b++) {
          expect(census.health[b]).toBe(count((d) => d.score !== null && d.status !== 'decommissioned' && Math.min(19, Math.floor(d.score / 5)) === b));
        }
      }),
      { numRuns: 200 },
    );
  });
});
