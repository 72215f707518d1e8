import type { HealthScoreConfig } from '../domain/health-score.js';
import { mergeHealthScoreConfig } from '../domain/health-score.js';
import type { Rate } from '../security/rate-limit.js';
/**
 * Every setting in one table: its environment variable, its CLI flag, how to
 * parse it and its default. `loadConfig` compiles environment and flags (flags
 * win) into one frozen object with units applied (durations in milliseconds),
 * or throws a ConfigError naming the setting and the reason.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** A PostgreSQL URL, or '' for SQLite in dataDir. */
  readonly databaseUrl: string;
  /** On PostgreSQL: how long the leader's lease lasts without renewal. */
  readonly leaderLeaseMs: number;
  /** On PostgreSQL: the URL other replicas reach this one at, or '' for http(s)://HOST:PORT. */
  readonly advertiseUrl: string;
  readonly heartbeatIntervalMs: number;
  readonly agentTimeoutMs: number;
  readonly taskTimeoutMs: number;
  readonly taskRetryLimit: number;
  readonly defaultAgents: number;
  readonly logLevel: LogLevel;
  readonly rebalanceIntervalMs: number;
  readonly agentConcurrency: number;
  /** Infinity when aging is off. */
  readonly taskAgingMs: number;
  /** Weights and thresholds of the device health score (defaults merged with HEALTH_SCORE). */
  readonly healthScore: HealthScoreConfig;
  /** The token network agents enroll with; '' to generate one on the first start and keep it; 'off' for none. */
  readonly enrollToken: string;
  /** Every newly enrolled agent waits for an admin's approval. */
  readonly enrollApproval: boolean;
  /** An admin API token from the environment (at least 32 characters; never stored); '' for none. */
  readonly adminToken: string;
  /** Enrollments per client address; null: unlimited. */
  readonly enrollRateLimit: Rate | null;
  /** Failed authentications per client address before 429; null: unlimited. */
  readonly authFailureLimit: Rate | null;
  /** PEM files of the certificate chain and private key; both '' for plain HTTP. */
  readonly tlsCert: string;
  readonly tlsKey: string;
  /** How long a client may take to send a request's headers, and then its body; 408 after that. */
  readonly requestTimeoutMs: number;
  /** Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly http2MaxStreams: number;
  /** Who writes advice on request: the analyser alone (`none`), Amazon Bedrock, or an OpenAI-compatible server. */
  readonly advisorProvider: 'none' | 'bedrock' | 'openai';
  /** The model id ('' for the provider's default: Bedrock's us.amazon.nova-pro-v1:0). */
  readonly advisorModel: string;
  /** The OpenAI-compatible server's base URL (e.g. http://127.0.0.1:11434/v1 for Ollama); and its API key, if it wants one. */
  readonly advisorBaseUrl: string;
  readonly advisorApiKey: string;
  readonly advisorTimeoutMs: number;
  /** `halt`: the advisor halts an in-progress deployment its analyser fails (never more); `off`: it only advises. */
  readonly advisorAuto: 'off' | 'halt';
  /** How often the advisor looks at deployments in progress (with ADVISOR_AUTO=halt). */
  readonly advisorWatchMs: number;
  /** The most tokens a model may answer with, and the most turns (model calls) one piece of advice may take. */
  readonly advisorMaxTokens: number;
  /** A device's metrics are kept in its history once per this interval at most, for this long. */
  readonly metricsHistoryIntervalMs: number;
  readonly metricsHistoryRetentionMs: number;
  /** The event stream: a comment this often on every stream, and how many events are kept for resuming. */
  readonly eventStreamPingMs: number;
  readonly eventStreamBuffer: number;
  /** An offline device silent (no sample) for longer than this counts as missing (dashboard, metrics). */
  readonly missingAfterMs: number;
  readonly advisorMaxTurns: number;
}

export class ConfigError extends Error {
  readonly setting: string;
  constructor(setting: string, reason: string) {
    super(`${setting}: ${reason}`);
    this.name = 'ConfigError';
    this.setting = setting;
  }
}

type Parser<T> = (raw: string) => T | { error: string };

interface Setting<K extends keyof Config> {
  key: K;
  env: string;
  flag: string;
  description: string;
  default: string;
  parse: Parser<Config[K]>;
  /** An empty environment variable is given to `parse` (and so refused by it) instead of meaning the default. */
  emptyEnvIsValue?: boolean;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;

/** A duration: a plain number is seconds; `ms`, `s`, `m` and `h` suffixes are accepted. */
function duration(minMs: number, maxMs: number): Parser<number> {
  return (raw) => {
    const m = DURATION.exec(raw.trim());
    if (!m) return { error: `must be a duration such as 5, 5s, 500ms, 2m or 24h (got "${raw}")` };
    const n = Number(m[1]);
    const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : m[2] === 'h' ? n * 3_600_000 : n * 1000;
    if (ms < minMs || ms > maxMs) return { error: `must be between ${minMs} ms and ${maxMs} ms (got "${raw}")` };
    return Math.round(ms);
  };
}

function integer(min: number, max: number): Parser<number> {
  return (raw) => {
    const t = raw.trim();
    if (!/^-?\d+$/.test(t)) return { error: `must be an integer from ${min} to ${max} (got "${raw}")` };
    const n = Number(t);
    if (n < min || n > max) return { error: `must be an integer from ${min} to ${max} (got "${raw}")` };
    return n;
  };
}

/** A duration, or `off` for none (Infinity). */
function durationOrOff(minMs: number, maxMs: number): Parser<number> {
  const d = duration(minMs, maxMs);
  return (raw) => (raw.trim() === 'off' ? Infinity : d(raw));
}

/** JSON `{ "weights": {...}, "thresholds": {...} }` over the default health score configuration. */
const healthScoreJson: Parser<HealthScoreConfig> = (raw) => {
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    return { error: `must be JSON such as {"weights":{"cpu":30},"thresholds":{"cpu":{"good":20,"bad":90}}} (got "${raw}")` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { error: 'must be a JSON object with "weights" and/or "thresholds"' };
  const unknown = Object.keys(doc).filter((k) => k !== 'weights' && k !== 'thresholds');
  if (unknown.length > 0) return { error: `unknown key ${unknown.map((k) => `"${k}"`).join(', ')}; expected "weights" and/or "thresholds"` };
  const d = doc as { weights?: unknown; thresholds?: unknown };
  for (const k of ['weights', 'thresholds'] as const) {
    if (d[k] !== undefined && (typeof d[k] !== 'object' || d[k] === null || Array.isArray(d[k]))) return { error: `"${k}" must be an object` };
  }
  const { config, errors } = mergeHealthScoreConfig(d as { weights?: Record<string, unknown>; thresholds?: Record<string, unknown> });
  return errors.length > 0 ? { error: errors.join('; ') } : config;
};

/** `N/duration` (N events per duration, e.g. 20/1m), or `off`. */
function rate(raw: string): Rate | null | { error: string } {
  const t = raw.trim();
  if (t === 'off') return null;
  const m = /^(\d{1,7})\/(.+)$/.exec(t);
  const per = m ? duration(1000, 86_400_000)(m[2] as string) : null;
  if (!m || per === null || typeof per !== 'number' || Number(m[1]) < 1) return { error: `must be N/duration such as 20/1m or 10/1s, or off (got "${raw}")` };
  return { count: Number(m[1]), perMs: per };
}

const boolean: Parser<boolean> = (raw) => (/^(true|1|yes|on)$/i.test(raw.trim()) ? true : /^(false|0|no|off)$/i.test(raw.trim()) ? false : { error: `must be true or false (got "${raw}")` });
const anyString: Parser<string> = (raw) => raw.trim();

function oneOf<const T extends readonly string[]>(values: T): Parser<T[number]> {
  return (raw) => ((values as readonly string[]).includes(raw.trim()) ? (raw.trim()) : { error: `must be one of ${values.join(', ')} (got "${raw}")` });
}

/** An http(s) URL, or nothing. */
const httpUrlOrEmpty: Parser<string> = (raw) => {
  const t = raw.trim();
  if (t === '') return '';
  try {
    const u = new URL(t);
    if (u.protocol === 'http:' || u.protocol === 'https:') return t.replace(/\/+$/, '');
  } catch {
    // not a URL: said below
  }
  return { error: `must be an http:// or https:// URL such as http://127.0.0.1:11434/v1 (got "${raw}")` };
};

/** A postgres:// URL, or nothing. */
const postgresUrlOrEmpty: Parser<string> = (raw) => {
  const t = raw.trim();
  if (t === '') return '';
  try {
    const u = new URL(t);
    if ((u.protocol === 'postgres:' || u.protocol === 'postgresql:') && u.hostname !== '') return t;
  } catch {
    // not a URL: said below
  }
  return { error: 'must be a PostgreSQL URL such as postgres://orchestrator:secret@db.example:5432/orchestrator' };
};

const nonEmpty: Parser<string> = (raw) => (raw.trim().length > 0 ? raw.trim() : { error: 'must not be empty' });
const dataDir: Parser<string> = (raw) =>
  raw.trim().length > 0 ? raw.trim() : { error: 'must not be empty: it is the folder of the database (DATA_DIR); leave it unset for the default ./data' };

export const SETTINGS = [
  { key: 'host', env: 'HOST', flag: '--host', description: 'address to listen on; 0.0.0.0 exposes the API', default: '127.0.0.1', parse: nonEmpty },
  { key: 'port', env: 'PORT', flag: '--port', description: 'HTTP port (0 picks a free one)', default: '8000', parse: integer(0, 65535) },
  // `DATA_DIR=` is a mistake (a variable meant to be set, left empty), not a wish for ./data: refused rather than silently defaulted.
  { key: 'dataDir', env: 'DATA_DIR', flag: '--data-dir', description: 'folder of the SQLite database', default: './data', parse: dataDir, emptyEnvIsValue: true },
  { key: 'databaseUrl', env: 'DATABASE_URL', flag: '--database-url', description: 'a PostgreSQL URL (postgres://user:password@host:5432/db) to keep the state in, for replicas; unset: SQLite in DATA_DIR', default: '', parse: postgresUrlOrEmpty },
  { key: 'leaderLeaseMs', env: 'LEADER_LEASE', flag: '--leader-lease', description: 'on PostgreSQL: how long the leader lease lasts without renewal (renewed every second, or every quarter of it if shorter); a follower takes over after it', default: '10s', parse: duration(400, 600_000) },
  { key: 'advertiseUrl', env: 'ADVERTISE_URL', flag: '--advertise-url', description: 'on PostgreSQL: the URL the other replicas reach this one at (default http(s)://HOST:PORT, with this machine\'s name for 0.0.0.0)', default: '', parse: httpUrlOrEmpty },
  { key: 'heartbeatIntervalMs', env: 'HEARTBEAT_INTERVAL', flag: '--heartbeat-interval', description: 'how often agents send heartbeats', default: '5s', parse: duration(50, 3_600_000) },
  { key: 'agentTimeoutMs', env: 'AGENT_TIMEOUT', flag: '--agent-timeout', description: 'silence after which an agent is offline', default: '20s', parse: duration(100, 86_400_000) },
  { key: 'taskTimeoutMs', env: 'TASK_TIMEOUT', flag: '--task-timeout', description: 'how long one attempt of a task may run', default: '60s', parse: duration(100, 86_400_000) },
  { key: 'taskRetryLimit', env: 'TASK_RETRY_LIMIT', flag: '--task-retry-limit', description: 'retries after a failed or timed-out attempt', default: '3', parse: integer(0, 100) },
  { key: 'defaultAgents', env: 'DEFAULT_AGENTS', flag: '--default-agents', description: 'simulated agents spawned on first start', default: '2', parse: integer(0, 10_000) },
  { key: 'logLevel', env: 'LOG_LEVEL', flag: '--log-level', description: LOG_LEVELS.join(', '), default: 'info', parse: (raw: string) => ((LOG_LEVELS as readonly string[]).includes(raw.trim()) ? (raw.trim()) : { error: `must be one of ${LOG_LEVELS.join(', ')} (got "${raw}")` }) },
  { key: 'rebalanceIntervalMs', env: 'REBALANCE_INTERVAL', flag: '--rebalance-interval', description: 'how often every ring is rebalanced in full (health changes also move devices at once)', default: '30s', parse: duration(100, 86_400_000) },
  { key: 'agentConcurrency', env: 'AGENT_CONCURRENCY', flag: '--agent-concurrency', description: 'tasks one agent runs at once', default: '1', parse: integer(1, 1000) },
  { key: 'healthScore', env: 'HEALTH_SCORE', flag: '--health-score', description: 'JSON weights and thresholds of the health score over the defaults, e.g. {"weights":{"cpu":30}}', default: '{}', parse: healthScoreJson },
  { key: 'enrollToken', env: 'ENROLL_TOKEN', flag: '--enroll-token', description: 'the token network agents enroll with (at least 16 characters); by default one is generated on the first start, kept, and printed', default: '', parse: (raw: string) => (raw === '' || raw === 'off' || /^[A-Za-z0-9._~-]{16,200}$/.test(raw) ? raw : { error: 'must be 16 to 200 characters of A-Z, a-z, 0-9, ".", "_", "~" or "-", or off' }) },
  { key: 'enrollApproval', env: 'ENROLL_APPROVAL', flag: '--enroll-approval', description: 'newly enrolled agents wait as pending until an admin approves them', default: 'false', parse: boolean },
  { key: 'adminToken', env: 'ADMIN_TOKEN', flag: '--admin-token', description: 'an admin API token given by the environment (at least 32 characters), e.g. for a first start on 0.0.0.0', default: '', parse: (raw: string) => (raw === '' || /^[\x21-\x7e]{32,400}$/.test(raw) ? raw : { error: 'must be 32 to 400 printable characters without spaces' }) },
  { key: 'enrollRateLimit', env: 'ENROLL_RATE_LIMIT', flag: '--enroll-rate-limit', description: 'enrollments per client address, N/duration or off', default: '300/1m', parse: rate },
  { key: 'authFailureLimit', env: 'AUTH_FAILURE_LIMIT', flag: '--auth-failure-limit', description: 'failed authentications per client address before 429, N/duration or off', default: '20/1m', parse: rate },
  { key: 'tlsCert', env: 'TLS_CERT', flag: '--tls-cert', description: 'PEM certificate chain; with TLS_KEY the API speaks HTTPS (HTTP/1.1 and HTTP/2)', default: '', parse: anyString },
  { key: 'tlsKey', env: 'TLS_KEY', flag: '--tls-key', description: 'PEM private key of TLS_CERT', default: '', parse: anyString },
  { key: 'taskAgingMs', env: 'TASK_AGING', flag: '--task-aging', description: 'waiting this long counts as one priority level; off disables aging', default: '60s', parse: durationOrOff(1000, 365 * 86_400_000) },
  { key: 'requestTimeoutMs', env: 'REQUEST_TIMEOUT', flag: '--request-timeout', description: "how long a client may take to send a request's headers, and then its body (408 after that)", default: '30s', parse: duration(1000, 3_600_000) },
  { key: 'http2MaxStreams', env: 'HTTP2_MAX_STREAMS', flag: '--http2-max-streams', description: 'requests one HTTP/2 connection may have open at once; a proxy carrying more opens more connections', default: '256', parse: integer(1, 100_000) },
  {
    key: 'advisorProvider', env: 'ADVISOR_PROVIDER', flag: '--advisor-provider',
    description: 'who writes advice on request: none (the built-in analyser alone), bedrock (Amazon Bedrock; region and credentials from the usual AWS settings) or openai (an OpenAI-compatible server at ADVISOR_BASE_URL)',
    default: 'none', parse: oneOf(['none', 'bedrock', 'openai'] as const),
  },
  { key: 'advisorModel', env: 'ADVISOR_MODEL', flag: '--advisor-model', description: 'the model id; default us.amazon.nova-pro-v1:0 on bedrock, required with openai', default: '', parse: anyString },
  { key: 'advisorBaseUrl', env: 'ADVISOR_BASE_URL', flag: '--advisor-base-url', description: 'the OpenAI-compatible server (Ollama, vLLM, LiteLLM), e.g. http://127.0.0.1:11434/v1', default: '', parse: httpUrlOrEmpty },
  { key: 'advisorApiKey', env: 'ADVISOR_API_KEY', flag: '--advisor-api-key', description: "the OpenAI-compatible server's API key, if it wants one", default: '', parse: anyString },
  { key: 'advisorTimeoutMs', env: 'ADVISOR_TIMEOUT', flag: '--advisor-timeout', description: "how long one piece of advice may wait for the model; then the analyser's advice stands", default: '60s', parse: duration(1000, 600_000) },
  { key: 'advisorAuto', env: 'ADVISOR_AUTO', flag: '--advisor-auto', description: 'halt: the advisor halts an in-progress deployment its analyser fails (and never does more); off: it only advises', default: 'off', parse: oneOf(['off', 'halt'] as const) },
  { key: 'advisorWatchMs', env: 'ADVISOR_WATCH', flag: '--advisor-watch', description: 'how often the advisor looks at deployments in progress, with ADVISOR_AUTO=halt', default: '60s', parse: duration(1000, 3_600_000) },
  { key: 'advisorMaxTokens', env: 'ADVISOR_MAX_TOKENS', flag: '--advisor-max-tokens', description: 'the most tokens a model may answer with, per call', default: '2000', parse: integer(100, 32_000) },
  { key: 'advisorMaxTurns', env: 'ADVISOR_MAX_TURNS', flag: '--advisor-max-turns', description: 'the most model calls (tool rounds included) one piece of advice may take', default: '6', parse: integer(1, 20) },
  { key: 'metricsHistoryIntervalMs', env: 'METRICS_HISTORY_INTERVAL', flag: '--metrics-history-interval', description: "how often a device's metrics are kept in its history (its chart on the dashboard)", default: '5m', parse: duration(1000, 86_400_000) },
  { key: 'metricsHistoryRetentionMs', env: 'METRICS_HISTORY_RETENTION', flag: '--metrics-history-retention', description: "how long a device's metrics history is kept", default: '168h', parse: duration(60_000, 3650 * 86_400_000) },
  { key: 'eventStreamPingMs', env: 'EVENT_STREAM_PING', flag: '--event-stream-ping', description: 'how often a comment is sent on every open event stream, so that proxies keep it open', default: '15s', parse: duration(100, 3_600_000) },
  { key: 'eventStreamBuffer', env: 'EVENT_STREAM_BUFFER', flag: '--event-stream-buffer', description: 'events kept for a client that resumes its event stream with Last-Event-ID', default: '10000', parse: integer(100, 1_000_000) },
  { key: 'missingAfterMs', env: 'MISSING_AFTER', flag: '--missing-after', description: 'an offline device silent for longer than this counts as missing (the dashboard and /metrics)', default: '24h', parse: duration(60_000, 365 * 86_400_000) },
] as const satisfies readonly Setting<keyof Config>[];

export type ConfigFlags = Partial<Record<keyof Config, string>>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env, flags: ConfigFlags = {}): Config {
  const out: Record<string, unknown> = {};
  const names: Partial<Record<keyof Config, string>> = {};
  for (const s of SETTINGS as readonly Setting<keyof Config>[]) {
    const fromFlag = flags[s.key];
    const fromEnv = env[s.env];
    const raw = fromFlag ?? (fromEnv !== undefined && (fromEnv !== '' || s.emptyEnvIsValue === true) ? fromEnv : s.default);
    const name = fromFlag !== undefined ? s.flag : s.env;
    names[s.key] = name;
    const parsed = s.parse(raw);
    if (typeof parsed === 'object' && parsed !== null && 'error' in parsed) throw new ConfigError(name, parsed.error);
    out[s.key] = parsed;
  }
  const config = out as unknown as Config;
  if (config.agentTimeoutMs <= config.heartbeatIntervalMs) {
    throw new ConfigError(
      names.agentTimeoutMs ?? 'AGENT_TIMEOUT',
      `must be longer than ${names.heartbeatIntervalMs ?? 'HEARTBEAT_INTERVAL'} (${config.agentTimeoutMs} ms <= ${config.heartbeatIntervalMs} ms), or every agent would flap offline`,
    );
  }
  if (config.advisorProvider === 'openai' && config.advisorBaseUrl === '') {
    throw new ConfigError(names.advisorBaseUrl ?? 'ADVISOR_BASE_URL', 'required with ADVISOR_PROVIDER=openai: the OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1 for Ollama');
  }
  if (config.advisorProvider === 'openai' && config.advisorModel === '') {
    throw new ConfigError(names.advisorModel ?? 'ADVISOR_MODEL', 'required with ADVISOR_PROVIDER=openai: the model the server serves, e.g. qwen2.5:7b');
  }
  if ((config.tlsCert === '') !== (config.tlsKey === '')) {
    throw new ConfigError(config.tlsCert === '' ? (names.tlsCert ?? 'TLS_CERT') : (names.tlsKey ?? 'TLS_KEY'), 'TLS_CERT and TLS_KEY go together: set both for HTTPS, or neither');
  }
  return Object.freeze(config);
}
