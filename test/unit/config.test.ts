import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { DEFAULT_HEALTH_SCORE_CONFIG } from '../../src/domain/health-score.js';

describe('configuration', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({})).toEqual({
      host: '127.0.0.1',
      port: 8000,
      dataDir: './data',
      databaseUrl: '',
      leaderLeaseMs: 10_000,
      advertiseUrl: '',
      heartbeatIntervalMs: 5000,
      agentTimeoutMs: 20_000,
      taskTimeoutMs: 60_000,
      taskRetryLimit: 3,
      defaultAgents: 2,
      logLevel: 'info',
      rebalanceIntervalMs: 30_000,
      agentConcurrency: 1,
      taskAgingMs: 60_000,
      healthScore: DEFAULT_HEALTH_SCORE_CONFIG,
      enrollToken: '',
      enrollApproval: false,
      adminToken: '',
      enrollRateLimit: { count: 300, perMs: 60_000 },
      authFailureLimit: { count: 20, perMs: 60_000 },
      tlsCert: '',
      tlsKey: '',
      requestTimeoutMs: 30_000,
      http2MaxStreams: 256,
      advisorProvider: 'none',
      advisorModel: '',
      advisorBaseUrl: '',
      advisorApiKey: '',
      advisorTimeoutMs: 60_000,
      advisorAuto: 'off',
      advisorWatchMs: 60_000,
      advisorMaxTokens: 2000,
      advisorMaxTurns: 6,
      metricsHistoryIntervalMs: 300_000,
      metricsHistoryRetentionMs: 7 * 86_400_000,
      eventStreamPingMs: 15_000,
      eventStreamBuffer: 10_000,
      missingAfterMs: 86_400_000,
    });
    expect(loadConfig({ TASK_AGING: 'off' }).taskAgingMs).toBe(Infinity);
    expect(loadConfig({ MISSING_AFTER: '2h', METRICS_HISTORY_INTERVAL: '90s' })).toMatchObject({ missingAfterMs: 7_200_000, metricsHistoryIntervalMs: 90_000 });
    // An empty variable means the default for the other settings (e.g. ENROLL_TOKEN= generates one), not for DATA_DIR.
    expect(loadConfig({ PORT: '', ENROLL_TOKEN: '' })).toMatchObject({ port: 8000, enrollToken: '' });
    const tuned = loadConfig({ HEALTH_SCORE: '{"weights":{"cpu":30},"thresholds":{"disk":{"bad":90}}}' }).healthScore;
    expect(tuned.weights).toEqual({ ...DEFAULT_HEALTH_SCORE_CONFIG.weights, cpu: 30 });
    expect(tuned.thresholds.disk).toEqual({ good: 60, bad: 90 });
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });

  it("takes the advisor's provider, and says what a provider lacks", () => {
    expect(loadConfig({ ADVISOR_PROVIDER: 'bedrock', ADVISOR_AUTO: 'halt', ADVISOR_TIMEOUT: '30s' })).toMatchObject({ advisorProvider: 'bedrock', advisorModel: '', advisorAuto: 'halt', advisorTimeoutMs: 30_000 });
    expect(loadConfig({ ADVISOR_PROVIDER: 'openai', ADVISOR_BASE_URL: 'http://127.0.0.1:11434/v1/', ADVISOR_MODEL: 'qwen2.5:7b' })).toMatchObject({ advisorBaseUrl: 'http://127.0.0.1:11434/v1', advisorModel: 'qwen2.5:7b' });
    expect(() => loadConfig({ ADVISOR_PROVIDER: 'gpt' })).toThrow('ADVISOR_PROVIDER: must be one of none, bedrock, openai (got "gpt")');
    expect(() => loadConfig({ ADVISOR_PROVIDER: 'openai', ADVISOR_MODEL: 'm' })).toThrow('ADVISOR_BASE_URL: required with ADVISOR_PROVIDER=openai');
    expect(() => loadConfig({ ADVISOR_PROVIDER: 'openai', ADVISOR_BASE_URL: 'http://x:1/v1' })).toThrow('ADVISOR_MODEL: required with ADVISOR_PROVIDER=openai');
    expect(() => loadConfig({ ADVISOR_BASE_URL: 'ftp://x' })).toThrow('ADVISOR_BASE_URL: must be an http:// or https:// URL');
    expect(() => loadConfig({ ADVISOR_AUTO: 'rollback' })).toThrow('ADVISOR_AUTO: must be one of off, halt (got "rollback")');
  });

  it('reads the environment, with units, and flags win over it', () => {
    const c = loadConfig(
      { PORT: '9000', HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '2', TASK_TIMEOUT: '1m', HOST: '0.0.0.0' },
      { port: '9100' },
    );
    expect(c).toMatchObject({ port: 9100, heartbeatIntervalMs: 500, agentTimeoutMs: 2000, taskTimeoutMs: 60_000, host: '0.0.0.0' });
    expect(loadConfig({ DATABASE_URL: ' postgresql://o:s@db.example:5432/orch ' }).databaseUrl).toBe('postgresql://o:s@db.example:5432/orch');
    expect(loadConfig({ DATABASE_URL: 'postgres://a@b/c' }, { databaseUrl: 'postgres://d@e/f' }).databaseUrl).toBe('postgres://d@e/f');
  });

  it.each([
    [{ PORT: 'abc' }, {}, /^PORT: must be an integer from 0 to 65535/],
    [{ PORT: '70000' }, {}, /^PORT:/],
    [{}, { port: '-1' }, /^--port:/],
    [{ HEARTBEAT_INTERVAL: 'soon' }, {}, /^HEARTBEAT_INTERVAL: must be a duration/],
    [{ TASK_RETRY_LIMIT: '1.5' }, {}, /^TASK_RETRY_LIMIT:/],
    [{ LOG_LEVEL: 'loud' }, {}, /^LOG_LEVEL: must be one of fatal, error/],
    [{ DEFAULT_AGENTS: '-2' }, {}, /^DEFAULT_AGENTS:/],
    [{ HOST: '   ' }, {}, /^HOST: must not be empty/],
    [{ DATA_DIR: '' }, {}, /^DATA_DIR: must not be empty/],
    [{ DATA_DIR: '  ' }, {}, /^DATA_DIR: must not be empty/],
    [{ DATA_DIR: '/srv/orchestrator' }, { dataDir: '' }, /^--data-dir: must not be empty: it is the folder of the database \(DATA_DIR\)/],
    [{ DATABASE_URL: 'mysql://root:hunter2@db/x' }, {}, /^DATABASE_URL: must be a PostgreSQL URL such as postgres:\/\/orchestrator:secret@db\.example:5432\/orchestrator$/],
    [{ DATABASE_URL: 'postgres://' }, {}, /^DATABASE_URL: must be a PostgreSQL URL/],
    [{ HEALTH_SCORE: '{cpu:1}' }, {}, /^HEALTH_SCORE: must be JSON/],
    [{ HEALTH_SCORE: '{"weights":{"wifi":3}}' }, {}, /^HEALTH_SCORE: weights.wifi: unknown factor/],
    [{ HEALTH_SCORE: '{"weight":{}}' }, {}, /^HEALTH_SCORE: unknown key "weight"/],
    [{}, { healthScore: '{"thresholds":{"cpu":{"good":50,"bad":50}}}' }, /^--health-score: thresholds.cpu: good and bad must differ/],
    [{ AGENT_TIMEOUT: '5s', HEARTBEAT_INTERVAL: '5s' }, {}, /^AGENT_TIMEOUT: must be longer than HEARTBEAT_INTERVAL/],
    [{}, { agentTimeoutMs: '1s' }, /^--agent-timeout: must be longer than HEARTBEAT_INTERVAL/],
  ])('%o %o is refused naming the setting', (env, flags, message) => {
    expect(() => loadConfig(env, flags)).toThrow(ConfigError);
    expect(() => loadConfig(env, flags)).toThrow(message);
  });
});
