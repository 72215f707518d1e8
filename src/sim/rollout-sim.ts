import { TypedEventBus } from '../util/event-bus.js';
import type { OrchestratorEvents } from '../domain/events.js';
import type { ExecutionDriver } from '../core/rollout-state.js';
import { RolloutController } from '../core/rollouts.js';
import type { DeploymentSpec, Gate, Stage } from '../domain/deployment.js';
import type { DeviceMetrics } from '../domain/metrics.js';
import { defaultStage } from '../domain/deployment.js';
import { DEFAULT_HEALTH_SCORE_CONFIG } from '../domain/health-score.js';
import type { Rng } from '../domain/random.js';
import { seededRng } from '../domain/random.js';
import type { DeviceImport } from '../fleet/fleet.js';
import { Fleet } from '../fleet/fleet.js';
import { openStore } from '../store/open-store.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { Heap } from '../util/heap.js';
import { silentLogger } from '../util/logger.js';

/**
 * The rollout simulator: a staged deployment run by the real controller and
 * gates against a virtual fleet on a virtual clock, so that a strategy can be
 * tried on 100,000 devices in seconds. Devices have their own baselines and
 * realistic noise; a scenario says what the release does to them.
 */

/** What a release does to the devices it affects. */
export interface Effect {
  /** Share of the (matching) devices affected, 0–1. @default 1 */
  share?: number;
  /** Only devices of this model. */
  model?: string;
  /** CPU points, memory points and battery drain (% per hour) added once the device runs the release. */
  cpu?: number;
  memory?: number;
  drain?: number;
  /** Probability that the update fails on an affected device. */
  fail?: number;
  /** Probability that the agent crashes during the update: no answer (a timeout), and the device is offline for a while. */
  crash?: number;
}

export interface Scenario {
  name: string;
  /** Whether the release is bad (for the report: a halt of a good release is a false halt). */
  bad: boolean;
  seed?: number;
  devices?: number;
  release: {
    /** How long one update takes, uniformly between the two, in seconds. @default [30, 120] */
    durationSeconds?: [number, number];
    /** Failures that happen to any release (flaky networks, full disks). @default 0.005 */
    failureRate?: number;
    effects?: Effect[];
  };
  /** Stages to use instead of the default plan (one per ring, in ring order). */
  stages?: Partial<Stage>[];
}

export interface SimResult {
  scenario: string;
  bad: boolean;
  devices: number;
  /** `paused`: a ring could not judge enough devices (insufficient evidence), which an operator would settle. */
  outcome: 'completed' | 'halted' | 'paused' | 'rolled_back' | 'unfinished';
  haltReason: string | null;
  /** Virtual time from start to completion or halt. */
  virtualMs: number;
  updatedPerRing: Record<string, number>;
  /** Devices that received the release (started an update), and as a share of the fleet. */
  exposed: number;
  exposedShare: number;
  falseHalt: boolean;
  /** Real time the simulation took. */
  wallMs: number;
}

const MODELS: [string, number][] = [
  ['latitude-7440', 0.2], ['x1-carbon', 0.15], ['t14', 0.125], ['elitebook-840', 0.125], ['macbook-air', 0.15], ['macbook-pro', 0.1], ['surface-7', 0.08], ['p1', 0.07],
];
const SITES = ['berlin', 'austin', 'tokyo', 'sao-paulo', 'sydney', 'toronto', 'paris', 'mumbai'];
const TIMEOUT_MS = 10 * 60_000;
const OFFLINE_SHARE = 0.02;

/** A clock whose time moves only when the simulation moves it; timers run synchronously, in order. */
class VirtualClock implements Clock {
  private current: number;
  private order = 0;
  private readonly timers = new Heap<{ at: number; order: number; fn: () => void; cancelled: boolean }>((a, b) => a.at < b.at || (a.at === b.at && a.order < b.order));

  constructor(start: number) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  monotonic(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = { at: this.current + Math.max(0, ms), order: this.order++, fn, cancelled: false };
    this.timers.push(t);
    return { cancel: () => (t.cancelled = true) };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  advanceTo(target: number): void {
    for (let t = this.timers.peek(); t && t.at <= target; t = this.timers.peek()) {
      this.timers.pop();
      this.current = t.at;
      if (!t.cancelled) t.fn();
    }
    this.current = target;
  }
}

function gauss(rng: Rng): number {
  const u = Math.max(1e-12, rng());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** One device of the virtual fleet: its own baseline (each reading adds noise and the release's effects), and its state. */
interface SimDevice {
  id: string;
  model: string;
  cpu: number;
  memory: number;
  battery: number;
  charging: boolean;
  disk: number;
  drain: number;
  offlineUntil: number;
  updated: boolean;
  /** Per effect: whether this device is affected. */
  affected: boolean[];
}

export class VirtualFleet implements ExecutionDriver {
  readonly devices = new Map<string, SimDevice>();
  controller: RolloutController | null = null;

  constructor(
    private readonly clock: VirtualClock,
    private readonly rng: Rng,
    private readonly scenario: Scenario,
    n: number,
  ) {
    const effects = scenario.release.effects ?? [];
    for (let i = 0; i < n; i++) {
      let u = rng();
      let model = (MODELS[0] as [string, number])[0];
      for (const [m, share] of MODELS) {
        if (u < share) {
          model = m;
          break;
        }
        u -= share;
      }
      const charging = rng() < 0.4;
      this.devices.set(`sim-${i.toString(36).padStart(4, '0')}`, {
        id: `sim-${i.toString(36).padStart(4, '0')}`,
        model,
        cpu: 10 + rng() * 40,
        memory: 30 + rng() * 40,
        battery: 30 + rng() * 70,
        charging,
        disk: 10 + rng() * 70,
        drain: 3 + rng() * 7,
        offlineUntil: rng() < OFFLINE_SHARE ? Infinity : 0,
        updated: false,
        affected: effects.map((e) => (e.model === undefined || e.model === model) && rng() < (e.share ?? 1)),
      });
    }
  }

  imports(): DeviceImport[] {
    return [...this.devices.values()].map((d, i) => ({
      id: d.id,
      model: d.model,
      site: SITES[i % SITES.length],
      osName: d.model.startsWith('mac') ? 'macos' : 'windows',
      metrics: { battery: d.battery, charging: d.charging, cpu: d.cpu, memory: d.memory, disk: d.disk },
    }));
  }

  online(id: string): boolean {
    const d = this.devices.get(id);
    return d !== undefined && this.clock.now() >= d.offlineUntil;
  }

  /** The device now: its own baseline, noise, and what the release does to it once installed. */
  metrics(id: string): DeviceMetrics | null {
    const d = this.devices.get(id);
    if (!d) return null;
    let cpu = d.cpu + 6 * gauss(this.rng);
    let memory = d.memory + 3 * gauss(this.rng);
    let drain = d.drain + 1.5 * gauss(this.rng);
    if (d.updated) {
      (this.scenario.release.effects ?? []).forEach((e, k) => {
        if (!d.affected[k]) return;
        cpu += e.cpu ?? 0;
        memory += e.memory ?? 0;
        drain += e.drain ?? 0;
      });
    }
    const clamp = (x: number): number => Math.min(100, Math.max(0, x));
    return { battery: d.battery, charging: d.charging, cpu: clamp(cpu), memory: clamp(memory), disk: d.disk, drain: d.charging ? 0 : Math.max(0, drain), cpuTrend: 0 };
  }

  refuses(): string | null {
    return null;
  }

  start(deploymentId: string, deviceId: string, _payload: unknown, rollback: boolean): { handle: string; committed: Promise<void> } {
    const d = this.devices.get(deviceId) as SimDevice;
    const [lo, hi] = this.scenario.release.durationSeconds ?? [30, 120];
    const ms = (lo + this.rng() * (hi - lo)) * 1000;
    const effects = this.scenario.release.effects ?? [];
    const report = (outcome: Parameters<RolloutController['report']>[2]): void => this.controller?.report(deploymentId, deviceId, outcome, rollback);
    if (rollback) {
      this.clock.setTimeout(() => {
        d.updated = false;
        report({ kind: 'succeeded' });
      }, ms);
    } else {
      const crash = effects.some((e, k) => d.affected[k] && this.rng() < (e.crash ?? 0));
      const fail = this.rng() < (this.scenario.release.failureRate ?? 0.005) || effects.some((e, k) => d.affected[k] && this.rng() < (e.fail ?? 0));
      if (crash) {
        // The agent dies mid-update: nothing comes back, and the device is away for half an hour.
        d.offlineUntil = this.clock.now() + 30 * 60_000;
        this.clock.setTimeout(() => report({ kind: 'timed_out', reason: `no answer within ${TIMEOUT_MS / 60_000} minutes` }), TIMEOUT_MS);
      } else {
        this.clock.setTimeout(() => {
          if (fail) report({ kind: 'failed', reason: 'install failed' });
          else {
            d.updated = true;
            report({ kind: 'succeeded' });
          }
        }, ms);
      }
    }
    return { handle: `${deploymentId}/${deviceId}/${rollback ? 'rollback' : 'update'}`, committed: Promise.resolve() };
  }

  cancel(): void {
    // Updates in the simulation run to their end.
  }
}

export interface SimOptions {
  devices?: number;
  /** Replaces every stage's gate (for comparisons, e.g. the fixed-threshold baseline). */
  gate?: Gate;
  /** Stop after this much virtual time. @default 7 days */
  maxVirtualMs?: number;
  /** Called now and then with the progress. */
  onProgress?: (p: { virtualMs: number; ring: string; stage: number; stages: number; done: number; total: number }) => void;
  /** End the run once the deployment has left this stage (or halted in it), as an operator looking after the first ring would. */
  stopAfterStage?: number;
  /** Called at the end of the run, before the virtual fleet is dropped: to look at the deployment as it stands. */
  inspect?: (run: SimRun) => void | Promise<void>;
}

/** What `inspect` sees at the end of a run. */
export interface SimRun {
  deploymentId: string;
  controller: RolloutController;
  fleet: Fleet;
  virtual: VirtualFleet;
  now: number;
}

/** Runs one scenario to its end (completion, halt, rollback) on a fresh virtual fleet. */
export async function simulate(scenario: Scenario, options: SimOptions = {}): Promise<SimResult> {
  const wall = performance.now();
  const n = options.devices ?? scenario.devices ?? 10_000;
  const rng = seededRng(scenario.seed ?? 1);
  const start = Date.UTC(2026, 0, 5, 0, 0, 0);
  const clock = new VirtualClock(start);
  const store = await openStore({ adapter: 'memory' });
  const events = new TypedEventBus<OrchestratorEvents>();
  const fleet = new Fleet({ store, clock, events, log: silentLogger, health: DEFAULT_HEALTH_SCORE_CONFIG });
  await fleet.load();
  const virtual = new VirtualFleet(clock, rng, scenario, n);
  await fleet.importDevices(virtual.imports());
  const controller = new RolloutController({ store, clock, fleet, driver: virtual, events, log: silentLogger });
  virtual.controller = controller;
  const rings = fleet.ringNames();
  const stages: Stage[] = rings.map((ring, i) => {
    const base = defaultStage(ring, i);
    const over = scenario.stages?.[i] ?? {};
    const stage: Stage = { ...base, ...over, ring, gate: { ...base.gate, ...over.gate }, preflight: { ...base.preflight, ...over.preflight } };
    if (options.gate) stage.gate = { ...options.gate };
    return stage;
  });
  const spec: DeploymentSpec = {
    name: scenario.name,
    payload: { type: 'deploy', params: { version: 'sim' } },
    stages,
    maintenanceWindows: [],
    autoRollback: false,
    rollbackPayload: { type: 'deploy', params: { version: 'previous' } },
  };
  const d = await controller.create(spec, { start: true });
  const tickMs = 5000;
  const maxMs = options.maxVirtualMs ?? 7 * 86_400_000;
  let status = 'in_progress';
  let lastProgress = 0;
  while (clock.now() - start < maxMs) {
    clock.advanceTo(clock.now() + tickMs);
    await controller.tick();
    const rec = controller.peek(d.id);
    if (!rec) {
      status = (await controller.get(d.id)).deployment.status;
      break;
    }
    status = rec.status;
    // Nobody is there to promote or abort: a halt, or a pause for want of evidence, is where the run ends.
    if (status === 'halted' || status === 'paused') break;
    if (options.stopAfterStage !== undefined && rec.stage > options.stopAfterStage) break;
    if (options.onProgress && clock.now() - lastProgress >= 60_000) {
      lastProgress = clock.now();
      options.onProgress({ virtualMs: clock.now() - start, ring: stages[rec.stage]?.ring ?? '?', stage: rec.stage, stages: stages.length, done: controller.succeeded(d.id), total: n });
    }
  }
  const view = await controller.get(d.id);
  await options.inspect?.({ deploymentId: d.id, controller, fleet, virtual, now: clock.now() });
  await controller.flush();
  await store.close();
  const updatedPerRing: Record<string, number> = Object.fromEntries(rings.map((r) => [r, 0]));
  let exposed = 0;
  for (const e of view.executions) {
    if (e.startedAt !== null) exposed++;
    if (e.state === 'succeeded') updatedPerRing[stages[e.stage]?.ring ?? '?'] = (updatedPerRing[stages[e.stage]?.ring ?? '?'] ?? 0) + 1;
  }
  const outcome = status === 'completed' ? 'completed' : status === 'halted' ? 'halted' : status === 'paused' ? 'paused' : status === 'rolled_back' ? 'rolled_back' : 'unfinished';
  const end = view.deployment.endedAt ?? view.evaluations.filter((e) => e.verdict === 'fail' || e.verdict === 'insufficient_evidence').at(-1)?.at ?? clock.now();
  return {
    scenario: scenario.name,
    bad: scenario.bad,
    devices: n,
    outcome,
    haltReason: view.deployment.haltReason,
    virtualMs: end - start,
    updatedPerRing,
    exposed,
    exposedShare: exposed / n,
    falseHalt: !scenario.bad && outcome === 'halted',
    wallMs: Math.round(performance.now() - wall),
  };
}

/** Checks a scenario document and fills in defaults; throws with every problem named. */
export function parseScenario(doc: unknown): Scenario {
  const errors: string[] = [];
  const s = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
  if (typeof s.name !== 'string' || s.name === '') errors.push('name: required');
  if (typeof s.bad !== 'boolean') errors.push('bad: must be true or false');
  const release = (typeof s.release === 'object' && s.release !== null ? s.release : null) as Record<string, unknown> | null;
  if (!release) errors.push('release: must be an object');
  const effects = release?.effects;
  if (effects !== undefined && !Array.isArray(effects)) errors.push('release.effects: must be a list');
  (Array.isArray(effects) ? effects : []).forEach((raw: unknown, i: number) => {
    const e = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(e)) {
      if (k === 'model') {
        if (typeof v !== 'string') errors.push(`release.effects[${i}].model: must be a string`);
      } else if (['share', 'fail', 'crash'].includes(k)) {
        if (typeof v !== 'number' || v < 0 || v > 1) errors.push(`release.effects[${i}].${k}: must be from 0 to 1`);
      } else if (['cpu', 'memory', 'drain'].includes(k)) {
        if (typeof v !== 'number' || !Number.isFinite(v)) errors.push(`release.effects[${i}].${k}: must be a number`);
      } else errors.push(`release.effects[${i}].${k}: unknown field`);
    }
  });
  if (errors.length > 0) throw new Error(`invalid scenario: ${errors.join('; ')}`);
  return doc as Scenario;
}

export const SIM_MODELS = MODELS.map(([m]) => m);
