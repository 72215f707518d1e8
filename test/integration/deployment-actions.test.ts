import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { OrchestratorEvents } from '../../src/domain/events.js';
import { TypedEventBus } from '../../src/util/event-bus.js';
import type { DeploymentView, ExecutionDriver, ExecutionOutcome } from '../../src/core/rollout-state.js';
import { RolloutController } from '../../src/core/rollouts.js';
import type { DeploymentAction, DeploymentSpec, Payload, Stage } from '../../src/domain/deployment.js';
import { DEFAULT_GATE, defaultStage, TRANSITIONS } from '../../src/domain/deployment.js';
import { DEFAULT_HEALTH_SCORE_CONFIG } from '../../src/domain/health-score.js';
import type { DeviceMetrics } from '../../src/domain/metrics.js';
import { seededRng } from '../../src/domain/random.js';
import { Fleet } from '../../src/fleet/fleet.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

/**
 * The rollout controller on its own, on a real SQLite file and a fake clock,
 * with devices the test drives: which are online, which can run the payload,
 * and when each update ends.
 */
class Devices implements ExecutionDriver {
  readonly offline = new Set<string>();
  readonly noHandler = new Set<string>();
  /** On battery, at 10%: below the default pre-flight minimum. */
  readonly lowBattery = new Set<string>();
  /** Updates and rollbacks started and not reported yet, by handle. */
  readonly running = new Map<string, { deploymentId: string; deviceId: string; rollback: boolean }>();
  readonly starts: { deviceId: string; rollback: boolean }[] = [];
  readonly cancels: { handle: string; reason: string }[] = [];
  controller: RolloutController | null = null;
  private n = 0;

  online(id: string): boolean {
    return !this.offline.has(id);
  }

  metrics(id: string): DeviceMetrics {
    return this.lowBattery.has(id) ? { battery: 10, charging: false, cpu: 20, memory: 40, disk: 30, drain: 5, cpuTrend: 0 } : { battery: 90, charging: true, cpu: 20, memory: 40, disk: 30, drain: 0, cpuTrend: 0 };
  }

  refuses(id: string, payload: Payload): string | null {
    return this.noHandler.has(id) ? `the agent does not offer task type ${payload.type}` : null;
  }

  start(deploymentId: string, deviceId: string, _payload: Payload, rollback: boolean): { handle: string; committed: Promise<void> } {
    const handle = `task-${++this.n}`;
    this.running.set(handle, { deploymentId, deviceId, rollback });
    this.starts.push({ deviceId, rollback });
    return { handle, committed: Promise.resolve() };
  }

  cancel(handle: string, reason: string): void {
    this.running.delete(handle);
    this.cancels.push({ handle, reason });
  }

  /** Ends running updates (all, or those `pick` chooses) with `outcome(deviceId)`. */
  finish(pick: (deviceId: string) => boolean = () => true, outcome: (deviceId: string) => ExecutionOutcome = () => ({ kind: 'succeeded' })): void {
    for (const [handle, r] of [...this.running]) {
      if (!pick(r.deviceId)) continue;
      this.running.delete(handle);
      this.controller?.report(r.deploymentId, r.deviceId, outcome(r.deviceId), r.rollback);
    }
  }
}

interface Setup {
  controller: RolloutController;
  devices: Devices;
  clock: FakeClock;
  dbPath: string;
  store: Store;
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  cleanupTempDirs();
});

const MODELS = ['t14', 'x1-carbon', 'latitude-7440'];

async function controllerOn(dbPath: string, clock: FakeClock, wrap: (s: Store) => Store = (s) => s): Promise<Setup & { fleet: Fleet }> {
  const sqlite = new SqliteStore(dbPath);
  closers.push(() => sqlite.close());
  const store = wrap(sqlite);
  const events = new TypedEventBus<OrchestratorEvents>();
  const fleet = new Fleet({ store, clock, events, log: silentLogger, health: DEFAULT_HEALTH_SCORE_CONFIG });
  await fleet.load();
  const devices = new Devices();
  const controller = new RolloutController({ store, clock, fleet, driver: devices, events, log: silentLogger });
  devices.controller = controller;
  await controller.load(() => true);
  return { controller, devices, clock, dbPath, store, fleet };
}

/** A fleet of `n` devices (rings of 5/15/30/50%: 40 devices make rings of 2, 6, 12 and 20). */
async function setup(n: number, wrap?: (s: Store) => Store): Promise<Setup & { fleet: Fleet }> {
  const clock = new FakeClock();
  const s = await controllerOn(join(tempDir(), 'orchestrator.db'), clock, wrap);
  await s.fleet.importDevices(
    Array.from({ length: n }, (_, i) => ({
      id: `dev-${String(i).padStart(3, '0')}`,
      model: MODELS[i % MODELS.length] as string,
      site: 'berlin',
      metrics: { battery: 90, charging: true, cpu: 20, memory: 40, disk: 30 },
    })),
  );
  return s;
}

/** A fresh controller on the same file: what a restart would show. */
async function restarted(s: Setup): Promise<RolloutController> {
  return (await controllerOn(s.dbPath, s.clock)).controller;
}

const RINGS = ['canary', 'dev', 'stage', 'prod'];

function plan(over: Partial<Stage> = {}, extra: Partial<DeploymentSpec> = {}): DeploymentSpec {
  return {
    name: 'release 7.0',
    payload: { type: 'deploy', params: { version: '7.0' } },
    stages: RINGS.map((ring, i) => ({ ...defaultStage(ring, i), rate: { maxPerMinute: 6000 }, soakMs: 60_000, ...over, gate: { ...DEFAULT_GATE, observeMs: 0, ...over.gate } })),
    maintenanceWindows: [],
    autoRollback: false,
    rollbackPayload: { type: 'deploy', params: { version: '6.9' } },
    ...extra,
  };
}

/** Ticks every second for `ms`, ending every update as it starts (unless told otherwise). */
async function run(s: Setup, ms: number, finish = true): Promise<void> {
  for (let t = 0; t < ms; t += 1000) {
    await s.clock.advance(1000);
    await s.controller.tick();
    if (finish) s.devices.finish();
  }
}

function comparable(v: DeploymentView) {
  return {
    deployment: v.deployment,
    executions: [...v.executions].sort((x, y) => x.deviceId.localeCompare(y.deviceId)),
    evaluations: v.evaluations,
  };
}

const ringOf = (s: Setup & { fleet: Fleet }, ring: string): string[] => s.fleet.members(ring);

describe('operator actions on one deployment are serialised and committed before they are answered', () => {
  it('hundreds of concurrent actions, with ticks and outcomes among them: each answered once on disk, in arrival order, and what the API shows is what a restart shows', async () => {
    const s = await setup(40);
    const c = s.controller;
    // A second connection to the file: what a restart would read, at the instant each answer is given.
    const disk = new SqliteStore(s.dbPath);
    closers.push(() => disk.close());
    // Aborts and rollbacks end a deployment, and four promotes complete it: they come mostly in the last third, so that the
    // first two thirds leave it running, with stage moves among pauses, resumes and ticks.
    const early: [DeploymentAction, number][] = [['pause', 45], ['resume', 45], ['promote', 1.5], ['acknowledge', 4]];
    const late: [DeploymentAction, number][] = [['pause', 30], ['resume', 30], ['promote', 20], ['acknowledge', 5], ['abort', 5], ['rollback', 10]];
    const pick = (weights: [DeploymentAction, number][], u: number): DeploymentAction => {
      let x = u * weights.reduce((sum, [, w]) => sum + w, 0);
      for (const [a, w] of weights) if ((x -= w) < 0) return a;
      return 'pause';
    };
    type Answer = { action: DeploymentAction; status: string; onDisk: Promise<string | undefined> } | { action: DeploymentAction; code: unknown };
    const ids: string[] = [];
    for (let round = 0; round < 6; round++) {
      const rng = seededRng(round + 1);
      // A long soak: only the actions move the deployment between stages (a tick never changes its status here).
      const d = await c.create(plan({ soakMs: 3_600_000, rate: { maxPerMinute: 120 } }), { start: true });
      ids.push(d.id);
      await run(s, 3000, false);
      s.devices.finish((id) => id.endsWith('0') || id.endsWith('5'));
      const answers: Answer[] = [];
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < 300; i++) {
        const action = pick(i < 200 ? early : late, rng());
        work.push(
          c.act(d.id, action).then(
            // The read runs at once (SQLite is synchronous): the file as it is when the answer is given.
            (r) => (answers[i] = { action, status: r.status, onDisk: disk.getDeployment(d.id).then((x) => x?.status) }),
            (err: unknown) => (answers[i] = { action, code: (err as { code?: unknown }).code }),
          ),
        );
        if (i % 30 === 29) {
          await s.clock.advance(1000);
          work.push(c.tick());
          s.devices.finish(() => rng() < 0.5);
        }
        // Every other round, requests arrive over several turns of the event loop (as over HTTP): commits land between them.
        if (round % 2 === 1 && rng() < 0.3) await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(work);
      await c.flush();
      // Taken one at a time in arrival order, each action was refused exactly when its state did not allow it, and
      // answered with the state it led to, which was on disk when the answer was given.
      let state = 'in_progress';
      let acknowledged = 0;
      for (const [i, a] of answers.entries()) {
        const allowed = (TRANSITIONS[a.action].from as readonly string[]).includes(state);
        if ('code' in a) {
          expect({ i, ...a, allowed }).toEqual({ i, action: a.action, code: 'ORCH_DEPLOYMENT_STATE', allowed: false });
          continue;
        }
        acknowledged++;
        const to = a.action === 'promote' && state !== 'completed' && a.status === 'completed' ? 'completed' : TRANSITIONS[a.action].to;
        expect({ i, action: a.action, from: state, allowed, status: a.status, onDisk: await a.onDisk }).toEqual({ i, action: a.action, from: state, allowed: true, status: to, onDisk: to });
        state = a.status;
      }
      expect(acknowledged).toBeGreaterThan(20);
      expect((await c.get(d.id)).deployment.status).toBe(state);
      const fresh = await restarted(s);
      for (const id of ids) expect(comparable(await fresh.get(id)), `round ${round}, ${id}`).toEqual(comparable(await c.get(id)));
    }
  });

  it('an action whose commit the store refuses throws, and leaves memory (and the file) as they were; nothing it would have started has happened', async () => {
    let refuse = false;
    const refusing = (inner: Store): Store =>
      new Proxy(inner, {
        get(target, prop, receiver) {
          if (prop === 'saveDeployment' && refuse) {
            return () => {
              refuse = false;
              return Promise.reject(new Error('SQLITE_FULL: database or disk is full'));
            };
          }
          const value: unknown = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
    const s = await setup(40, refusing);
    const c = s.controller;
    const d = await c.create(plan({ soakMs: 3_600_000 }), { start: true });
    await run(s, 3000, false);
    s.devices.finish((id) => !ringOf(s, 'canary').includes(id) || id === ringOf(s, 'canary')[0]);
    // One canary device is still updating: an abort or a rollback would cancel it.
    expect(s.devices.running.size).toBe(1);
    for (const action of ['promote', 'pause', 'abort', 'rollback'] as const) {
      const before = comparable(await c.get(d.id));
      const starts = s.devices.starts.length;
      refuse = true;
      await expect(c.act(d.id, action), action).rejects.toThrow('SQLITE_FULL: database or disk is full');
      expect(comparable(await c.get(d.id)), action).toEqual(before);
      expect(s.devices.cancels, action).toEqual([]);
      expect(s.devices.starts.length, action).toBe(starts);
      expect(comparable(await (await restarted(s)).get(d.id)), action).toEqual(before);
    }
    // The store is back: the same action goes through, committed.
    const aborted = await c.act(d.id, 'abort');
    expect(aborted.status).toBe('cancelled');
    expect(s.devices.cancels).toEqual([{ handle: expect.any(String) as string, reason: `deployment ${d.id} was aborted by an operator` }]);
    expect(comparable(await (await restarted(s)).get(d.id))).toEqual(comparable(await c.get(d.id)));
  });

  it('a transition of a tick (the soak starting) whose commit is refused is tried again at the next tick', async () => {
    let refuse = 0;
    const s = await setup(40, (inner) =>
      new Proxy(inner, {
        get(target, prop, receiver) {
          if (prop === 'saveDeployment' && refuse > 0) {
            return () => {
              refuse--;
              return Promise.reject(new Error('SQLITE_IOERR: disk I/O error'));
            };
          }
          const value: unknown = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      }),
    );
    const d = await s.controller.create(plan(), { start: true });
    refuse = 1;
    await run(s, 2000);
    expect(refuse).toBe(0);
    expect(s.controller.peek(d.id)?.phase).toBe('dispatching');
    await run(s, 1000);
    expect(s.controller.peek(d.id)?.phase).toBe('soaking');
    expect(comparable(await (await restarted(s)).get(d.id))).toEqual(comparable(await s.controller.get(d.id)));
  });
});

describe('gates never pass without evidence', () => {
  it('a canary ring with part of it offline pauses with insufficient_evidence, saying what could be judged and why not the rest; promote goes on', async () => {
    const s = await setup(40);
    const canary = ringOf(s, 'canary');
    expect(canary).toHaveLength(2);
    s.devices.offline.add(canary[1] as string);
    const d = await s.controller.create(plan(), { start: true });
    await run(s, 65_000);
    const view = await s.controller.get(d.id);
    expect(view.deployment).toMatchObject({ status: 'paused', stage: 0, detail: { pauseReason: 'insufficient_evidence' } });
    const reason =
      'insufficient evidence at ring canary: 1 of 2 devices could be judged, below the 2 required (every device, in a ring smaller than minJudged 10); ' +
      'not judged: 1 offline; paused: promote to go on without it, resume to wait one more soak for it, or abort';
    expect(view.deployment.haltReason).toBe(reason);
    expect(view.evaluations.at(-1)).toMatchObject({ stage: 0, ring: 'canary', verdict: 'insufficient_evidence', reason, figures: { devices: 2, judged: 1, required: 2, offline: 1, skipped: 0, failedPreflight: 0 } });
    expect(view.evaluations.some((e) => e.verdict === 'pass')).toBe(false);
    // No device beyond the canary was touched.
    expect(view.executions.every((e) => e.stage === 0)).toBe(true);
    expect(await s.controller.act(d.id, 'promote')).toMatchObject({ status: 'in_progress', stage: 1, haltReason: null, detail: {} });
    expect(comparable(await (await restarted(s)).get(d.id))).toEqual(comparable(await s.controller.get(d.id)));
  });

  it('a ring where devices lack the handler or fail pre-flight pauses too; resume waits one more soak, in which devices that qualify again are updated and judged', async () => {
    const s = await setup(40);
    const dev = ringOf(s, 'dev');
    expect(dev).toHaveLength(6);
    for (const id of dev.slice(0, 3)) s.devices.noHandler.add(id);
    s.devices.lowBattery.add(dev[3] as string);
    const d = await s.controller.create(plan(), { start: true });
    await run(s, 200_000);
    const view = await s.controller.get(d.id);
    expect(view.deployment).toMatchObject({ status: 'paused', stage: 1 });
    expect(view.evaluations.filter((e) => e.verdict === 'pass').map((e) => e.ring)).toEqual(['canary']);
    expect(view.deployment.haltReason).toBe(
      'insufficient evidence at ring dev: 2 of 6 devices could be judged, below the 6 required (every device, in a ring smaller than minJudged 10); ' +
        'not judged: 3 skipped (the agent does not offer task type deploy: 3), 1 failed pre-flight (pre-flight: battery 10% is below the 20% minimum: 1); ' +
        'paused: promote to go on without it, resume to wait one more soak for it, or abort',
    );
    expect(view.evaluations.at(-1)?.figures).toMatchObject({ devices: 6, judged: 2, required: 6, skipped: 3, failedPreflight: 1 });
    // Paused: the skipped devices are not tried again until an operator decides.
    for (const id of dev.slice(0, 3)) s.devices.noHandler.delete(id);
    s.devices.lowBattery.clear();
    await run(s, 60_000);
    expect(s.controller.peek(d.id)?.status).toBe('paused');
    expect((await s.controller.get(d.id)).executions.filter((e) => e.stage === 1 && e.state === 'skipped')).toHaveLength(4);
    const resumed = await s.controller.act(d.id, 'resume');
    expect(resumed).toMatchObject({ status: 'in_progress', stage: 1, phase: 'soaking', soakUntil: s.clock.now() + 60_000, haltReason: null });
    await run(s, 61_000);
    const after = await s.controller.get(d.id);
    expect(after.executions.filter((e) => e.stage === 1).every((e) => e.state === 'succeeded')).toBe(true);
    expect(after.evaluations.filter((e) => e.verdict === 'pass').map((e) => e.ring)).toEqual(['canary', 'dev']);
    expect(after.deployment.stage).toBe(2);
  });

  it('an empty ring is passed at once, without a soak, and its evaluation says so; a fleet with no devices completes at start', async () => {
    const s = await setup(6);
    expect(ringOf(s, 'canary')).toHaveLength(0);
    const d = await s.controller.create(plan(), { start: true });
    const start = s.clock.now();
    expect(d).toMatchObject({ status: 'in_progress', stage: 1, phase: 'dispatching' });
    const view = await s.controller.get(d.id);
    expect(view.evaluations).toEqual([{ stage: 0, ring: 'canary', at: start, verdict: 'skip', reason: 'ring canary has no devices: skipped at once, without a soak', figures: { devices: 0 } }]);
    await run(s, 400_000);
    expect((await s.controller.get(d.id)).deployment.status).toBe('completed');

    const empty = await setup(0);
    const e = await empty.controller.create(plan(), { start: true });
    expect(e).toMatchObject({ status: 'completed', stage: 3, endedAt: empty.clock.now(), detail: { outcome: { devices: 0, updated: 0, notUpdated: 0, summary: 'no device was in any ring' } } });
    expect((await empty.controller.get(e.id)).evaluations.map((x) => [x.ring, x.verdict])).toEqual(RINGS.map((r) => [r, 'skip']));
  });

  it('a deployment that ends with devices not updated says so: completed, with the count of each outcome and the reasons', async () => {
    const s = await setup(40);
    const prod = ringOf(s, 'prod');
    const missing = prod.slice(0, 5);
    for (const id of missing) s.devices.noHandler.add(id);
    const broken = prod[10] as string;
    s.devices.offline.add(prod[11] as string);
    const d = await s.controller.create(plan({ gate: { ...DEFAULT_GATE, observeMs: 0, minJudged: 10 } }), { start: true });
    for (let t = 0; t < 400_000 && s.controller.peek(d.id) !== null; t += 1000) {
      await s.clock.advance(1000);
      await s.controller.tick();
      s.devices.finish(() => true, (id) => (id === broken ? { kind: 'failed', reason: 'install failed' } : { kind: 'succeeded' }));
    }
    const view = await s.controller.get(d.id);
    expect(view.deployment.status).toBe('completed');
    expect(view.deployment.detail.outcome).toEqual({
      devices: 40,
      updated: 33,
      notUpdated: 7,
      counts: { queued: 1, in_progress: 0, succeeded: 33, failed: 1, timed_out: 0, rejected: 0, skipped: 5, cancelled: 0, rolled_back: 0 },
      summary: '33 of 40 devices updated; not updated: 5 skipped (the agent does not offer task type deploy: 5), 1 failed, 1 never reached (offline)',
    });
    // The prod pass says which devices it stands on.
    expect(view.evaluations.find((e) => e.ring === 'prod' && e.verdict === 'pass')?.reason).toMatch(
      /; 14 of 20 devices judged, not judged: 1 offline, 5 skipped \(the agent does not offer task type deploy: 5\)$/,
    );
  });
});

describe('automatic cancels say what cancelled them', () => {
  it('an automatic rollback after a halt cancels the updates still running with the halt as the reason, and the executions show it', async () => {
    const s = await setup(40);
    const canary = ringOf(s, 'canary');
    const d = await s.controller.create(plan({ gate: { ...DEFAULT_GATE, observeMs: 0, minDevices: 1 } }, { autoRollback: true }), { start: true });
    await s.clock.advance(1000);
    await s.controller.tick();
    expect(s.devices.running.size).toBe(2);
    // One canary device fails; the other is still updating when the gate halts.
    s.devices.finish((id) => id === canary[0], () => ({ kind: 'failed', reason: 'install failed' }));
    await s.clock.advance(1000);
    await s.controller.tick();
    const view = await s.controller.get(d.id);
    const halt = 'halted at ring canary: 1 of 1 devices (100%) failed, above the 5% limit (at 99% confidence: at least 15.6%)';
    expect(view.deployment).toMatchObject({ status: 'rolled_back', haltReason: halt, endedAt: null });
    expect(s.devices.cancels).toEqual([{ handle: expect.any(String) as string, reason: `deployment ${d.id} was rolled back automatically: ${halt}` }]);
    const running = view.executions.find((e) => e.deviceId === canary[1]);
    expect(running).toMatchObject({ state: 'cancelled', reason: `rolled back automatically: ${halt} during the update; rollback sent` });
    expect(view.executions.find((e) => e.deviceId === canary[0])?.reason).toBe(`rolled back automatically: ${halt}; rollback sent`);
    // Both get the rollback payload; once both answered, the rollback is over and its outcome recorded.
    expect(s.devices.starts.filter((x) => x.rollback).map((x) => x.deviceId).sort()).toEqual([...canary].sort());
    s.devices.finish();
    const done = await s.controller.get(d.id);
    expect(done.deployment.endedAt).toBe(s.clock.now());
    expect(done.executions.map((e) => e.state)).toEqual(['rolled_back', 'rolled_back']);
    expect(done.deployment.detail.outcome).toMatchObject({ devices: 2, updated: 0, counts: { rolled_back: 2 } });
    expect(s.controller.isActive(d.id)).toBe(false);
    expect(comparable(await (await restarted(s)).get(d.id))).toEqual(comparable(done));
  });
});
