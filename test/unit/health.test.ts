import { describe, expect, it } from 'vitest';
import { isHealthy, unhealthyReasons } from '../../src/domain/health.js';
import type { Reading } from '../../src/domain/metrics.js';

const base: Reading = { battery: 50, charging: false, cpu: 40, memory: 50, disk: 99 };

describe('the seed health rule: battery > 20 && cpu < 80 && memory < 85', () => {
  it.each([
    [{}, true, []],
    [{ battery: 20 }, false, ['battery']],
    [{ battery: 20.01 }, true, []],
    [{ cpu: 80 }, false, ['cpu']],
    [{ cpu: 79.99 }, true, []],
    [{ memory: 85 }, false, ['memory']],
    [{ memory: 84.99 }, true, []],
    [{ battery: 5, cpu: 95, memory: 90 }, false, ['battery', 'cpu', 'memory']],
    // Disk is not part of the seed's rule, and charging does not excuse a flat battery.
    [{ disk: 100 }, true, []],
    [{ battery: 10, charging: true }, false, ['battery']],
  ] as const)('%o → healthy=%s', (change, healthy, failing) => {
    const m = { ...base, ...change };
    expect(isHealthy(m)).toBe(healthy);
    const reasons = unhealthyReasons(m);
    expect(reasons).toHaveLength(failing.length);
    failing.forEach((f, i) => expect(reasons[i]).toContain(f));
  });
});
