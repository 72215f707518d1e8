import { afterEach, describe, expect, it } from 'vitest';
import { startHarness } from '../support/harness.js';
import type { Harness } from '../support/harness.js';

let h: Harness | null = null;
afterEach(async () => {
  await h?.stop();
  h = null;
});

describe("a device's metrics history", () => {
  it('keeps one point per interval from the heartbeats, each with the score then, and deletes those past the retention', async () => {
    h = await startHarness({ settings: { heartbeatIntervalMs: 5000, metricsHistory: { intervalMs: 300_000, retentionMs: 7_200_000 } } });
    await h.orchestrator.agents.spawn();
    // 50 minutes of heartbeats every 5 s.
    for (let t = 0; t < 50; t++) await h.advance(60_000);
    const id = h.orchestrator.services.agents.ids()[0] as string;
    const points = await h.store.deviceHistory(id, 0, 1000);
    // The first heartbeat makes a point, then one every 5 minutes: about 10, never closer than the interval.
    expect(points.length).toBeGreaterThanOrEqual(9);
    expect(points.length).toBeLessThanOrEqual(11);
    for (let k = 1; k < points.length; k++) expect((points[k] as { at: number }).at - (points[k - 1] as { at: number }).at).toBeGreaterThanOrEqual(300_000);
    for (const p of points) {
      expect(p.score).toEqual(expect.any(Number));
      expect(p.cpu).toBeGreaterThanOrEqual(0);
    }
    // Past the 2 h retention, the hourly prune removes the oldest; what is left is within the retention.
    for (let t = 0; t < 150; t++) await h.advance(60_000);
    const now = h.clock.now();
    const kept = await h.store.deviceHistory(id, 0, 1000);
    expect(kept.length).toBeGreaterThan(0);
    expect((kept[0] as { at: number }).at).toBeGreaterThanOrEqual(now - 7_200_000 - 3_600_000);
    expect(kept.length).toBeLessThanOrEqual(37); // at most 3 h of points at 5 min
    // The API's view of it: the points at or after an instant.
    expect((await h.orchestrator.services.fleet.history(id, now - 1_800_000, 1000)).every((p) => p.at >= now - 1_800_000)).toBe(true);
  });
});
