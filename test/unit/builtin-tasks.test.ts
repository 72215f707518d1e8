import { describe, expect, it } from 'vitest';
import { healthCheckResult, monitorResult, parseMonitorParams } from '../../src/domain/builtin-tasks.js';

describe("monitor's parameters", () => {
  it('durationSec and intervalSec, in seconds: one reading at once, then one every interval within the duration', () => {
    expect(parseMonitorParams({})).toEqual({ ok: true, value: { durationSec: 5, intervalSec: 1, samples: 6 } });
    expect(parseMonitorParams({ durationSec: 0 })).toEqual({ ok: true, value: { durationSec: 0, intervalSec: 1, samples: 1 } });
    expect(parseMonitorParams({ durationSec: 1.5, intervalSec: 0.5 })).toEqual({ ok: true, value: { durationSec: 1.5, intervalSec: 0.5, samples: 4 } });
    // Not a whole number of intervals: the last reading is the last one within the duration.
    expect(parseMonitorParams({ durationSec: 2.9, intervalSec: 1 })).toMatchObject({ ok: true, value: { samples: 3 } });
    // Floating point does not lose a reading: 0.7 / 0.7 * 3 is 2.9999… in binary.
    expect(parseMonitorParams({ durationSec: 2.1, intervalSec: 0.7 })).toMatchObject({ ok: true, value: { samples: 4 } });
    expect(parseMonitorParams({ durationSec: 300, intervalSec: 0.5 })).toMatchObject({ ok: true, value: { samples: 601 } });
    // Keys of others are left alone (a deployment adds `_deployment`).
    expect(parseMonitorParams({ _deployment: { id: 'd1' }, durationSec: 2 })).toMatchObject({ ok: true, value: { durationSec: 2 } });
  });

  it('refuses values out of bounds or of the wrong type, and the names monitor no longer takes', () => {
    for (const [params, error] of [
      [{ durationSec: -1 }, 'parameters.durationSec must be a number of seconds from 0 to 300'],
      [{ durationSec: 301 }, 'parameters.durationSec must be a number of seconds from 0 to 300'],
      [{ durationSec: '5' }, 'parameters.durationSec must be a number of seconds from 0 to 300'],
      [{ durationSec: null }, 'parameters.durationSec must be a number of seconds from 0 to 300'],
      [{ intervalSec: 0.4 }, 'parameters.intervalSec must be a number of seconds from 0.5 to 60'],
      [{ intervalSec: 61 }, 'parameters.intervalSec must be a number of seconds from 0.5 to 60'],
      [{ samples: 3 }, 'parameters.samples is not a monitor parameter: monitor takes durationSec and intervalSec (seconds)'],
      [{ interval_ms: 200 }, 'parameters.interval_ms is not a monitor parameter: monitor takes durationSec and intervalSec (seconds)'],
    ] as const) {
      expect(parseMonitorParams(params as Record<string, unknown>), JSON.stringify(params)).toEqual({ ok: false, error });
    }
  });
});

describe('built-in results', () => {
  // What an agent reads (the domain's Reading), and the same in the seed's names, as the results carry it.
  const reading = { battery: 15, charging: false, cpu: 85.25, memory: 40, disk: 70 };
  const seed = { battery_level: 15, battery_charging: false, cpu_usage: 85.25, memory_usage: 40, disk_usage: 70 };

  it("health_check: the reading in the seed's names, the host, and the seed's rule with what fails it", () => {
    expect(healthCheckResult(reading, { hostname: 'laptop-1', os_version: 'Linux 6.1' })).toEqual({
      ...seed,
      hostname: 'laptop-1',
      os_version: 'Linux 6.1',
      is_healthy: false,
      issues: ['battery 15% <= 20%', 'cpu 85.3% >= 80%'],
    });
    // No battery: null, not a made-up level, and on mains power for the rule.
    const desktop = healthCheckResult({ ...reading, battery: null, charging: null, cpu: 5 }, { hostname: 'd', os_version: 'x' });
    expect(desktop).toMatchObject({ battery_level: null, battery_charging: null, is_healthy: true, issues: [] });
  });

  it('monitor: the readings and their means to 0.1; the battery mean is null when no reading had one', () => {
    const p = { durationSec: 1, intervalSec: 1, samples: 2 };
    const r = monitorResult(p, [reading, { ...reading, cpu: 10, battery: 16 }]);
    expect(r).toEqual({ durationSec: 1, intervalSec: 1, samples: [seed, { ...seed, cpu_usage: 10, battery_level: 16 }], average: { battery_level: 15.5, cpu_usage: 47.6, memory_usage: 40, disk_usage: 70 } });
    expect(monitorResult(p, [{ ...reading, battery: null }]).average.battery_level).toBeNull();
  });

  it('only the reading\'s fields, whatever else the object carries (a simulated device carries its name)', () => {
    const device = { ...reading, name: 'laptop-1', osVersion: 'Linux 6.1' };
    expect(monitorResult({ durationSec: 0, intervalSec: 1, samples: 1 }, [device]).samples).toEqual([seed]);
  });
});
