/* What the agent reports of its machine: its metrics (the domain's Reading) and what it is. */
import type { Reading } from '../domain/metrics.js';

/** What the machine is, as its firmware and OS say; a field it does not know is left out. */
export interface DeviceFacts {
  model?: string;
  manufacturer?: string;
  osName?: string;
}

export interface MetricsSource {
  read(): Promise<Reading>;
  facts(): Promise<DeviceFacts>;
}

/**
 * Values firmware puts where the vendor wrote nothing (DMI tables of white-box boards, virtual machines):
 * no more a model than an empty string is.
 */
const PLACEHOLDERS = new Set(['-', 'default string', 'to be filled by o.e.m.', 'system product name', 'system manufacturer', 'not specified', 'not applicable', 'none', 'unknown', 'o.e.m.']);

function fact(value: string | undefined): string | undefined {
  const v = (value ?? '').trim().slice(0, 200);
  return v === '' || PLACEHOLDERS.has(v.toLowerCase()) ? undefined : v;
}

/** Real metrics through `systeminformation`. */
export class SystemMetrics implements MetricsSource {
  async read(): Promise<Reading> {
    const si = await import('systeminformation');
    const [battery, load, mem, disks] = await Promise.all([si.battery(), si.currentLoad(), si.mem(), si.fsSize()]);
    const root = disks.find((d) => d.mount === '/') ?? disks[0];
    const pct = (x: number): number => Math.round(Math.min(100, Math.max(0, x)) * 10) / 10;
    return {
      battery: battery.hasBattery ? pct(battery.percent) : null,
      charging: battery.hasBattery ? battery.isCharging || battery.acConnected : null,
      cpu: pct(load.currentLoad),
      memory: pct((mem.active / mem.total) * 100),
      disk: pct(root?.use ?? 0),
    };
  }

  /** The system's model and manufacturer (DMI/SMBIOS, the Mac's model id) and the OS's name and release. */
  async facts(): Promise<DeviceFacts> {
    const si = await import('systeminformation');
    const [system, os] = await Promise.all([si.system(), si.osInfo()]);
    const out: DeviceFacts = {};
    const model = fact(system.model);
    const manufacturer = fact(system.manufacturer);
    const osName = fact(`${os.distro} ${os.release}`);
    if (model !== undefined) out.model = model;
    if (manufacturer !== undefined) out.manufacturer = manufacturer;
    if (osName !== undefined) out.osName = osName;
    return out;
  }
}
