/**
 * The releases the deployment benchmarks judge (bench:rollout, bench:advisor): 20 good ones and 20 bad ones
 * of four kinds, built from the scenarios shipped in scenarios/ with different seeds and strengths.
 */
import { readFileSync } from 'node:fs';
import type { Effect, Scenario } from '../src/sim/rollout-sim.js';
import { parseScenario, SIM_MODELS } from '../src/sim/rollout-sim.js';

export function loadScenario(name: string): Scenario {
  return parseScenario(JSON.parse(readFileSync(new URL(`../scenarios/${name}.json`, import.meta.url), 'utf8')));
}

/** 20 good releases: the shipped one with different seeds and different (harmless) noise. */
export function goodReleases(): Scenario[] {
  const base = loadScenario('good-noisy');
  return Array.from({ length: 20 }, (_, i) => ({
    ...base,
    name: `good #${i + 1}`,
    seed: 100 + i,
    release: {
      ...base.release,
      failureRate: 0.005 + (i % 4) * 0.005,
      effects: [{ share: 1, cpu: i % 5, memory: (i % 3) * 0.5, drain: (i % 4) * 0.5 }],
    },
  }));
}

/** The four kinds of bad release, by the scenario file each starts from. */
export const BAD_KINDS = ['bad-cpu', 'bad-crash', 'bad-drain', 'bad-model'] as const;
export type BadKind = (typeof BAD_KINDS)[number];

const BAD_EFFECTS: Record<BadKind, (i: number) => Effect[]> = {
  'bad-cpu': (i) => [{ share: 0.2 + i * 0.05, cpu: 30 + i * 5 }],
  'bad-crash': (i) => [{ share: 0.15 + i * 0.04, crash: 1 }],
  'bad-drain': (i) => [{ share: 1, drain: 7 + i }],
  'bad-model': (i) => [{ model: SIM_MODELS[i % SIM_MODELS.length], fail: 0.8 + i * 0.05 }],
};

/** 20 bad releases: five of each kind, with different seeds and strengths; `kind` says which. */
export function badReleases(): (Scenario & { kind: BadKind })[] {
  const out: (Scenario & { kind: BadKind })[] = [];
  for (const kind of BAD_KINDS) {
    const base = loadScenario(kind);
    for (let i = 0; i < 5; i++) out.push({ ...base, kind, name: `${kind} #${i + 1}`, seed: 200 + out.length, release: { ...base.release, effects: BAD_EFFECTS[kind](i) } });
  }
  return out;
}
