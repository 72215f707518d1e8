import { describe, expect, it } from 'vitest';
import { isHealthy, unhealthyReasons } from '../../src/domain/health.js';
import type { DeviceMetrics } from '../../src/domain/types.js';

const base: DeviceMetrics = { battery_level: 50, battery_charging: false, cpu_usage: 40, memory_usage: 50, disk_usage: 99 };

describe('the seed health rule: battery > 20 && cpu < 80 && memory < 85', () => {
  it.each([
    [{}, true, []],
    [{ battery_level: 20 }, false, ['battery']],
    [{ battery_level: 20.01 }, true, []],
    [{ cpu_usage: 80 }, false, ['cpu']],
    [{ cpu_usage: 79.99 }, true, []],
    [{ memory_usage: 85 }, false, ['memory']],
    [{ memory_usage: 84.99 }, true, []],
    [{ battery_level: 5, cpu_usage: 95, memory_usage: 90 }, false, ['battery', 'cpu', 'memory']],
    // Disk is not part of the seed's rule, and charging does not excuse a flat battery.
    [{ disk_usage: 100 }, true, []],
    [{ battery_level: 10, battery_charging: true }, false, ['battery']],
  ] as const)('%o → healthy=%s', (change, healthy, failing) => {
    const m = { ...base, ...change };
    expect(isHealthy(m)).toBe(healthy);
    const reasons = unhealthyReasons(m);
    expect(reasons).toHaveLength(failing.length);
    failing.forEach((f, i) => expect(reasons[i]).toContain(f));
  });
});
