import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type {
  Agent,
  Asset,
  Deployment,
  DeviceInfo,
  RingMove,
  RingOrUnassigned,
  Task,
  TaskStatus,
  TaskType,
} from '../../domain/types.js';
import type { AttemptEndOutcome, Store, TaskAttempt } from '../store.js';
import { MIGRATIONS } from './migrations.js';

interface AgentRow {
  id: string;
  kind: string;
  capabilities: string;
  connectivity: string;
  registered_at: number | null;
  last_heartbeat_at: number | null;
  device: string | null;
  ring: string;
  asset_id: string | null;
  created_at: number;
}

interface TaskRow {
  seq: number;
  id: string;
  type: string;
  parameters: string;
  priority: number;
  status: string;
  assigned_to: string | null;
  attempts: number;
  max_attempts: number;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  result: string | null;
  error: string | null;
}

interface AttemptRow {
  task_id: string;
  attempt: number;
  agent_id: string;
  started_at: number;
  ended_at: number | null;
  outcome: string | null;
  error: string | null;
}

interface MoveRow {
  id: number;
  agent_id: string;
  from_ring: string;
  to_ring: string;
  reason: string;
  at: number;
}

interface DeploymentRow {
  id: string;
  status: string;
  started_at: number;
  completed_at: number | null;
  affected_agents: string;
  recovered_agents: string;
}

function toAgent(r: AgentRow): Agent {
  return {
    id: r.id,
    kind: r.kind as Agent['kind'],
    capabilities: JSON.parse(r.capabilities) as TaskType[],
    connectivity: r.connectivity as Agent['connectivity'],
    registeredAt: r.registered_at,
    lastHeartbeatAt: r.last_heartbeat_at,
    device: r.device === null ? null : (JSON.parse(r.device) as DeviceInfo),
    ring: r.ring as RingOrUnassigned,
    assetId: r.asset_id,
    createdAt: r.created_at,
  };
}

function toTask(r: TaskRow): Task {
  return {
    id: r.id,
    seq: r.seq,
    type: r.type as TaskType,
    parameters: JSON.parse(r.parameters) as Record<string, unknown>,
    priority: r.priority,
    status: r.status as TaskStatus,
    assignedTo: r.assigned_to,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    createdAt: r.created_at,
    startedAt: r.started_at,
    completedAt: r.completed_at,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    error: r.error,
  };
}

function toMove(r: MoveRow): RingMove {
  return {
    id: r.id,
    agentId: r.agent_id,
    from: r.from_ring as RingOrUnassigned,
    to: r.to_ring as RingOrUnassigned,
    reason: r.reason,
    at: r.at,
  };
}

function toDeployment(r: DeploymentRow): Deployment {
  return {
    id: r.id,
    status: r.status as Deployment['status'],
    startedAt: r.started_at,
    completedAt: r.completed_at,
    affectedAgents: JSON.parse(r.affected_agents) as string[],
    recoveredAgents: JSON.parse(r.recovered_agents) as string[],
  };
}

/** Runs a synchronous body and hands its outcome over as a promise. */
function run<T>(body: () => T): Promise<T> {
  try {
    return Promise.resolve(body());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

export interface SqliteStoreOptions {
  /**
   * `FULL` (the default) fsyncs the WAL on every commit: an acknowledged change
   * survives a process crash and a power loss. `NORMAL` survives a process
   * crash but may lose the last commits on power loss.
   */
  synchronous?: 'FULL' | 'NORMAL';
}

/**
 * The embedded store: one SQLite file in WAL mode. better-sqlite3 is
 * synchronous, so each verb is one atomic transaction that has committed by
 * the time its promise resolves.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly path: string;
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    const db = this.db;
    this.stmts = {
      getMeta: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value'),
      getAsset: db.prepare<[string], { data: string }>('SELECT data FROM assets WHERE id = ?'),
      insertAsset: db.prepare('INSERT INTO assets (id, data, created_at, updated_at) VALUES (?, ?, ?, ?)'),
      updateAsset: db.prepare('UPDATE assets SET data = ?, updated_at = ? WHERE id = ?'),
      listAssets: db.prepare<[], { data: string }>('SELECT data FROM assets ORDER BY created_at, id'),
      insertAgent: db.prepare(
        `INSERT INTO agents (id, kind, capabilities, connectivity, registered_at, last_heartbeat_at, device, ring, asset_id, created_at)
         VALUES (@id, @kind, @capabilities, @connectivity, @registered_at, @last_heartbeat_at, @device, @ring, @asset_id, @created_at)`,
      ),
      getAgent: db.prepare<[string], AgentRow>('SELECT * FROM agents WHERE id = ?'),
      listAgents: db.prepare<[], AgentRow>(
        "SELECT * FROM agents WHERE connectivity <> 'decommissioned' ORDER BY created_at, id",
      ),
      agentByAsset: db.prepare<[string], AgentRow>(
        "SELECT * FROM agents WHERE asset_id = ? AND connectivity <> 'decommissioned'",
      ),
      registration: db.prepare(
        "UPDATE agents SET device = ?, registered_at = COALESCE(registered_at, ?), last_heartbeat_at = ?, connectivity = 'online' WHERE id = ? AND connectivity <> 'decommissioned'",
      ),
      heartbeat: db.prepare(
        "UPDATE agents SET device = ?, last_heartbeat_at = ?, connectivity = 'online' WHERE id = ? AND connectivity <> 'decommissioned'",
      ),
      setConnectivity: db.prepare('UPDATE agents SET connectivity = ? WHERE id = ?'),
      setDevice: db.prepare('UPDATE agents SET device = ? WHERE id = ?'),
      setRing: db.prepare('UPDATE agents SET ring = ? WHERE id = ?'),
      insertMove: db.prepare('INSERT INTO ring_moves (agent_id, from_ring, to_ring, reason, at) VALUES (?, ?, ?, ?, ?)'),
      movesAll: db.prepare<[], MoveRow>('SELECT * FROM ring_moves ORDER BY id'),
      movesOf: db.prepare<[string], MoveRow>('SELECT * FROM ring_moves WHERE agent_id = ? ORDER BY id'),
      insertTask: db.prepare(
        `INSERT INTO tasks (id, type, parameters, priority, status, assigned_to, attempts, max_attempts, created_at, started_at, completed_at, result, error)
         VALUES (@id, @type, @parameters, @priority, @status, @assigned_to, @attempts, @max_attempts, @created_at, @started_at, @completed_at, @result, @error)`,
      ),
      getTask: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE id = ?'),
      attempts: db.prepare<[string], AttemptRow>('SELECT * FROM task_attempts WHERE task_id = ? ORDER BY attempt'),
      pendingFirst: db.prepare<[number], TaskRow>(
        "SELECT * FROM tasks WHERE status = 'pending' ORDER BY priority DESC, seq ASC LIMIT ?",
      ),
      pendingAfter: db.prepare<[number, number, number, number], TaskRow>(
        `SELECT * FROM tasks WHERE status = 'pending' AND (priority < ? OR (priority = ? AND seq > ?))
         ORDER BY priority DESC, seq ASC LIMIT ?`,
      ),
      inProgress: db.prepare<[], TaskRow>("SELECT * FROM tasks WHERE status = 'in_progress' ORDER BY seq"),
      countByStatus: db.prepare<[], { status: string; n: number }>(
        'SELECT status, COUNT(*) AS n FROM tasks GROUP BY status',
      ),
      attemptsByAgent: db.prepare<[], { agent_id: string; succeeded: number; failed: number }>(
        `SELECT agent_id, SUM(outcome = 'succeeded') AS succeeded, SUM(outcome IS NOT NULL AND outcome <> 'succeeded') AS failed
         FROM task_attempts GROUP BY agent_id`,
      ),
      start: db.prepare(
        "UPDATE tasks SET status = 'in_progress', assigned_to = ?, attempts = attempts + 1, started_at = ? WHERE id = ? AND status = 'pending'",
      ),
      insertAttempt: db.prepare(
        'INSERT INTO task_attempts (task_id, attempt, agent_id, started_at) VALUES (?, ?, ?, ?)',
      ),
      endAttempt: db.prepare(
        'UPDATE task_attempts SET ended_at = ?, outcome = ?, error = ? WHERE task_id = ? AND attempt = ?',
      ),
      complete: db.prepare(
        `UPDATE tasks SET status = 'completed', result = ?, error = NULL, completed_at = ?
         WHERE id = ? AND status = 'in_progress' AND attempts = ? AND assigned_to = ?`,
      ),
      requeue: db.prepare(
        `UPDATE tasks SET status = 'pending', assigned_to = NULL, error = ?
         WHERE id = ? AND status = 'in_progress' AND attempts = ? AND assigned_to = ?`,
      ),
      fail: db.prepare(
        `UPDATE tasks SET status = 'failed', error = ?, completed_at = ?
         WHERE id = ? AND status = 'in_progress' AND attempts = ? AND assigned_to = ?`,
      ),
      insertDeployment: db.prepare(
        'INSERT INTO deployments (id, status, started_at, completed_at, affected_agents, recovered_agents) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      getDeployment: db.prepare<[string], DeploymentRow>('SELECT * FROM deployments WHERE id = ?'),
      completeDeployment: db.prepare(
        "UPDATE deployments SET status = 'completed', completed_at = ?, recovered_agents = ? WHERE id = ? AND status = 'active'",
      ),
    };
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.pragma(`user_version = ${m.version}`);
      })();
    }
  }

  close(): Promise<void> {
    return run(() => {
      if (this.db.open) this.db.close();
    });
  }

  getMeta(key: string): Promise<string | null> {
    return run(() => this.stmts.getMeta.get(key)?.value ?? null);
  }

  setMeta(key: string, value: string): Promise<void> {
    return run(() => {
      this.stmts.setMeta.run(key, value);
    });
  }

  upsertAsset(asset: Asset, now: number): Promise<{ created: boolean }> {
    return run(() => {
      const data = JSON.stringify(asset);
      const changed = this.stmts.updateAsset.run(data, now, asset.id).changes;
      if (changed > 0) return { created: false };
      this.stmts.insertAsset.run(asset.id, data, now, now);
      return { created: true };
    });
  }

  getAsset(id: string): Promise<Asset | null> {
    return run(() => {
      const row = this.stmts.getAsset.get(id);
      return row ? (JSON.parse(row.data) as Asset) : null;
    });
  }

  listAssets(): Promise<Asset[]> {
    return run(() => this.stmts.listAssets.all().map((r) => JSON.parse(r.data) as Asset));
  }

  insertAgent(agent: Agent): Promise<void> {
    return run(() => {
      this.stmts.insertAgent.run({
        id: agent.id,
        kind: agent.kind,
        capabilities: JSON.stringify(agent.capabilities),
        connectivity: agent.connectivity,
        registered_at: agent.registeredAt,
        last_heartbeat_at: agent.lastHeartbeatAt,
        device: agent.device === null ? null : JSON.stringify(agent.device),
        ring: agent.ring,
        asset_id: agent.assetId,
        created_at: agent.createdAt,
      });
    });
  }

  getAgent(id: string): Promise<Agent | null> {
    return run(() => {
      const row = this.stmts.getAgent.get(id);
      return row ? toAgent(row) : null;
    });
  }

  listAgents(): Promise<Agent[]> {
    return run(() => this.stmts.listAgents.all().map(toAgent));
  }

  findAgentByAsset(assetId: string): Promise<Agent | null> {
    return run(() => {
      const row = this.stmts.agentByAsset.get(assetId);
      return row ? toAgent(row) : null;
    });
  }

  recordRegistration(id: string, device: DeviceInfo, at: number): Promise<void> {
    return run(() => {
      this.stmts.registration.run(JSON.stringify(device), at, at, id);
    });
  }

  recordHeartbeat(id: string, device: DeviceInfo, at: number): Promise<void> {
    return run(() => {
      this.stmts.heartbeat.run(JSON.stringify(device), at, id);
    });
  }

  setConnectivity(id: string, connectivity: Agent['connectivity']): Promise<void> {
    return run(() => {
      this.stmts.setConnectivity.run(connectivity, id);
    });
  }

  updateAgentDevice(id: string, device: DeviceInfo): Promise<void> {
    return run(() => {
      this.stmts.setDevice.run(JSON.stringify(device), id);
    });
  }

  moveRing(move: Omit<RingMove, 'id'>): Promise<RingMove> {
    return run(() =>
      this.db.transaction(() => {
        this.stmts.setRing.run(move.to, move.agentId);
        const info = this.stmts.insertMove.run(move.agentId, move.from, move.to, move.reason, move.at);
        return { ...move, id: Number(info.lastInsertRowid) };
      })(),
    );
  }

  listRingMoves(agentId?: string): Promise<RingMove[]> {
    return run(() => (agentId === undefined ? this.stmts.movesAll.all() : this.stmts.movesOf.all(agentId)).map(toMove));
  }

  insertTask(task: Omit<Task, 'seq'>): Promise<Task> {
    return run(() => {
      const info = this.stmts.insertTask.run({
        id: task.id,
        type: task.type,
        parameters: JSON.stringify(task.parameters),
        priority: task.priority,
        status: task.status,
        assigned_to: task.assignedTo,
        attempts: task.attempts,
        max_attempts: task.maxAttempts,
        created_at: task.createdAt,
        started_at: task.startedAt,
        completed_at: task.completedAt,
        result: task.result === null || task.result === undefined ? null : JSON.stringify(task.result),
        error: task.error,
      });
      return { ...task, seq: Number(info.lastInsertRowid) };
    });
  }

  getTask(id: string): Promise<Task | null> {
    return run(() => {
      const row = this.stmts.getTask.get(id);
      return row ? toTask(row) : null;
    });
  }

  getAttempts(taskId: string): Promise<TaskAttempt[]> {
    return run(() =>
      this.stmts.attempts.all(taskId).map((r) => ({
        taskId: r.task_id,
        attempt: r.attempt,
        agentId: r.agent_id,
        startedAt: r.started_at,
        endedAt: r.ended_at,
        outcome: r.outcome as TaskAttempt['outcome'],
        error: r.error,
      })),
    );
  }

  listPending(limit: number, after?: { priority: number; seq: number }): Promise<Task[]> {
    return run(() =>
      (after === undefined
        ? this.stmts.pendingFirst.all(limit)
        : this.stmts.pendingAfter.all(after.priority, after.priority, after.seq, limit)
      ).map(toTask),
    );
  }

  listInProgress(): Promise<Task[]> {
    return run(() => this.stmts.inProgress.all().map(toTask));
  }

  countTasksByStatus(): Promise<Record<TaskStatus, number>> {
    return run(() => {
      const counts: Record<TaskStatus, number> = { pending: 0, in_progress: 0, completed: 0, failed: 0, cancelled: 0 };
      for (const r of this.stmts.countByStatus.all()) counts[r.status as TaskStatus] = r.n;
      return counts;
    });
  }

  countAttemptsByAgent(): Promise<Map<string, { succeeded: number; failed: number }>> {
    return run(
      () =>
        new Map(
          this.stmts.attemptsByAgent.all().map((r) => [r.agent_id, { succeeded: r.succeeded, failed: r.failed }] as const),
        ),
    );
  }

  startAttempt(taskId: string, agentId: string, at: number): Promise<Task | null> {
    return run(() =>
      this.db.transaction(() => {
        if (this.stmts.start.run(agentId, at, taskId).changes === 0) return null;
        const row = this.stmts.getTask.get(taskId) as TaskRow;
        this.stmts.insertAttempt.run(taskId, row.attempts, agentId, at);
        return toTask(row);
      })(),
    );
  }

  completeAttempt(taskId: string, attempt: number, agentId: string, result: unknown, at: number): Promise<Task | null> {
    return run(() =>
      this.db.transaction(() => {
        const json = result === undefined ? null : JSON.stringify(result);
        if (this.stmts.complete.run(json, at, taskId, attempt, agentId).changes === 0) return null;
        this.stmts.endAttempt.run(at, 'succeeded', null, taskId, attempt);
        return toTask(this.stmts.getTask.get(taskId) as TaskRow);
      })(),
    );
  }

  failAttempt(
    taskId: string,
    attempt: number,
    agentId: string,
    outcome: AttemptEndOutcome,
    error: string,
    retry: boolean,
    at: number,
  ): Promise<Task | null> {
    return run(() =>
      this.db.transaction(() => {
        const changes = retry
          ? this.stmts.requeue.run(error, taskId, attempt, agentId).changes
          : this.stmts.fail.run(error, at, taskId, attempt, agentId).changes;
        if (changes === 0) return null;
        this.stmts.endAttempt.run(at, outcome, error, taskId, attempt);
        return toTask(this.stmts.getTask.get(taskId) as TaskRow);
      })(),
    );
  }

  insertDeployment(d: Deployment): Promise<void> {
    return run(() => {
      this.stmts.insertDeployment.run(
        d.id,
        d.status,
        d.startedAt,
        d.completedAt,
        JSON.stringify(d.affectedAgents),
        JSON.stringify(d.recoveredAgents),
      );
    });
  }

  getDeployment(id: string): Promise<Deployment | null> {
    return run(() => {
      const row = this.stmts.getDeployment.get(id);
      return row ? toDeployment(row) : null;
    });
  }

  completeDeployment(id: string, recoveredAgents: string[], at: number): Promise<Deployment | null> {
    return run(() =>
      this.db.transaction(() => {
        if (this.stmts.completeDeployment.run(at, JSON.stringify(recoveredAgents), id).changes === 0) return null;
        return toDeployment(this.stmts.getDeployment.get(id) as DeploymentRow);
      })(),
    );
  }
}
