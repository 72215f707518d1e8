import type { Rng } from '../domain/random.js';
import type { Fleet } from '../fleet/fleet.js';
import { EnrollmentTokens } from '../security/enrollment.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import { TypedEventBus } from '../util/event-bus.js';
import { newMasterId } from '../util/ids.js';
import type { Logger } from '../util/logger.js';
import type { AgentLauncher } from './agent-launcher.js';
import { AgentOperations } from './agent-operations.js';
import { AgentDirectory } from './agents.js';
import { CoreState } from './core-state.js';
import type { EventBus, OrchestratorEvents } from '../domain/events.js';
import { Heartbeats } from './heartbeats.js';
import { InProcessAgents } from './in-process-agents.js';
import { Loop } from './loop.js';
import { NetworkAgents } from './network-agents.js';
import { CommandIds, nextBoot } from './network-channel.js';
import type { RolloutController } from './rollouts.js';
import { SeedFacade } from './seed-facade.js';
import type { Services } from './services.js';
import type { OrchestratorSettings } from './settings.js';
import { edgeServices } from './services.js';
import { StateLoader } from './state-loader.js';
import { StorageGuard } from './storage-guard.js';
import { Sweeper } from './sweeper.js';
import { reportExecutionOutcomes, taskExecutionDriver } from './task-execution-driver.js';
import type { TaskEngine } from './task-engine.js';

export interface OrchestratorOptions {
  store: Store;
  clock: Clock;
  rng: Rng;
  launcher: AgentLauncher;
  settings: OrchestratorSettings;
  log: Logger;
  /** How often heartbeats, leases and task deadlines are checked. @default 1000 */
  sweepIntervalMs?: number;
  /** How long to wait for agents to report the effect of `modify_metrics`. @default 2000 */
  replyTimeoutMs?: number;
  /** Retransmission interval of unacknowledged messages to agents. @default 1000 */
  retryIntervalMs?: number;
  /** How often running deployments dispatch, observe and judge. @default 1000 */
  deploymentTickMs?: number;
}


/** How often devices' metrics history older than its retention is deleted. */
const HISTORY_PRUNE_MS = 3_600_000;
/**
 * The master, as wiring: it builds the pieces (each in a file of its own), starts and stops them. Durable
 * state is in the Store; what is kept in memory is rebuilt from the Store on start, and after a failed write.
 */
export class Orchestrator {
  readonly events: EventBus = new TypedEventBus<OrchestratorEvents>();
  /** Fences writes when the store cannot commit, and has memory rebuilt from the store (see StorageGuard). */
  readonly storage: StorageGuard;
  /** The store as every component uses it: through the guard. */
  readonly store: Store;
  /** Enrollment tokens beside the default one: limited, revocable, optionally holding agents for approval. */
  readonly enrollmentTokens: EnrollmentTokens;
  /** Agents and assets: operators' actions and views. */
  readonly agents: AgentOperations;
  /** The network agent protocol: enrollment, heartbeats, commands, results. */
  readonly network: NetworkAgents;
  /** The seed prototype's cluster status, deployments and activity. */
  readonly seed: SeedFacade;
  /** What the HTTP API may use. */
  readonly services: Services;
  private readonly state: CoreState;
  private readonly directory: AgentDirectory;
  private readonly heartbeats: Heartbeats;
  private readonly inProcess: InProcessAgents;
  private readonly loader: StateLoader;
  private readonly sweeper: Sweeper;
  private readonly loops: Loop[];

  constructor(private readonly options: OrchestratorOptions) {
    const { clock, rng, launcher, settings, log } = options;
    const events = this.events;
    this.storage = new StorageGuard(options.store, {
      clock,
      log,
      reload: async () => {
        this.heartbeats.drop();
        return this.loader.rebuild();
      },
      onChange: (status) => {
        events.emit('storage.changed', status);
        // Writes accepted again: what waited for them goes on.
        if (status.writable) this.state.tasks.scheduleDispatch();
      },
    });
    const store = (this.store = this.storage.store);
    const state = (this.state = new CoreState(this.storage));
    const agents = (this.directory = new AgentDirectory(settings, state));
    this.enrollmentTokens = new EnrollmentTokens(store, clock);
    this.heartbeats = new Heartbeats({ state, store, clock, events, log });
    this.inProcess = new InProcessAgents({
      state, agents, heartbeats: this.heartbeats, launcher, store, clock, events, log,
      replyTimeoutMs: options.replyTimeoutMs ?? 2000,
      retryIntervalMs: options.retryIntervalMs ?? 1000,
    });
    this.agents = new AgentOperations({ state, agents, inProcess: this.inProcess, launcher, store, clock, rng, events });
    this.network = new NetworkAgents({
      state, agents, heartbeats: this.heartbeats, enrollmentTokens: this.enrollmentTokens, store, clock, rng, events,
      enrollApproval: settings.enrollApproval === true,
    });
    this.seed = new SeedFacade({ state, agents, operations: this.agents, inProcess: this.inProcess, store, clock, rng, events });
    this.loader = new StateLoader({ state, agents, driver: taskExecutionDriver(state, agents), launcher, store, clock, rng, events, log, settings });
    state.replace(this.loader.build());
    agents.follow(events);
    reportExecutionOutcomes(events, state);
    this.sweeper = new Sweeper({ state, agents, store, clock, events, log, intervalMs: options.sweepIntervalMs ?? 1000 });
    const onError = (name: string, err: unknown): void => log.error({ err, loop: name }, 'loop run failed');
    // While the store cannot commit, the loops rest: everything they would change needs a write.
    const whenWritable = (body: () => Promise<unknown>) => async (): Promise<void> => {
      if (state.writable) await body();
    };
    this.loops = [
      new Loop('sweeper', clock, options.sweepIntervalMs ?? 1000, whenWritable(() => this.sweeper.sweep()), onError),
      new Loop('rebalancer', clock, settings.rebalanceIntervalMs, whenWritable(() => state.fleet.rebalance('schedule')), onError),
      new Loop('deployer', clock, options.deploymentTickMs ?? 1000, whenWritable(() => state.deployments.tick()), onError),
      new Loop('history', clock, HISTORY_PRUNE_MS, whenWritable(() => state.fleet.pruneHistory()), onError),
    ];
    this.services = edgeServices({
      state, storage: this.storage, clock, agents: this.agents, directory: agents, network: this.network,
      enrollmentTokens: this.enrollmentTokens, seed: this.seed, events, heartbeats: this.heartbeats, heartbeatIntervalMs: settings.heartbeatIntervalMs,
    });
  }

  /** The task queue. */
  get tasks(): TaskEngine {
    return this.state.tasks;
  }

  /** Every device, its health and its ring. */
  get fleet(): Fleet {
    return this.state.fleet;
  }

  /** Staged deployments. */
  get deployments(): RolloutController {
    return this.state.deployments;
  }

  get masterId(): string {
    return this.state.masterId;
  }

  get isRunning(): boolean {
    return this.state.isRunning;
  }

  /**
   * Loads the fleet and the queue (attempts that were running when the last process ended go back to the
   * queue, counted), relaunches the spawned agents with their stored identities, and starts the loops.
   * Returns the ids of the agents it restored.
   */
  async start(): Promise<string[]> {
    const { state, store } = this;
    if (state.isRunning) return [];
    let masterId = await store.getMeta('master_id');
    if (masterId === null) {
      masterId = newMasterId(this.options.rng);
      await store.setMeta('master_id', masterId);
    }
    state.masterId = masterId;
    const stored = await store.getMeta('boot');
    const boot = nextBoot(stored === null ? null : Number(stored), this.options.clock.now());
    await store.setMeta('boot', String(boot));
    state.commandIds = new CommandIds(boot);
    await this.network.loadEnrollmentToken(this.options.settings.enrollToken);
    await this.loader.load();
    state.isRunning = true;
    const restored: string[] = [];
    for (const live of this.directory.values()) {
      if (live.agent.kind !== 'simulated' || live.agent.device === null) continue;
      this.inProcess.launch(live, { capabilities: live.agent.capabilities, device: live.agent.device });
      restored.push(live.agent.id);
    }
    this.sweeper.reset();
    for (const loop of this.loops) loop.start();
    return restored;
  }

  async stop(): Promise<void> {
    if (!this.state.isRunning) return;
    this.state.isRunning = false;
    this.storage.stop();
    for (const loop of this.loops) await loop.stop();
    this.state.tasks.stop();
    this.options.launcher.stopAll();
    this.directory.closeChannels();
    await this.inProcess.settle();
    await this.heartbeats.flush();
    await this.state.deployments.flush();
    await this.state.fleet.snapshot();
  }

  /** Writes the heartbeats held back (they are written within a second anyway). */
  flushHeartbeats(): Promise<void> {
    return this.heartbeats.flush();
  }
}
