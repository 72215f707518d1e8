/**
 * Numbered, forward-only migrations. The applied version lives in
 * `PRAGMA user_version`; each migration runs in its own transaction.
 */
export const MIGRATIONS: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
      CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );

      CREATE TABLE assets (
        id TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );

      CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        capabilities TEXT NOT NULL,
        connectivity TEXT NOT NULL,
        registered_at INTEGER,
        last_heartbeat_at INTEGER,
        device TEXT,
        ring TEXT NOT NULL DEFAULT 'unassigned',
        asset_id TEXT,
        created_at INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX agents_live_asset ON agents(asset_id)
        WHERE asset_id IS NOT NULL AND connectivity <> 'decommissioned';

      CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        parameters TEXT NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL,
        assigned_to TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        completed_at INTEGER,
        result TEXT,
        error TEXT
      );
      CREATE INDEX tasks_pending ON tasks(priority DESC, seq ASC) WHERE status = 'pending';
      CREATE INDEX tasks_in_progress ON tasks(assigned_to) WHERE status = 'in_progress';
      CREATE INDEX tasks_status ON tasks(status);

      CREATE TABLE task_attempts (
        task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        outcome TEXT,
        error TEXT,
        PRIMARY KEY (task_id, attempt)
      );

      CREATE TABLE ring_moves (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id TEXT NOT NULL,
        from_ring TEXT NOT NULL,
        to_ring TEXT NOT NULL,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
      );
      CREATE INDEX ring_moves_agent ON ring_moves(agent_id, id);

      CREATE TABLE deployments (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        completed_at INTEGER,
        affected_agents TEXT NOT NULL,
        recovered_agents TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'task engine: targets, backoff, timeouts, idempotency, schedule, leases',
    sql: `
      ALTER TABLE tasks ADD COLUMN target TEXT;
      ALTER TABLE tasks ADD COLUMN attempts_base INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE tasks ADD COLUMN backoff TEXT NOT NULL DEFAULT '{"strategy":"exponential","initialMs":1000,"maxMs":60000,"jitter":true}';
      ALTER TABLE tasks ADD COLUMN timeout_ms INTEGER NOT NULL DEFAULT 60000;
      ALTER TABLE tasks ADD COLUMN idempotency_key TEXT;
      ALTER TABLE tasks ADD COLUMN run_after INTEGER;
      ALTER TABLE tasks ADD COLUMN deadline INTEGER;
      ALTER TABLE tasks ADD COLUMN lease_expires_at INTEGER;
      CREATE UNIQUE INDEX tasks_idempotency ON tasks(idempotency_key) WHERE idempotency_key IS NOT NULL;
      DROP INDEX tasks_pending;
      DROP INDEX tasks_status;
      DROP INDEX tasks_in_progress;
      CREATE INDEX tasks_status_seq ON tasks(status, seq);
      CREATE INDEX tasks_type_seq ON tasks(type, seq);
      CREATE INDEX tasks_agent_seq ON tasks(assigned_to, seq);
    `,
  },
  {
    version: 3,
    name: 'attempts keyed by task seq, so that new attempts append instead of scattering',
    sql: `
      CREATE TABLE task_attempts_new (
        task_seq INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        outcome TEXT,
        error TEXT,
        PRIMARY KEY (task_seq, attempt)
      ) WITHOUT ROWID;
      INSERT INTO task_attempts_new (task_seq, attempt, agent_id, started_at, ended_at, outcome, error)
        SELECT t.seq, a.attempt, a.agent_id, a.started_at, a.ended_at, a.outcome, a.error
        FROM task_attempts a JOIN tasks t ON t.id = a.task_id;
      DROP TABLE task_attempts;
      ALTER TABLE task_attempts_new RENAME TO task_attempts;
    `,
  },
  {
    version: 4,
    name: 'a task\'s successful attempt is read from the task row, not stored twice',
    sql: `DELETE FROM task_attempts WHERE outcome = 'succeeded';`,
  },
  {
    version: 5,
    name: 'index only the tasks in progress by agent: an index of every task by agent cost a page per agent per commit',
    sql: `
      DROP INDEX tasks_agent_seq;
      CREATE INDEX tasks_agent_running ON tasks(assigned_to) WHERE status = 'in_progress';
    `,
  },
  {
    version: 6,
    name: 'devices: every device of the fleet with its attributes, latest metrics, trends, ring and pin; agents are devices too',
    sql: `
      CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        site TEXT, department TEXT, manufacturer TEXT, model TEXT, os_name TEXT, tags TEXT,
        battery REAL, charging INTEGER, cpu REAL, memory REAL, disk REAL,
        drain REAL NOT NULL DEFAULT 0, cpu_trend REAL NOT NULL DEFAULT 0, impact REAL NOT NULL DEFAULT 0,
        sampled_at INTEGER,
        ring TEXT, moved_at INTEGER NOT NULL DEFAULT 0,
        pin_ring TEXT,
        connectivity TEXT NOT NULL DEFAULT 'offline',
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO devices (id, battery, charging, cpu, memory, disk, sampled_at, ring, moved_at, connectivity, created_at)
        SELECT a.id,
               json_extract(a.device, '$.battery_level'), json_extract(a.device, '$.battery_charging'),
               json_extract(a.device, '$.cpu_usage'), json_extract(a.device, '$.memory_usage'), json_extract(a.device, '$.disk_usage'),
               CASE WHEN a.registered_at IS NULL THEN NULL ELSE a.last_heartbeat_at END,
               CASE WHEN a.ring = 'unassigned' THEN NULL ELSE a.ring END, 0, a.connectivity, a.created_at
        FROM agents a;
      UPDATE devices SET
        site = (SELECT json_extract(s.data, '$.site') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id),
        department = (SELECT json_extract(s.data, '$.department') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id),
        manufacturer = (SELECT json_extract(s.data, '$.manufacturer') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id),
        model = (SELECT json_extract(s.data, '$.model') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id),
        os_name = (SELECT json_extract(s.data, '$.osName') FROM agents a JOIN assets s ON s.id = a.asset_id WHERE a.id = devices.id);
      CREATE INDEX ring_moves_at ON ring_moves(at, id);
      INSERT INTO meta (key, value) SELECT 'ring_snapshot_move_id', COALESCE(MAX(id), 0) FROM ring_moves;
    `,
  },
];
