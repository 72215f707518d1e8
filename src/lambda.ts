import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import awsLambdaFastify from '@fastify/aws-lambda';
import type { LambdaResponse } from '@fastify/aws-lambda';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { pino } from 'pino';
import type { Logger as PinoLogger } from 'pino';
import { buildFollowerApp } from './api/follower-app.js';
import { LeaderForwarder } from './api/forwarder.js';
import type { ReplicaStatus } from './api/replica.js';
import { ConfigError, loadConfig } from './config/config.js';
import { OrchestratorError } from './domain/errors.js';
import type { LeaseHolder } from './store/leadership.js';
import { PgLeadership } from './store/postgres/lease.js';
import { connectionConfig } from './store/postgres/postgres-store.js';
import { PgWriter } from './store/postgres/writer.js';

/*
 * The API as an AWS Lambda function (see docs/operations.md, "AWS Lambda"): a follower that lives in a function.
 * It answers /healthz and /readyz itself and forwards everything else to the leader named in the lease row, with
 * the caller's credentials (api/follower-app.ts, api/forwarder.ts). It never leads: it does not take the lease,
 * migrate the schema, load the fleet or run a loop; the leader, a long-running `orchestrator serve` on ECS, EC2
 * or any host, does all of that. Kept off SQLite: nothing here imports better-sqlite3 or its adapter.
 */

/** The invocation's answer, as API Gateway (REST and HTTP APIs) and function URLs take it. */
export type LambdaHandler = ((event: unknown, context?: LambdaContext) => Promise<LambdaResponse>) & {
  /** The role, the leader and its epoch as this function last read them. */
  replica(): ReplicaStatus;
  /** Closes the lease's connection and the connections to the leader (tests; a function is frozen, not closed). */
  close(): Promise<void>;
};

/** The part of Lambda's context object the handler uses. */
export interface LambdaContext {
  getRemainingTimeInMillis?: () => number;
  [key: string]: unknown;
}

/** A forward still unanswered this close to the function's timeout answers 503, before Lambda or API Gateway cut it. */
const DEADLINE_MARGIN_MS = 1000;

/** Content types sent as text; anything else (and anything compressed) goes back base64-encoded. */
const TEXTUAL = /^(text\/|application\/(json|[^;]*\+json|javascript|xml|[^;]*\+xml|x-www-form-urlencoded|openmetrics-text))/i;

/**
 * Who leads, from the lease row, read through DATABASE_URL with the store's own lease reader (PgLeadership's
 * `current`, on a connection of its own): kept for `freshMs`, read again after that, and at once after a forward
 * failed. Only reads: the writer PgLeadership needs for its fence refuses every write, and nothing here takes
 * the lease or migrates (that is the leader's). A lease that has expired names no leader.
 */
class LeaderView {
  private lease: LeaseHolder | null = null;
  private readAt = Number.NEGATIVE_INFINITY;
  private reading: Promise<void> | null = null;

  constructor(
    private readonly reader: Pick<PgLeadership, 'current' | 'close'>,
    private readonly freshMs: number,
    private readonly log: PinoLogger,
  ) {}

  /** The leader's URL and epoch, or null when the lease is empty, expired, or could not be read. */
  get leader(): { url: string; epoch: number } | null {
    const l = this.lease;
    if (l === null || l.expiresInMs - (performance.now() - this.readAt) <= 0) return null;
    return { url: l.url, epoch: l.epoch };
  }

  /** Reads the lease when what is known is older than `freshMs` (one read at a time). */
  refresh(): Promise<void> {
    if (performance.now() - this.readAt < this.freshMs) return Promise.resolve();
    this.reading ??= this.read().finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  /** A forward failed: the next request reads the lease again. */
  forget(): void {
    this.readAt = Number.NEGATIVE_INFINITY;
  }

  close(): Promise<void> {
    return this.reader.close();
  }

  private async read(): Promise<void> {
    const started = performance.now();
    try {
      this.lease = await this.reader.current();
    } catch (first) {
      // A connection kept across a long freeze of the function may be gone: one more try, on a new one.
      try {
        this.lease = await this.reader.current();
      } catch (err) {
        // No table yet (no replica ever migrated this database), or PostgreSQL cannot be reached: no leader known.
        this.log.warn({ err, first }, 'cannot read the leader lease; answering 503 until it can be read');
        this.lease = null;
      }
    }
    this.readAt = started;
  }
}

/**
 * Makes the handler from the environment, as `orchestrator serve` reads it (src/config): DATABASE_URL is required
 * (a PostgreSQL URL: the lease row names the leader). Throws ConfigError naming the setting when it is missing or
 * wrong. The lease is read once here (a cold start), then as LeaderView says.
 */
export async function createLambdaHandler(env: NodeJS.ProcessEnv = process.env): Promise<LambdaHandler> {
  const config = loadConfig(env);
  if (config.databaseUrl === '') {
    throw new ConfigError('DATABASE_URL', 'required on AWS Lambda: the PostgreSQL URL of the replicas, whose lease row names the leader to forward to (postgres://user:password@host:5432/db)');
  }
  const logger = pino({ level: config.logLevel, base: { service: 'orchestrator-lambda' } }, pino.destination({ fd: 2, sync: true }));
  const replicaId = `lambda-${env.AWS_LAMBDA_FUNCTION_NAME ?? 'function'}-${randomBytes(4).toString('hex')}`;
  const { client } = connectionConfig(config.databaseUrl, { applicationName: 'orchestrator lambda' });
  const writer = new PgWriter({ connect: () => Promise.reject(new Error('the Lambda function never writes')) });
  writer.refuse(new OrchestratorError('ORCH_NOT_LEADER', 'the Lambda function only reads the lease; every write is the leader\'s', { retryAfterSeconds: 1 }));
  const leadership = new PgLeadership(async () => {
    // A read that does not answer in time counts as no leader known (503), well within the function's time.
    const c = new pg.Client({ ...client, query_timeout: 2000 });
    await c.connect();
    return c;
  }, writer);
  // As fresh as a follower replica's view (it reads the lease every second, or every quarter lease if shorter).
  const view = new LeaderView(leadership, Math.min(1000, Math.floor(config.leaderLeaseMs / 4)), logger);

  // The function is reached over HTTPS (API Gateway, function URLs) and is not on the leader's machine: its
  // forwards are remote for the leader's authentication, whatever the leader's HOST. It signs the client's address
  // (API Gateway's sourceIp) with the replicas' shared key, as a follower replica does, so that the leader's limits,
  // blocks and audit log count each client, not the function; until the key can be read (no replica has started on
  // this database yet) it signs with a key of its own, which the leader does not believe: it counts the function.
  const forwarderWith = (key: Buffer | null): LeaderForwarder => new LeaderForwarder({ replicaId, key: key ?? randomBytes(32), local: false, tls: true });
  const readKey = (): Promise<Buffer | null> =>
    leadership.replicaKey().catch((err: unknown) => {
      logger.warn({ err }, 'cannot read the replicas\' key yet: the leader counts forwarded requests as the function\'s');
      return null;
    });
  let key = await readKey();
  let forwarder = forwarderWith(key);
  const invocation = new AsyncLocalStorage<{ deadline: number | null }>();
  const replica = (): ReplicaStatus => {
    const leader = view.leader;
    return { role: 'follower', id: replicaId, leader: leader?.url ?? null, epoch: leader?.epoch ?? null };
  };
  const app: FastifyInstance = await buildFollowerApp({
    logger,
    replica,
    listener: false,
    forwarder: {
      forward(leader: string, req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, clientIp: string): Promise<void> {
        const forwarding = forwarder.forward(leader, req, res, clientIp);
        const deadline = invocation.getStore()?.deadline ?? null;
        return new Promise<void>((resolve, reject) => {
          const timer =
            deadline === null
              ? null
              : setTimeout(() => {
                  // Answering (an event stream, a long-poll): what came so far is the answer; the client resumes.
                  if (res.headersSent) {
                    res.end();
                    resolve();
                    return;
                  }
                  view.forget();
                  reject(new Error(`the leader at ${leader} did not answer before the function's time ran out`));
                }, Math.max(0, deadline - Date.now()));
          forwarding.then(
            () => {
              if (timer !== null) clearTimeout(timer);
              resolve();
            },
            (err: unknown) => {
              if (timer !== null) clearTimeout(timer);
              view.forget();
              reject(err instanceof Error ? err : new Error(String(err)));
            },
          );
        });
      },
    },
  });
  const proxy = awsLambdaFastify(app, {
    // A query string goes to the leader as the client wrote it (see `exact` below), not split at its commas.
    parseCommaSeparatedQueryParams: false,
    // Text as text; anything else, or compressed (the dashboard's precompressed files), base64-encoded.
    enforceBase64: (res) => {
      const encoding = res.headers['content-encoding'];
      const type = String(res.headers['content-type'] ?? '');
      return (encoding !== undefined && encoding !== 'identity') || (type !== '' && !TEXTUAL.test(type));
    },
  });
  await view.refresh();
  let keyTriedAt = performance.now();
  const handler = async (event: unknown, context: LambdaContext = {}): Promise<LambdaResponse> => {
    await view.refresh();
    if (key === null && view.leader !== null && performance.now() - keyTriedAt >= 1000) {
      keyTriedAt = performance.now();
      key = await readKey();
      if (key !== null) {
        forwarder.close();
        forwarder = forwarderWith(key);
      }
    }
    const remaining = typeof context.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : null;
    const deadline = remaining === null ? null : Date.now() + Math.max(0, remaining - DEADLINE_MARGIN_MS);
    return invocation.run({ deadline }, () => proxy(exact(event), context as never));
  };
  return Object.assign(handler, {
    replica,
    async close() {
      await app.close();
      forwarder.close();
      await view.close();
    },
  });
}

/**
 * An HTTP API (payload 2.0) or function URL event with its raw query string on the path: API Gateway also gives
 * the query as parameters with repeated keys joined by commas, which cannot be told from a comma in a value.
 * REST API (1.0) events have no raw query string; their multi-value parameters are exact.
 */
function exact(event: unknown): unknown {
  const e = event as { version?: string; rawPath?: string; rawQueryString?: string } | null;
  if (e === null || typeof e !== 'object' || e.version !== '2.0' || typeof e.rawPath !== 'string') return event;
  const query = e.rawQueryString ?? '';
  return { ...e, rawPath: query === '' ? e.rawPath : `${e.rawPath}?${query}`, queryStringParameters: undefined };
}

/** The function's handler (`dist/lambda.handler`): made at cold start, in the function's init phase. */
export const handler: LambdaHandler = await createLambdaHandler();
