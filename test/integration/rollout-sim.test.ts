import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fixedThresholdGate } from '../../src/domain/deployment.js';
import { parseScenario, simulate } from '../../src/sim/rollout-sim.js';
import { runCli } from '../support/server-process.js';

const scenario = (name: string) => parseScenario(JSON.parse(readFileSync(`scenarios/${name}.json`, 'utf8')));

describe('rollout simulator', () => {
  it('a good release completes on every ring without a false halt, in virtual time', async () => {
    const r = await simulate(scenario('good-noisy'), { devices: 2000 });
    expect(r.outcome).toBe('completed');
    expect(r.falseHalt).toBe(false);
    expect(Object.keys(r.updatedPerRing)).toEqual(['canary', 'dev', 'stage', 'prod']);
    // Everyone reachable was updated (about 2% of the simulated devices are offline throughout).
    expect(r.exposedShare).toBeGreaterThan(0.95);
    expect(r.virtualMs).toBeGreaterThan(30 * 60_000);
    expect(r.wallMs).toBeLessThan(60_000);
  });

  it.each(['bad-cpu', 'bad-crash', 'bad-drain', 'bad-model'])('%s is halted in the canary ring with under 1%% of the fleet exposed', async (name) => {
    const r = await simulate(scenario(name), { devices: 10_000 });
    expect(r.outcome).toBe('halted');
    expect(r.haltReason).toMatch(/^halted at ring canary: /);
    expect(r.exposedShare).toBeLessThanOrEqual(0.01);
    expect(r.updatedPerRing.dev).toBe(0);
  });

  it('a ring that cannot judge enough of its devices ends the run as paused with the reason, at once, not after days of virtual time', async () => {
    // 60 devices: dev holds 9, one of them offline, so 8 can be judged where its gate asks for all of them.
    const r = await simulate(scenario('good-noisy'), { devices: 60 });
    expect(r.outcome).toBe('paused');
    expect(r.haltReason).toMatch(/insufficient evidence at ring dev/);
    expect(r.virtualMs).toBeLessThan(6 * 3_600_000);
  });

  it('the fixed-threshold baseline misses a release that only hurts health', async () => {
    const r = await simulate(scenario('bad-cpu'), { devices: 2000, gate: fixedThresholdGate() });
    expect(r.outcome).toBe('completed');
    expect(r.exposedShare).toBeGreaterThan(0.9);
  });

  it('orchestrator simulate runs a scenario file and reports, and refuses bad arguments with exit code 2', async () => {
    const run = runCli(['simulate', '--devices', '3000', '--scenario', 'scenarios/bad-model.json', '--json'], {});
    expect(await run.exited).toBe(0);
    const report = JSON.parse(run.out().trim()) as { outcome: string; devices: number; exposed: number; haltReason: string };
    expect(report).toMatchObject({ outcome: 'halted', devices: 3000 });
    expect(report.haltReason).toMatch(/t14 devices/);
    expect(run.err()).toMatch(/\[[#.]{30}\] \d+% updated · ring canary \(1\/4\) · virtual 0h0\dm/);
    const bad = runCli(['simulate', '--devices', 'lots', '--scenario', 'scenarios/bad-model.json'], {});
    expect(await bad.exited).toBe(2);
    expect(bad.err()).toBe('--devices: must be an integer from 1 to 1000000\n');
  });
});
