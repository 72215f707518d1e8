import type { Fleet } from '../fleet/fleet.js';
import type { Clock } from '../util/clock.js';
import type { AgentDirectory } from './agents.js';
import type { CoreState } from './core-state.js';
import type { EnrollmentTokens } from '../security/enrollment.js';
import type { AgentOperations } from './agent-operations.js';
import type { EventBus } from '../domain/events.js';
import type { Heartbeats } from './heartbeats.js';
import type { NetworkAgents } from './network-agents.js';
import type { RolloutController } from './rollouts.js';
import type { SeedFacade } from './seed-facade.js';
import type { StorageStatus } from '../domain/events.js';
import type { StorageGuard } from './storage-guard.js';
import type { TaskEngine } from './task-engine.js';

/** The task queue as the edge uses it. */
export type TaskService = Pick<TaskEngine, 'submit' | 'get' | 'list' | 'cancel' | 'retry' | 'unmatched' | 'countsByStatus'>;

/** Devices, their health and their rings. */
export type FleetService = Pick<
  Fleet,
  'importDevices' | 'list' | 'device' | 'override' | 'rings' | 'configure' | 'rebalance' | 'moves' | 'ringNames' | 'attributesOf' | 'metrics' | 'connectivityOf' | 'census' | 'history'
>;

/** Staged deployments. */
export type DeploymentService = Pick<RolloutController, 'create' | 'list' | 'get' | 'impact' | 'act' | 'inProgress' | 'activeProgress' | 'deviceExecutions'>;

/** Agents and assets: operators' actions and views. */
export type AgentService = Pick<AgentOperations, 'spawn' | 'addAsset' | 'remove' | 'approve' | 'ids' | 'view' | 'views' | 'assets' | 'ringMoves'>;

/** The network agent protocol. */
export interface AgentProtocolService extends Pick<NetworkAgents, 'authenticate' | 'enroll' | 'heartbeat' | 'poll' | 'results' | 'progress'> {
  /** How often agents are asked to send heartbeats. */
  readonly heartbeatIntervalMs: number;
  /** Answers every parked long-poll now (the server is closing). */
  releasePolls(): void;
}

/** The seed prototype's own operations. */
export type SeedService = Pick<SeedFacade, 'cluster' | 'startDeployment' | 'completeDeployment' | 'getDeployment' | 'simulateActivity'>;

/** Whether the orchestrator runs and its store commits. */
export interface StatusService {
  readonly isRunning: boolean;
  readonly masterId: string;
  /** The orchestrator's clock (a fake one in tests). */
  now(): number;
  readonly storage: { readonly writable: boolean; status(): StorageStatus; assertWritable(): void };
  /** Heartbeats applied since the process started (every kind of agent). */
  heartbeats(): number;
}

/**
 * What the orchestrator offers to the edge (the HTTP API). Each member is read when it is used, never kept:
 * the task queue, the fleet and the deployments are replaced as a whole when the state is rebuilt from the
 * store after a failed write, and a member kept from before would act on the state that was replaced.
 */
export interface Services {
  readonly tasks: TaskService;
  readonly fleet: FleetService;
  readonly deployments: DeploymentService;
  readonly agents: AgentService;
  readonly agentProtocol: AgentProtocolService;
  readonly enrollmentTokens: Pick<EnrollmentTokens, 'create' | 'list' | 'revoke'>;
  readonly seed: SeedService;
  readonly status: StatusService;
  readonly events: Pick<EventBus, 'on'>;
}

/** The services of the edge over the orchestrator's pieces; each member is read through the state at the time of use. */
export function edgeServices(p: {
  state: CoreState;
  storage: StorageGuard;
  clock: Clock;
  agents: AgentOperations;
  directory: AgentDirectory;
  network: NetworkAgents;
  enrollmentTokens: EnrollmentTokens;
  seed: SeedFacade;
  events: EventBus;
  heartbeats: Pick<Heartbeats, 'applied'>;
  heartbeatIntervalMs: number;
}): Services {
  const { state, network, clock } = p;
  return {
    tasks: {
      submit: (inputs) => {
        state.assertWritable();
        return state.tasks.submit(inputs);
      },
      get: (id) => state.tasks.get(id),
      list: (filter, limit, before) => state.tasks.list(filter, limit, before),
      cancel: (id, reason) => state.tasks.cancel(id, reason),
      retry: (id) => state.tasks.retry(id),
      unmatched: (task) => state.tasks.unmatched(task),
      countsByStatus: () => state.tasks.countsByStatus(),
    },
    get fleet(): FleetService {
      return state.fleet;
    },
    get deployments(): DeploymentService {
      return state.deployments;
    },
    agents: p.agents,
    agentProtocol: {
      authenticate: (authorization) => network.authenticate(authorization),
      enroll: (input) => network.enroll(input),
      heartbeat: (live, metrics, held, ack) => network.heartbeat(live, metrics, held, ack),
      poll: (live, ack, waitMs) => network.poll(live, ack, waitMs),
      results: (live, results) => network.results(live, results),
      progress: (live, taskId, attempt) => network.progress(live, taskId, attempt),
      heartbeatIntervalMs: p.heartbeatIntervalMs,
      releasePolls: () => p.directory.releasePolls(),
    },
    enrollmentTokens: p.enrollmentTokens,
    seed: p.seed,
    status: {
      get isRunning() {
        return state.isRunning;
      },
      get masterId() {
        return state.masterId;
      },
      now: () => clock.now(),
      storage: p.storage,
      heartbeats: () => p.heartbeats.applied,
    },
    events: p.events,
  };
}
