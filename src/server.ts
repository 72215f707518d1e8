import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';
import { buildApp } from './api/app.js';
import type { Config } from './config/config.js';
import { ConfigError } from './config/config.js';
import { Guard, isLoopback } from './security/guard.js';
import { Orchestrator } from './core/orchestrator.js';
import type { Rng } from './domain/random.js';
import { systemRng } from './domain/random.js';
import type { Asset } from './domain/types.js';
import { SimulatedFleet } from './sim/simulated-fleet.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import type { Clock } from './util/clock.js';
import { systemClock } from './util/clock.js';

/** The asset the seed's start-up added "from the UI", which spawned its third agent. */
export const SEED_STARTUP_ASSET: Asset = { id: '5449...048', name: 'mmr-10180', site: 'HQ', department: 'IT' };

export interface ServerDeps {
  clock?: Clock;
  rng?: Rng;
  /** Where the start-up story goes, line by line. @default stdout */
  print?: (line: string) => void;
  logger?: PinoLogger;
}

export interface RunningServer {
  url: string;
  port: number;
  app: FastifyInstance;
  orchestrator: Orchestrator;
  fleet: SimulatedFleet;
  store: SqliteStore;
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
  return join(config.dataDir, 'orchestrator.db');
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
  const store = new SqliteStore(databasePath(config), { writer: 'thread' });
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

  let app: FastifyInstance | undefined;
  try {
    // Protected mode: an API reachable from other machines must ask for a token.
    if (!isLoopback(config.host) && !(await guard.configured())) {
      throw new ConfigError(
        'HOST',
        `${config.host} exposes the API to other machines, and no API token is configured, so anyone who can reach it could command every agent. ` +
          `Create an admin token first (orchestrator token create --role admin --name <you> --data-dir ${config.dataDir}), or set ADMIN_TOKEN to a secret of 32 or more characters; ` +
          `or keep HOST=127.0.0.1. See docs/security.md.`,
      );
    }
    const tls = config.tlsCert === '' ? undefined : readTls(config);
    print('Starting master orchestrator (background)...');
    const restored = await orchestrator.start();
    if ((await store.getMeta('bootstrapped')) === null) {
      // DEFAULT_AGENTS=0 is a fleet of real agents only: no simulated ones, and not the prototype's demo asset either.
      if (config.defaultAgents > 0) {
        print(`Spawning ${config.defaultAgents} default agents...`);
        for (let i = 0; i < config.defaultAgents; i++) print(`[Master] spawned agent ${await orchestrator.spawnAgent()}`);
        print('Simulating asset add from UI (will spawn one agent)...');
        const { agentId } = await orchestrator.addAsset(SEED_STARTUP_ASSET);
        print(`[Master] spawned agent ${agentId}`);
      }
      await store.setMeta('bootstrapped', new Date(clock.now()).toISOString());
    } else {
      print(`Restored ${restored.length} agents from ${databasePath(config)}`);
      for (const id of restored) print(`[Master] restored agent ${id}`);
    }
    app = await buildApp({ orchestrator, logger, guard, store, clock, ...(tls !== undefined ? { tls } : {}) });
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await app?.close();
    await orchestrator.stop();
    await store.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const url = `${config.tlsCert === '' ? 'http' : 'https'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  print('Orchestrator is running. HTTP API will accept commands...');
  print(`HTTP API running at ${url}`);
  if (orchestrator.enrollmentToken !== '') print(`Agents enroll with: orchestrator agent --server ${url} --enroll-token ${orchestrator.enrollmentToken}`);
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
        await orchestrator.stop();
        await store.close();
        logger.flush();
      })();
      return closing;
    },
  };
}
