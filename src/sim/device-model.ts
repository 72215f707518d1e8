import { clamp } from '../domain/metrics.js';
import type { Rng } from '../domain/random.js';
import { randInt, sample, uniform, randomHex } from '../domain/random.js';
import type { Asset, DeviceInfo, TaskType } from '../domain/types.js';
import { TASK_TYPES } from '../domain/types.js';

/** How often a simulated device's metrics drift, as in the seed. */
export const DRIFT_INTERVAL_MS = 10_000;

const OS_VERSIONS = ['Windows 11 23H2', 'Windows 11 24H2', 'Windows 10 22H2', 'macOS 14.6', 'macOS 15.1', 'Ubuntu 24.04'];

/**
 * One step of the seed's drift: a charging battery gains 1–5 points, otherwise
 * loses 0–3; CPU moves ±10 within [5, 95]; memory ±5 within [20, 90]; disk
 * grows by up to 0.5 points, to at most 95. Beyond the seed, the charger is
 * plugged in now and then when the battery runs low and unplugged when full,
 * so a long-running simulation does not end with every battery flat.
 */
export function driftStep(d: DeviceInfo, rng: Rng): DeviceInfo {
  const level = d.battery;
  // A simulated machine without a battery drifts in everything else.
  if (level === null) return { ...d, cpu: round2(clamp(d.cpu + uniform(rng, -10, 10), 5, 95)), memory: round2(clamp(d.memory + uniform(rng, -5, 5), 20, 90)), disk: round2(Math.min(95, d.disk + uniform(rng, 0, 0.5))) };
  let charging = d.charging;
  if (!charging && level <= 15 && rng() < 0.3) charging = true;
  else if (charging && level >= 95 && rng() < 0.3) charging = false;
  const battery = d.charging ? clamp(level + uniform(rng, 1, 5), 0, 100) : clamp(level - uniform(rng, 0, 3), 0, 100);
  return {
    ...d,
    charging,
    battery: round2(battery),
    cpu: round2(clamp(d.cpu + uniform(rng, -10, 10), 5, 95)),
    memory: round2(clamp(d.memory + uniform(rng, -5, 5), 20, 90)),
    disk: round2(Math.min(95, d.disk + uniform(rng, 0, 0.5))),
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** A fresh device: mostly healthy, some on the charger, some busy. */
export function randomDevice(rng: Rng, asset?: Asset): DeviceInfo {
  const name = typeof asset?.name === 'string' && asset.name.length > 0 ? asset.name : `DEVICE-${randomHex(rng, 6).toUpperCase()}`;
  const os = typeof asset?.osName === 'string' && asset.osName.length > 0 ? asset.osName : (sample(rng, OS_VERSIONS, 1)[0] as string);
  return {
    name,
    osVersion: os,
    battery: round2(uniform(rng, 25, 100)),
    charging: rng() < 0.3,
    cpu: round2(uniform(rng, 5, 60)),
    memory: round2(uniform(rng, 20, 70)),
    disk: round2(uniform(rng, 20, 80)),
  };
}

/**
 * The seed gives each agent 1–3 random task types. So that a fleet can run
 * every type, types no existing agent offers are given first.
 */
export function randomCapabilities(rng: Rng, covered: ReadonlySet<TaskType>): TaskType[] {
  const count = randInt(rng, 1, 3);
  const uncovered = sample(rng, TASK_TYPES.filter((t) => !covered.has(t)), 3);
  const chosen = new Set<TaskType>(uncovered);
  for (const t of sample(rng, TASK_TYPES, TASK_TYPES.length)) {
    if (chosen.size >= Math.max(count, uncovered.length)) break;
    chosen.add(t);
  }
  return TASK_TYPES.filter((t) => chosen.has(t));
}
