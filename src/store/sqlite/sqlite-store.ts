import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type {
  Agent,
  Asset,
  BackoffPolicy,
  Deployment,
  DeviceInfo,
  RingMove,
  RingOrUnassigned,
  Task,
  TaskStatus,
  TaskTarget,
  TaskType,
} from '../../domain/types.js';
import { TASK_STATUSES } from '../../domain/types.js';
import type { Store, TaskAttempt, TaskFilter } from '../store.js';
import { MIGRATIONS } from './migrations.js';
import { WriteQueue } from './write-queue.js';

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
  target: string | null;
  attempts_base: number;
  backoff: string;
  timeout_ms: number;
  idempotency_key: string | null;
  run_after: number | null;
  deadline: number | null;
  lease_expires_at: number | null;
}

interface AttemptRow {
  task_id: string;
  task_seq: number;
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
    target: r.target === null ? null : (JSON.parse(r.target) as TaskTarget),
    attemptsBase: r.attempts_base,
    backoff: JSON.parse(r.backoff) as BackoffPolicy,
    timeoutMs: r.timeout_ms,
    idempotencyKey: r.idempotency_key,
    runAfter: r.run_after,
    deadline: r.deadline,
    leaseExpiresAt: r.lease_expires_at,
  };
}

function taskParams(t: Task) {
  return {
    seq: t.seq,
    id: t.id,
    type: t.type,
    parameters: JSON.stringify(t.parameters),
    priority: t.priority,
    status: t.status,
    assigned_to: t.assignedTo,
    attempts: t.attempts,
    max_attempts: t.maxAttempts,
    created_at: t.createdAt,
    started_at: t.startedAt,
    completed_at: t.completedAt,
    result: t.result === null || t.result === undefined ? null : JSON.stringify(t.result),
    error: t.error,
    target: t.target === null ? null : JSON.stringify(t.target),
    attempts_base: t.attemptsBase,
    backoff: JSON.stringify(t.backoff),
    timeout_ms: t.timeoutMs,
    idempotency_key: t.idempotencyKey,
    run_after: t.runAfter,
    deadline: t.deadline,
    lease_expires_at: t.leaseExpiresAt,
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
  /** How many event-loop turns a write may wait to share a commit with others. @default 1 */
  commitTurns?: number;
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
  /** Every write goes through here, in order, grouped into commits. */
  readonly writes: WriteQueue;
  private readonly listCache = new Map<string, Database.Statement<unknown[], TaskRow>>();

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    this.writes = new WriteQueue(this.db, options.commitTurns ?? 1);
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
        `INSERT INTO tasks (seq, id, type, parameters, priority, status, assigned_to, attempts, max_attempts, created_at, started_at,
           completed_at, result, error, target, attempts_base, backoff, timeout_ms, idempotency_key, run_after, deadline, lease_expires_at)
         VALUES (@seq, @id, @type, @parameters, @priority, @status, @assigned_to, @attempts, @max_attempts, @created_at, @started_at,
           @completed_at, @result, @error, @target, @attempts_base, @backoff, @timeout_ms, @idempotency_key, @run_after, @deadline, @lease_expires_at)`,
      ),
      saveTask: db.prepare(
        `UPDATE tasks SET status = @status, assigned_to = @assigned_to, attempts = @attempts, max_attempts = @max_attempts,
           started_at = @started_at, completed_at = @completed_at, result = @result, error = @error, attempts_base = @attempts_base,
           run_after = @run_after, lease_expires_at = @lease_expires_at, priority = @priority
         WHERE seq = @seq`,
      ),
      renewLeases: db.prepare("UPDATE tasks SET lease_expires_at = ? WHERE assigned_to = ? AND status = 'in_progress'"),
      getTask: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE id = ?'),
      byIdempotencyKey: db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE idempotency_key = ?'),
      attempts: db.prepare<[string], AttemptRow>(
        'SELECT t.id AS task_id, a.* FROM task_attempts a JOIN tasks t ON t.seq = a.task_seq WHERE t.id = ? ORDER BY a.attempt',
      ),
      saveAttempt: db.prepare(
        `INSERT INTO task_attempts (task_seq, attempt, agent_id, started_at, ended_at, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(task_seq, attempt) DO UPDATE SET ended_at = excluded.ended_at, outcome = excluded.outcome, error = excluded.error`,
      ),
      live: db.prepare<[], TaskRow>("SELECT * FROM tasks WHERE status IN ('pending', 'in_progress') ORDER BY seq"),
      maxSeq: db.prepare<[], { m: number | null }>('SELECT MAX(seq) AS m FROM tasks'),
      countByStatus: db.prepare<[], { status: string; n: number }>('SELECT status, COUNT(*) AS n FROM tasks GROUP BY status'),
      attemptsByAgent: db.prepare<[], { agent_id: string; succeeded: number; failed: number }>(
        `SELECT agent_id, SUM(outcome = 'succeeded') AS succeeded, SUM(outcome IS NOT NULL AND outcome <> 'succeeded') AS failed
         FROM task_attempts GROUP BY agent_id`,
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
      if (!this.db.open) return;
      this.writes.flush();
      this.db.close();
    });
  }

  getMeta(key: string): Promise<string | null> {
    return run(() => this.stmts.getMeta.get(key)?.value ?? null);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.writes.enqueue(() => {
      this.stmts.setMeta.run(key, value);
    });
  }

  upsertAsset(asset: Asset, now: number): Promise<{ created: boolean }> {
    return this.writes.enqueue(() => {
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
    return this.writes.enqueue(() => {
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
    return this.writes.enqueue(() => {
      this.stmts.registration.run(JSON.stringify(device), at, at, id);
    });
  }

  recordHeartbeat(id: string, device: DeviceInfo, at: number): Promise<void> {
    return this.writes.enqueue(() => {
      this.stmts.heartbeat.run(JSON.stringify(device), at, id);
    });
  }

  setConnectivity(id: string, connectivity: Agent['connectivity']): Promise<void> {
    return this.writes.enqueue(() => {
      this.stmts.setConnectivity.run(connectivity, id);
    });
  }

  updateAgentDevice(id: string, device: DeviceInfo): Promise<void> {
    return this.writes.enqueue(() => {
      this.stmts.setDevice.run(JSON.stringify(device), id);
    });
  }

  moveRing(move: Omit<RingMove, 'id'>): Promise<RingMove> {
    return this.writes.enqueue(() => {
      this.stmts.setRing.run(move.to, move.agentId);
      const info = this.stmts.insertMove.run(move.agentId, move.from, move.to, move.reason, move.at);
      return { ...move, id: Number(info.lastInsertRowid) };
    });
  }

  listRingMoves(agentId?: string): Promise<RingMove[]> {
    return run(() => (agentId === undefined ? this.stmts.movesAll.all() : this.stmts.movesOf.all(agentId)).map(toMove));
  }

  insertTasks(tasks: readonly Task[]): Promise<void> {
    const rows = tasks.map(taskParams);
    return this.writes.enqueue(() => {
      for (const row of rows) this.stmts.insertTask.run(row);
    });
  }

  saveTask(task: Task): Promise<void> {
    const row = taskParams(task);
    return this.writes.enqueue(() => {
      this.stmts.saveTask.run(row);
    });
  }

  saveAttempt(a: TaskAttempt): Promise<void> {
    return this.writes.enqueue(() => {
      this.stmts.saveAttempt.run(a.taskSeq, a.attempt, a.agentId, a.startedAt, a.endedAt, a.outcome, a.error);
    });
  }

  renewLeases(agentId: string, until: number): Promise<void> {
    return this.writes.enqueue(() => {
      this.stmts.renewLeases.run(until, agentId);
    });
  }

  getTask(id: string): Promise<Task | null> {
    return run(() => {
      const row = this.stmts.getTask.get(id);
      return row ? toTask(row) : null;
    });
  }

  findTaskByIdempotencyKey(key: string): Promise<Task | null> {
    return run(() => {
      const row = this.stmts.byIdempotencyKey.get(key);
      return row ? toTask(row) : null;
    });
  }

  getAttempts(taskId: string): Promise<TaskAttempt[]> {
    return run(() =>
      this.stmts.attempts.all(taskId).map((r) => ({
        taskId: r.task_id,
        taskSeq: r.task_seq,
        attempt: r.attempt,
        agentId: r.agent_id,
        startedAt: r.started_at,
        endedAt: r.ended_at,
        outcome: r.outcome as TaskAttempt['outcome'],
        error: r.error,
      })),
    );
  }

  loadLiveTasks(): Promise<Task[]> {
    return run(() => this.stmts.live.all().map(toTask));
  }

  maxTaskSeq(): Promise<number> {
    return run(() => this.stmts.maxSeq.get()?.m ?? 0);
  }

  listTasks(filter: TaskFilter, limit: number, before?: number): Promise<Task[]> {
    return run(() => {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (filter.status !== undefined) {
        where.push('status = ?');
        args.push(filter.status);
      }
      if (filter.type !== undefined) {
        where.push('type = ?');
        args.push(filter.type);
      }
      if (filter.agentId !== undefined) {
        where.push('assigned_to = ?');
        args.push(filter.agentId);
      }
      if (before !== undefined) {
        where.push('seq < ?');
        args.push(before);
      }
      const sql = `SELECT * FROM tasks ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
      let stmt = this.listCache.get(sql);
      if (!stmt) {
        stmt = this.db.prepare<unknown[], TaskRow>(sql);
        this.listCache.set(sql, stmt);
      }
      return stmt.all(...args, limit).map(toTask);
    });
  }

  countTasksByStatus(): Promise<Record<TaskStatus, number>> {
    return run(() => {
      const counts = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
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

  insertDeployment(d: Deployment): Promise<void> {
    return this.writes.enqueue(() => {
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
    return this.writes.enqueue(() => {
      if (this.stmts.completeDeployment.run(at, JSON.stringify(recoveredAgents), id).changes === 0) return null;
      return toDeployment(this.stmts.getDeployment.get(id) as DeploymentRow);
    });
  }
}
