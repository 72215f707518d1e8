import { mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';
import { buildApp } from './api/app.js';
import type { Config } from './config/config.js';
import { ConfigError } from './config/config.js';
import { Guard, isLoopback } from './security/guard.js';
import { Advisor } from './advisor/advisor.js';
import type { ModelAdvisor } from './advisor/model-advisor.js';
import { Orchestrator } from './core/orchestrator.js';
import type { Rng } from './domain/random.js';
import { systemRng } from './domain/random.js';
import type { Asset } from './domain/types.js';
import { SimulatedFleet } from './sim/simulated-fleet.js';
import { explainSqliteError } from './store/sqlite/open.js';
import { openStore, sqliteFile, storeTarget } from './store/open-store.js';
import { redactUrl } from './util/redact-url.js';
import type { Store } from './store/store.js';
import type { Clock } from './util/clock.js';
import { systemClock } from './util/clock.js';
import type { DirLock } from './util/dir-lock.js';
import { describeFsError, DirLockedError, lockDir } from './util/dir-lock.js';

/** The asset the seed's start-up added "from the UI", which spawned its third agent. */
export const SEED_STARTUP_ASSET: Asset = { id: '5449...048', name: 'mmr-10180', site: 'HQ', department: 'IT' };

export interface ServerDeps {
  clock?: Clock;
  rng?: Rng;
  /** Where the start-up story goes, line by line. @default stdout */
  print?: (line: string) => void;
  logger?: PinoLogger;
  /** The built dashboard. @default dist/web under the package */
  dashboardDir?: string;
}

export interface RunningServer {
  url: string;
  port: number;
  app: FastifyInstance;
  orchestrator: Orchestrator;
  fleet: SimulatedFleet;
  store: Store;
  close(): Promise<void>;
}

function readTls(config: Config): { cert: Buffer; key: Buffer } {
  const read = (setting: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(setting, `cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  return { cert: read('TLS_CERT', config.tlsCert), key: read('TLS_KEY', config.tlsKey) };
}

export function databasePath(config: Config): string {
  return sqliteFile(config.dataDir);
}

/** Where the state is, for messages: the SQLite file, or the PostgreSQL URL without its password. */
export function storeDescription(config: Config): string {
  return config.databaseUrl === '' ? databasePath(config) : redactUrl(config.databaseUrl);
}

/** The lock file in DATA_DIR that keeps a second orchestrator off the same database (see docs/operations.md). */
const DATA_DIR_LOCK = 'orchestrator.lock';

/** DATA_DIR as a folder, created if missing; returns whether it was created here. */
function prepareDataDir(dir: string): boolean {
  try {
    if (statSync(dir).isDirectory()) return false;
    throw new ConfigError('DATA_DIR', `${dir} is a file, not a folder: point DATA_DIR at a folder (it is created if missing)`);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new ConfigError('DATA_DIR', `${dir}: a part of this path is a file, not a folder: point DATA_DIR at a folder`);
    if (code !== 'ENOENT') throw new ConfigError('DATA_DIR', `cannot reach ${dir} (${describeFsError(err)}): give the user running the orchestrator access to it, or choose another DATA_DIR`);
  }
  try {
    mkdirSync(dir, { recursive: true });
    return true;
  } catch (err) {
    throw new ConfigError('DATA_DIR', `cannot create ${dir} (${describeFsError(err)}): create it, writable by the user running the orchestrator, or choose another DATA_DIR`);
  }
}

/** One orchestrator per DATA_DIR: two would both drive the same agents from the same database. */
function lockDataDir(dir: string): DirLock {
  try {
    return lockDir(dir, DATA_DIR_LOCK, 'orchestrator serve');
  } catch (err) {
    if (err instanceof DirLockedError) {
      const { pid, since, host } = err.holder;
      throw new ConfigError(
        'DATA_DIR',
        err.checked
          ? `${dir} is in use by another orchestrator (pid ${pid}, since ${since}): stop it first, or give this one another DATA_DIR`
          : `${dir} is in use by an orchestrator on ${host} (pid ${pid}, since ${since}), which this machine cannot check: stop it, or if it no longer runs delete ${err.file}`,
      );
    }
    throw new ConfigError('DATA_DIR', `cannot write in ${dir} (${describeFsError(err)}): give the user running the orchestrator write access to it, or choose another DATA_DIR`);
  }
}

/** What a failure to listen on HOST:PORT means for the operator, or null when it is not about the settings. */
function explainListenError(err: unknown, host: string, port: number): ConfigError | null {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return new ConfigError('PORT', `${port} on ${host} is already in use (by another orchestrator or another program): stop it, or choose another PORT (0 picks a free one)`);
    case 'EACCES':
      return new ConfigError('PORT', `${port} on ${host} needs privileges this user does not have: choose a PORT from 1024 up, or put a proxy in front`);
    case 'EADDRNOTAVAIL':
      return new ConfigError('HOST', `${host} is not an address of this machine: use one of its addresses, 127.0.0.1, or 0.0.0.0 for every interface`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConfigError('HOST', `cannot resolve ${host}: use an address or a name this machine can resolve`);
    default:
      return null;
  }
}

/**
 * Binds HOST:PORT before anything is spawned or written, and keeps it bound while the orchestrator
 * starts, so that a busy port or a wrong address stops the start with nothing done; `release` frees
 * it just before the API listens there. PORT 0 (any free port) needs no check.
 */
async function holdPort(host: string, port: number): Promise<{ release(): Promise<void> }> {
  if (port === 0) return { release: () => Promise.resolve() };
  const probe = createServer((socket) => socket.destroy());
  try {
    await new Promise<void>((resolveListen, reject) => {
      probe.once('error', reject);
      probe.listen({ host, port }, () => resolveListen());
    });
  } catch (err) {
    throw explainListenError(err, host, port) ?? err;
  }
  let released: Promise<void> | null = null;
  return {
    release() {
      released ??= new Promise<void>((done) => probe.close(() => done()));
      return released;
    },
  };
}

/**
 * Opens the store, starts the orchestrator and serves the HTTP API. On the
 * first start (an empty database) it spawns the default agents and adds the
 * seed's start-up asset; on later starts it brings back the stored fleet.
 */
export async function startServer(config: Config, deps: ServerDeps = {}): Promise<RunningServer> {
  const print = deps.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const clock = deps.clock ?? systemClock;
  const rng = deps.rng ?? systemRng;
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { service: 'orchestrator' } }, pino.destination(2));
  const tls = config.tlsCert === '' ? undefined : readTls(config);
  // Before anything is spawned or written: on SQLite the folder and the lock on it; the port; then the database.
  const target = storeTarget(config);
  const dataDir = resolve(config.dataDir);
  const createdDataDir = target.adapter === 'sqlite' && prepareDataDir(dataDir);
  const lock = target.adapter === 'sqlite' ? lockDataDir(dataDir) : { release: () => undefined };
  let held: { release(): Promise<void> } | undefined;
  let store: Store;
  try {
    held = await holdPort(config.host, config.port);
    store = await openStore(target, { writer: 'thread' });
  } catch (err) {
    await held?.release();
    lock.release();
    if (createdDataDir) {
      try {
        rmdirSync(dataDir);
      } catch {
        // Not empty: leave it.
      }
    }
    throw err;
  }
  const heldPort = held;
  const fleet = new SimulatedFleet({ clock, rng, heartbeatIntervalMs: config.heartbeatIntervalMs });
  const orchestrator = new Orchestrator({
    store,
    clock,
    rng,
    launcher: fleet,
    log: logger,
    settings: {
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      agentTimeoutMs: config.agentTimeoutMs,
      taskTimeoutMs: config.taskTimeoutMs,
      taskRetryLimit: config.taskRetryLimit,
      rebalanceIntervalMs: config.rebalanceIntervalMs,
      agentConcurrency: config.agentConcurrency,
      taskAgingMs: config.taskAgingMs,
      healthScore: config.healthScore,
      metricsHistory: { intervalMs: config.metricsHistoryIntervalMs, retentionMs: config.metricsHistoryRetentionMs },
      ...(config.enrollToken !== '' ? { enrollToken: config.enrollToken } : {}),
      enrollApproval: config.enrollApproval,
    },
  });
  const guard = new Guard({
    store,
    clock,
    host: config.host,
    adminToken: config.adminToken,
    authFailures: config.authFailureLimit,
    enrollments: config.enrollRateLimit,
  });
  orchestrator.events.on('agent.offline', ({ agentId, silentMs }) => logger.warn({ agentId, silentMs }, 'agent marked offline'));
  orchestrator.events.on('agent.online', ({ agentId }) => logger.info({ agentId }, 'agent online'));
  orchestrator.events.on('ring.moved', ({ move }) => logger.debug({ deviceId: move.agentId, from: move.from, to: move.to, reason: move.reason }, 'ring move'));
  orchestrator.events.on('rings.rebalanced', ({ trigger, moves, planMs, totalMs }) => {
    if (moves > 0) logger.info({ trigger, moves, planMs: Math.round(planMs), totalMs: Math.round(totalMs) }, 'rings rebalanced');
  });
  orchestrator.events.on('task.failed', ({ task }) => logger.warn({ taskId: task.id, error: task.error }, 'task failed'));
  let model: ModelAdvisor | null = null;
  if (config.advisorProvider !== 'none') {
    // The SDK (and its providers) load only when a model is configured: a start without one stays light.
    const strands = await import('./advisor/strands-advisor.js');
    strands.quietSdk(logger);
    if (config.advisorProvider === 'openai') await strands.loadOpenAIProvider();
    model = new strands.StrandsAdvisor({
      provider: config.advisorProvider,
      model: config.advisorModel,
      baseUrl: config.advisorBaseUrl,
      apiKey: config.advisorApiKey,
      timeoutMs: config.advisorTimeoutMs,
      maxTokens: config.advisorMaxTokens,
      maxTurns: config.advisorMaxTurns,
    });
    logger.info({ provider: model.name, model: model.model }, 'the advisor writes advice with a model');
  }
  const advisor = new Advisor({
    services: orchestrator.services,
    store: orchestrator.store,
    clock,
    events: orchestrator.events,
    log: logger,
    auto: config.advisorAuto,
    watchMs: config.advisorWatchMs,
    model,
  });
  orchestrator.events.on('advice.created', ({ adviceId, subject, trigger, decision, risk }) => logger.info({ adviceId, subject, trigger, decision, risk }, 'advice written'));

  let app: FastifyInstance | undefined;
  try {
    // Protected mode: an API reachable from other machines must ask for a token.
    if (!isLoopback(config.host) && !(await guard.configured())) {
      throw new ConfigError(
        'HOST',
        `${config.host} exposes the API to other machines, and no API token is configured, so anyone who can reach it could command every agent. ` +
          `Create an admin token first (orchestrator token create --role admin --name <you>${target.adapter === 'sqlite' ? ` --data-dir ${config.dataDir}` : ''}), or set ADMIN_TOKEN to a secret of 32 or more characters; ` +
          `or keep HOST=127.0.0.1. See docs/security.md.`,
      );
    }
    print('Starting master orchestrator (background)...');
    const restored = await orchestrator.start();
    if ((await store.getMeta('bootstrapped')) === null) {
      // DEFAULT_AGENTS=0 is a fleet of real agents only: no simulated ones, and not the prototype's demo asset either.
      if (config.defaultAgents > 0) {
        print(`Spawning ${config.defaultAgents} default agents...`);
        for (let i = 0; i < config.defaultAgents; i++) print(`[Master] spawned agent ${await orchestrator.agents.spawn()}`);
        print('Simulating asset add from UI (will spawn one agent)...');
        const { agentId } = await orchestrator.agents.addAsset(SEED_STARTUP_ASSET);
        print(`[Master] spawned agent ${agentId}`);
      }
      await store.setMeta('bootstrapped', new Date(clock.now()).toISOString());
    } else {
      print(`Restored ${restored.length} agents from ${storeDescription(config)}`);
      for (const id of restored) print(`[Master] restored agent ${id}`);
    }
    advisor.start();
    app = await buildApp({ services: orchestrator.services, advisor, logger, guard, store, clock, requestTimeoutMs: config.requestTimeoutMs, http2MaxStreams: config.http2MaxStreams, missingAfterMs: config.missingAfterMs, events: { pingMs: config.eventStreamPingMs, capacity: config.eventStreamBuffer }, ...(deps.dashboardDir !== undefined ? { dashboardDir: deps.dashboardDir } : {}), ...(tls !== undefined ? { tls } : {}) });
    await heldPort.release();
    try {
      await app.listen({ host: config.host, port: config.port });
    } catch (err) {
      // Taken in the moment between releasing the held port and listening: still a busy port.
      throw explainListenError(err, config.host, config.port) ?? err;
    }
  } catch (err) {
    await app?.close();
    await advisor.stop();
    await orchestrator.stop();
    await store.close();
    await heldPort.release();
    lock.release();
    // Damage met while reading the fleet is the database's, said as such.
    throw (target.adapter === 'sqlite' ? explainSqliteError(databasePath(config), err) : null) ?? err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const url = `${config.tlsCert === '' ? 'http' : 'https'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  print('Orchestrator is running. HTTP API will accept commands...');
  print(`HTTP API running at ${url}`);
  if (orchestrator.network.enrollmentToken !== '') print(`Agents enroll with: orchestrator agent --server ${url} --enroll-token ${orchestrator.network.enrollmentToken}`);
  else print('No default enrollment token (ENROLL_TOKEN=off): create one with POST /api/v1/enrollment-tokens');
  if (await guard.isOpen()) print('API open to this machine without tokens (HOST is loopback and no API token exists); see docs/security.md');

  const server = app;
  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    app: server,
    orchestrator,
    fleet,
    store,
    close() {
      closing ??= (async () => {
        await server.close();
        await advisor.stop();
        await orchestrator.stop();
        await store.close();
        lock.release();
        logger.flush();
      })();
      return closing;
    },
  };
}
