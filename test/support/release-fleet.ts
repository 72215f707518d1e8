import { SIMULATED_HANDLERS, TaskFailure } from '../../src/sim/task-handlers.js';
import type { TaskHandler } from '../../src/sim/task-handlers.js';
import type { Harness, HarnessOptions } from './harness.js';
import { advanceUntil } from './harness.js';

/** A `deploy` handler for release tests: `version: "bad"` fails to install; `"hot"` installs and adds 40 CPU points; anything else installs. */
export const RELEASES: TaskHandler = async (params, ctx) => {
  if (params.version === 'bad') {
    await ctx.clock.sleep(200, ctx.signal);
    throw new TaskFailure('install failed: checksum mismatch', false);
  }
  const out = await SIMULATED_HANDLERS.deploy(params, ctx);
  if (params.version === 'hot') ctx.setMetrics({ cpu: Math.min(95, ctx.device().cpu + 40) });
  return out;
};

/**
 * `n` simulated agents that deploy with `deploy` (RELEASES unless given), every one placed in a ring, all on
 * their chargers with the same healthy metrics (enough to pass pre-flight), sampled: a fleet on which only a
 * release can move a metric.
 */
export async function releaseFleet(harness: (options?: HarnessOptions) => Promise<Harness>, n: number, seed: number, deploy: TaskHandler = RELEASES): Promise<Harness> {
  const h = await harness({ seed, handlers: { deploy } });
  for (let i = 0; i < n; i++) await h.orchestrator.agents.spawn();
  await advanceUntil(h, () => h.orchestrator.fleet.ringCounts().unassigned === 0 && h.orchestrator.fleet.size === n, 10_000, 100);
  for (const id of h.orchestrator.agents.ids()) h.fleet.get(id)?.setMetrics({ charging: true, battery: 90, cpu: 20, memory: 40, disk: 30 });
  await h.advance(6000);
  return h;
}
