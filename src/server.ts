import { mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';
import { buildApp } from './api/app.js';
import type { ReplicaStatus } from './api/replica.js';
import { buildFollowerApp } from './api/follower-app.js';
import { LeaderForwarder } from './api/forwarder.js';
import type { Config } from './config/config.js';
import { ConfigError } from './config/config.js';
import { Guard, isLoopback } from './security/guard.js';
import { Advisor } from './advisor/advisor.js';
import type { ModelAdvisor } from './advisor/model-advisor.js';
import { LeaderElection } from './core/leader-election.js';
import { Orchestrator } from './core/orchestrator.js';
import { OrchestratorError } from './domain/errors.js';
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
  /** The app serving now (a replica's follower app while it does not lead). */
  readonly app: FastifyInstance;
  /** The orchestrator of the term in progress (a replica that does not lead throws ORCH_NOT_LEADER). */
  readonly orchestrator: Orchestrator;
  readonly fleet: SimulatedFleet;
  store: Store;
  /** This process's role (always leader on SQLite). */
  replica: () => ReplicaStatus;
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

/** What a term of leadership runs: the orchestrator, the advisor and the API app on the port. */
interface Term {
  app: FastifyInstance;
  orchestrator: Orchestrator;
  fleet: SimulatedFleet;
  /** The API is open to this machine without tokens (said at start-up). */
  open: boolean;
  /** Stops serving and drops the in-memory state; each step is tried even when one before it fails. */
  close(): Promise<void>;
}

/** What every term of a process shares. */
interface ServerContext {
  config: Config;
  deps: ServerDeps;
  store: Store;
  print: (line: string) => void;
  clock: Clock;
  rng: Rng;
  logger: PinoLogger;
  tls: { cert: Buffer; key: Buffer } | undefined;
  /** Listens on HOST:PORT (the port of the first listen from then on, when PORT is 0); returns the port. */
  listen(app: FastifyInstance): Promise<number>;
  replica: () => ReplicaStatus;
  /** The replicas' shared key (a store with leadership): followers sign forwarded requests' clients with it. */
  replicaKey: Buffer | null;
}

/**
 * Opens the store, starts the orchestrator and serves the HTTP API. On the
 * first start (an empty database) it spawns the default agents and adds the
 * seed's start-up asset; on later starts it brings back the stored fleet.
 *
 * On PostgreSQL the process is a replica: it serves as a follower (see api/follower-app.ts) until it takes
 * the leader lease, then leads (a term: the orchestrator loads the state and serves), and follows again when
 * it is deposed (core/leader-election.ts).
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
  let replicaKey: Buffer | null;
  try {
    held = await holdPort(config.host, config.port);
    store = await openStore(target, { writer: 'thread' });
    try {
      replicaKey = store.leadership === null ? null : await store.leadership.replicaKey();
    } catch (err) {
      await store.close();
      throw err;
    }
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
  let boundPort: number | null = null;
  const replicaId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  let election: LeaderElection | null = null;
  const ctx: ServerContext = {
    config, deps, store, print, clock, rng, logger, tls, replicaKey,
    async listen(app) {
      await heldPort.release();
      try {
        await app.listen({ host: config.host, port: boundPort ?? config.port });
      } catch (err) {
        // Taken in the moment between releasing the held port and listening: still a busy port.
        throw explainListenError(err, config.host, boundPort ?? config.port) ?? err;
      }
      const address = app.server.address();
      boundPort = typeof address === 'object' && address !== null ? address.port : config.port;
      return boundPort;
    },
    replica: () =>
      election === null
        ? { role: 'leader', id: replicaId, leader: null, epoch: null }
        : { role: election.role, id: replicaId, leader: election.leader?.url ?? null, epoch: election.epoch ?? election.leader?.epoch ?? null },
  };
  const urlOf = (port: number): string => `${config.tlsCert === '' ? 'http' : 'https'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

  if (store.leadership === null) {
    let term: Term;
    try {
      term = await lead(ctx);
    } catch (err) {
      await store.close();
      await heldPort.release();
      lock.release();
      // Damage met while reading the fleet is the database's, said as such.
      throw (target.adapter === 'sqlite' ? explainSqliteError(databasePath(config), err) : null) ?? err;
    }
    const port = boundPort ?? config.port;
    const url = urlOf(port);
    announce(ctx, term, url);
    let closing: Promise<void> | null = null;
    return {
      url,
      port,
      app: term.app,
      orchestrator: term.orchestrator,
      fleet: term.fleet,
      store,
      replica: ctx.replica,
      close() {
        closing ??= (async () => {
          await term.close();
          await store.close();
          lock.release();
          logger.flush();
        })();
        return closing;
      },
    };
  }

  // A replica on a shared store: follow until elected.
  const leadership = store.leadership;
  const forwarder = new LeaderForwarder({ replicaId, key: replicaKey ?? randomBytes(32), local: isLoopback(config.host), tls: tls !== undefined });
  let follower: FastifyInstance | null = null;
  let term: Term | null = null;
  let stopping = false;
  // The next term, prepared while this replica follows (see prepare); made again after each term.
  let standby: Promise<Standby> | null = null;
  const prepareStandby = (): void => {
    if (stopping || standby !== null) return;
    const made = prepare(ctx);
    // A failure is met again, and thrown, when the term begins with it.
    made.catch((err: unknown) => logger.warn({ err }, 'could not prepare to lead; will try when elected'));
    standby = made;
  };
  const follow = async (): Promise<void> => {
    if (stopping || follower !== null) return;
    prepareStandby();
    follower = await buildFollowerApp({ logger, replica: ctx.replica, forwarder, requestTimeoutMs: config.requestTimeoutMs, http2MaxStreams: config.http2MaxStreams, ...(tls !== undefined ? { tls } : {}) });
    await ctx.listen(follower);
  };
  try {
    await assertProtected(config, guardOf(ctx));
    await follow();
  } catch (err) {
    await store.close();
    await heldPort.release();
    throw err;
  }
  const port = boundPort ?? config.port;
  const url = urlOf(port);
  const advertised = config.advertiseUrl !== '' ? config.advertiseUrl : reachable(urlOf(port));
  election = new LeaderElection({
    leadership,
    holder: replicaId,
    url: advertised,
    leaseMs: config.leaderLeaseMs,
    renewMs: Math.min(1000, Math.floor(config.leaderLeaseMs / 4)),
    clock,
    log: logger,
    onElected: async (epoch) => {
      try {
        // The follower app serves (503 ORCH_NOT_LEADER, "beginning to lead") until the term is ready to listen.
        const ready = standby ?? prepare(ctx);
        standby = null;
        term = await begin(ctx, await ready, async () => {
          await follower?.close();
          follower = null;
        });
      } catch (err) {
        await follow().catch((e: unknown) => logger.error({ err: e }, 'could not serve as a follower'));
        throw err;
      }
      print(`Leading (epoch ${epoch}) as ${replicaId}; followers forward to ${advertised}`);
      announce(ctx, term, url);
    },
    onDeposed: async (reason) => {
      const ending = term;
      term = null;
      await ending?.close();
      if (!stopping) {
        print(`Following (${reason})`);
        await follow();
      }
    },
  });
  await election.start();
  if (election.role === 'follower') print(`Following as ${replicaId}: ${election.leader === null ? 'no leader yet' : `the leader is ${election.leader.url}`} (HTTP API at ${url})`);
  const currentTerm = (): Term => {
    if (term === null) throw new OrchestratorError('ORCH_NOT_LEADER', 'this replica does not lead', { retryAfterSeconds: 1 });
    return term;
  };
  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    get app() {
      return term?.app ?? (follower as FastifyInstance);
    },
    get orchestrator() {
      return currentTerm().orchestrator;
    },
    get fleet() {
      return currentTerm().fleet;
    },
    store,
    replica: ctx.replica,
    close() {
      closing ??= (async () => {
        stopping = true;
        await election?.stop();
        await follower?.close();
        await standby?.then((unused) => unused.discard(), () => undefined);
        forwarder.close();
        await store.close();
        logger.flush();
      })();
      return closing;
    },
  };
}

/** The API's authentication and rate limits, as the configuration sets them. */
function guardOf({ config, store, clock }: ServerContext): Guard {
  return new Guard({ store, clock, host: config.host, adminToken: config.adminToken, authFailures: config.authFailureLimit, enrollments: config.enrollRateLimit });
}

/** Protected mode: an API reachable from other machines must ask for a token (a follower's as much as a leader's). */
async function assertProtected(config: Config, guard: Guard): Promise<void> {
  if (isLoopback(config.host) || (await guard.configured())) return;
  throw new ConfigError(
    'HOST',
    `${config.host} exposes the API to other machines, and no API token is configured, so anyone who can reach it could command every agent. ` +
      `Create an admin token first (orchestrator token create --role admin --name <you>${config.databaseUrl === '' ? ` --data-dir ${config.dataDir}` : ''}), or set ADMIN_TOKEN to a secret of 32 or more characters; ` +
      `or keep HOST=127.0.0.1. See docs/security.md.`,
  );
}

/** A URL other machines can use for one this process listens on: the machine's name for a wildcard address. */
function reachable(url: string): string {
  return url.replace(/\/\/(0\.0\.0\.0|\[::\])(?=:)/, `//${hostname()}`);
}

/** The start-up story's last lines: where the API is, how agents enroll, whether it is open. */
function announce(ctx: ServerContext, term: Term, url: string): void {
  const { print } = ctx;
  print('Orchestrator is running. HTTP API will accept commands...');
  print(`HTTP API running at ${url}`);
  const token = term.orchestrator.network.enrollmentToken;
  if (token !== '') print(`Agents enroll with: orchestrator agent --server ${reachable(url)} --enroll-token ${token}`);
  else print('No default enrollment token (ENROLL_TOKEN=off): create one with POST /api/v1/enrollment-tokens');
  if (term.open) print('API open to this machine without tokens (HOST is loopback and no API token exists); see docs/security.md');
}

/**
 * A term of leadership: builds the orchestrator over the store, loads the state, starts the loops and the
 * advisor, and serves the API on the port. Throws (with everything it started stopped) when it cannot.
 */
async function lead(ctx: ServerContext, beforeListen?: () => Promise<void>): Promise<Term> {
  return begin(ctx, await prepare(ctx), beforeListen);
}

/** A term made ready to begin: the orchestrator, the advisor and the API built, nothing loaded or started. */
interface Standby {
  orchestrator: Orchestrator;
  fleet: SimulatedFleet;
  advisor: Advisor;
  guard: Guard;
  app: FastifyInstance;
  /** Drops it unused (a replica that stops, or whose standby is replaced). */
  discard(): Promise<void>;
}

/**
 * Builds what a term needs before it can begin: the orchestrator (its state not loaded), the advisor and the
 * API, with every route compiled. A follower prepares one ahead, so that when it is elected it only loads the
 * state and listens (building the API is a second of a take-over on a small machine).
 */
async function prepare(ctx: ServerContext): Promise<Standby> {
  const { config, deps, store, clock, rng, logger, tls } = ctx;
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
  const guard = guardOf(ctx);
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

  const app = await buildApp({ services: orchestrator.services, advisor, logger, guard, store, clock, replica: ctx.replica, replicaKey: ctx.replicaKey, requestTimeoutMs: config.requestTimeoutMs, http2MaxStreams: config.http2MaxStreams, missingAfterMs: config.missingAfterMs, events: { pingMs: config.eventStreamPingMs, capacity: config.eventStreamBuffer }, ...(deps.dashboardDir !== undefined ? { dashboardDir: deps.dashboardDir } : {}), ...(tls !== undefined ? { tls } : {}) });
  try {
    await app.ready();
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  return { orchestrator, fleet, advisor, guard, app, discard: () => app.close() };
}

/** Begins a term with `standby`: loads the state, starts the loops and the advisor, and listens. */
async function begin(ctx: ServerContext, standby: Standby, beforeListen?: () => Promise<void>): Promise<Term> {
  const { config, store, print, clock, logger } = ctx;
  const { orchestrator, fleet, advisor, guard, app } = standby;
  try {
    await assertProtected(config, guard);
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
    await beforeListen?.();
    await ctx.listen(app);
  } catch (err) {
    await app.close().catch(() => undefined);
    await advisor.stop().catch(() => undefined);
    await orchestrator.stop().catch(() => undefined);
    throw err;
  }
  const open = await guard.isOpen();
  const served = app;
  const attempt = async (what: string, step: () => Promise<void>): Promise<void> => {
    try {
      await step();
    } catch (err) {
      logger.error({ err }, `stopping: ${what} failed`);
    }
  };
  return {
    app: served,
    orchestrator,
    fleet,
    open,
    async close() {
      await attempt('closing the API', () => served.close());
      await attempt('stopping the advisor', () => advisor.stop());
      await attempt('stopping the orchestrator', () => orchestrator.stop());
    },
  };
}
