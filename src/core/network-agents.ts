import { randomBytes } from 'node:crypto';
import { OrchestratorError } from '../domain/errors.js';
import type { Rng } from '../domain/random.js';
import type { Approval } from '../domain/security.js';
import type { Reading } from '../domain/metrics.js';
import type { Agent, DeviceInfo, TaskType } from '../domain/types.js';
import { credentialMatches, newAgentCredential, parseAgentBearer } from '../security/agent-credentials.js';
import type { EnrollmentTokens } from '../security/enrollment.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import { newAgentId } from '../util/ids.js';
import type { AgentDirectory, LiveAgent } from './agents.js';
import type { CoreState } from './core-state.js';
import type { EventBus } from '../domain/events.js';
import type { Heartbeats } from './heartbeats.js';
import type { Command } from './network-channel.js';
import { NetworkChannel } from './network-channel.js';
import type { HeldAttempt, ResultReport } from './task-types.js';
import { offerResult } from './task-results.js';

/** The share of a long-poll's wait that may be cut off at random (see poll). */
const POLL_JITTER = 0.2;

export interface EnrollInput {
  token: string;
  /** A returning agent's id, with its credential. */
  agentId?: string;
  credential?: string;
  capabilities: TaskType[];
  device: DeviceInfo;
  attributes?: { model?: string; manufacturer?: string; osName?: string };
}

export interface ResultAnswer {
  taskId: string;
  attempt: number;
  status: 'accepted' | 'refused';
  code?: string;
  error?: string;
}

export interface NetworkAgentsOptions {
  state: CoreState;
  agents: AgentDirectory;
  heartbeats: Heartbeats;
  enrollmentTokens: EnrollmentTokens;
  store: Store;
  clock: Clock;
  rng: Rng;
  events: EventBus;
  /** Every newly enrolled agent waits as `pending` for an admin's approval (ENROLL_APPROVAL). */
  enrollApproval: boolean;
}

/**
 * The network agent protocol's side in the orchestrator (docs/agent-protocol.md): enrollment and credentials,
 * heartbeats, the command long-poll and results. Agents are processes of their own that reach the
 * orchestrator over HTTP; each request is authenticated by the agent's credential.
 */
export class NetworkAgents {
  private defaultToken = '';

  constructor(private readonly o: NetworkAgentsOptions) {}

  /**
   * The token network agents enroll with: `configured` (ENROLL_TOKEN), or the one stored, or a new one
   * generated and stored on the first start; 'off' for none (only stored enrollment tokens then).
   */
  async loadEnrollmentToken(configured: string | undefined): Promise<void> {
    let token = configured ?? (await this.o.store.getMeta('enroll_token'));
    if (token === null) {
      token = randomBytes(18).toString('base64url');
      await this.o.store.setMeta('enroll_token', token);
    }
    this.defaultToken = token === 'off' ? '' : token;
  }

  /** The default enrollment token ('' when there is none). */
  get enrollmentToken(): string {
    return this.defaultToken;
  }

  /**
   * Enrolls a network agent. A new one gets an id and a credential (only its hash is stored). An agent that
   * presents its id and credential again gets its identity back; the same id with another credential is refused.
   */
  async enroll(input: EnrollInput): Promise<{ agentId: string; credential: string; approval: Approval }> {
    const { state, agents, store, clock } = this.o;
    state.assertWritable();
    const now = clock.now();
    if (input.agentId !== undefined) {
      // A returning agent: its credential says who it is; a stored token is not spent again, and need not have uses left.
      if (!(await this.o.enrollmentTokens.known(input.token, this.defaultToken))) throw OrchestratorError.of('ORCH_ENROLL_REFUSED');
      const live = agents.get(input.agentId);
      if (!live || live.agent.kind !== 'network') throw new OrchestratorError('ORCH_AGENT_IDENTITY', `agent ${input.agentId} is not an enrolled network agent; enroll without an id`);
      if (input.credential === undefined || !credentialMatches(live, input.credential)) {
        throw new OrchestratorError('ORCH_AGENT_IDENTITY', `agent ${input.agentId} is enrolled with another credential`);
      }
      live.agent.capabilities = [...input.capabilities];
      live.worker.capabilities = new Set(input.capabilities);
      // A new process of the agent: what the old one had received is judged by the new one's heartbeats.
      if (live.endpoint instanceof NetworkChannel) state.tasks.agentRestarted(live.agent.id, live.endpoint.acked);
      await this.register(live, input.device, now);
      return { agentId: live.agent.id, credential: input.credential, approval: live.agent.approval ?? 'approved' };
    }
    const { requireApproval } = await this.o.enrollmentTokens.admit(input.token, this.defaultToken);
    const approval: Approval = this.o.enrollApproval || requireApproval ? 'pending' : 'approved';
    let id = newAgentId(this.o.rng);
    while (agents.has(id) || (await store.getAgent(id)) !== null) id = newAgentId(this.o.rng);
    const credential = newAgentCredential();
    const agent: Agent = {
      id, kind: 'network', capabilities: [...input.capabilities], connectivity: 'offline', registeredAt: null, lastHeartbeatAt: now,
      device: input.device, ring: 'unassigned', assetId: null, createdAt: now, credentialHash: credential.hash,
      ...(approval === 'pending' ? { approval } : {}),
    };
    await store.insertAgent(agent);
    // What the agent reports the machine is (not its host name, which says nothing of the model).
    await state.fleet.ensureDevice(id, { ...input.attributes });
    const live = agents.track(agent, null);
    await this.register(live, input.device, now);
    this.o.events.emit('agent.spawned', { agentId: id, assetId: null });
    return { agentId: id, credential: credential.secret, approval };
  }

  private register(live: LiveAgent, device: DeviceInfo, now: number): Promise<void> {
    if (!(live.endpoint instanceof NetworkChannel) || live.endpoint.isClosed) live.endpoint = new NetworkChannel(this.o.state.commandIds);
    return this.o.heartbeats.register(live, device, now);
  }

  /** The network agent a request's bearer credential (`agentId:secret`) belongs to. */
  authenticate(authorization: string | undefined): LiveAgent {
    const bearer = parseAgentBearer(authorization);
    const live = bearer === null ? undefined : this.o.agents.get(bearer.agentId);
    if (bearer === null || !live || live.agent.kind !== 'network' || !credentialMatches(live, bearer.secret)) {
      throw new OrchestratorError('ORCH_UNAUTHORIZED', 'agent credential missing or not accepted');
    }
    this.o.state.assertRunning();
    return live;
  }

  /**
   * A heartbeat. Written behind; returns the writes the answer must wait for (the agent coming online, a ring
   * move), or null when there are none, which is the usual case. `held` are the attempts the agent holds
   * (running, or with a result not yet delivered); `ack` the last command it had handled when it wrote the
   * heartbeat. While the store cannot commit, the heartbeat only says the agent lives, and is answered
   * ORCH_STORAGE_UNAVAILABLE.
   */
  heartbeat(live: LiveAgent, metrics: Reading, held: readonly HeldAttempt[], ack?: number): Promise<unknown> | null {
    if (!this.o.state.writable) {
      live.detector.heartbeat(this.o.clock.monotonic());
      this.o.state.assertWritable();
    }
    return this.o.heartbeats.apply(live, metrics, held, ack, this.o.clock.now(), true);
  }

  /**
   * The agent's long-poll: commands after `ack`, waiting up to `waitMs`. A long wait that ends empty ends up to
   * POLL_JITTER sooner, at random: agents that came together (all of them, after a restart) would otherwise
   * come back together every `waitMs`, for good.
   */
  poll(live: LiveAgent, ack: number, waitMs: number): Promise<Command[]> {
    const current = live.endpoint;
    const channel = current instanceof NetworkChannel && !current.isClosed ? current : new NetworkChannel(this.o.state.commandIds);
    live.endpoint = channel;
    const wait = waitMs >= 1000 ? Math.round(waitMs * (1 - POLL_JITTER * this.o.rng())) : waitMs;
    return channel.poll(ack, wait);
  }

  /** Results of attempts, each committed before the answer; a stale attempt is refused and changes nothing. */
  results(live: LiveAgent, results: readonly { taskId: string; attempt: number; report: ResultReport }[]): Promise<ResultAnswer[]> {
    // The agent keeps its results until they are accepted: while the store cannot commit it is told to wait.
    this.o.state.assertWritable();
    return Promise.all(
      results.map(async (r) => ({ taskId: r.taskId, attempt: r.attempt, ...(await offerResult(this.o.state.tasks, live.agent.id, r.taskId, r.attempt, r.report)) })),
    );
  }

  /** Progress renews the lease of an attempt the agent holds; any other task is not found (it may be another agent's). */
  progress(live: LiveAgent, taskId: string, attempt: number): void {
    if (!this.o.state.tasks.progress(live.agent.id, taskId, attempt)) throw new OrchestratorError('ORCH_TASK_NOT_FOUND', 'no such task attempt on this agent');
  }
}
