import http2 from 'node:http2';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import type { TSchema } from 'typebox';
import type { LiveAgent } from '../core/agents.js';
import type { AgentProtocolService } from '../core/services.js';
import { OrchestratorError } from '../domain/errors.js';
import type { FastifyBaseLogger } from 'fastify';
import { agentAnswers, Heartbeat, Poll, Results } from './agent-routes.js';
import { BODY_LIMIT, parseJsonBody } from './body.js';
import { bodyTimeoutError } from './body-timeout.js';
import type { ErrorBody } from './errors.js';
import { orchestratorErrorReply, validationMessage } from './errors.js';
import type { Guard } from '../security/guard.js';
import { countAgentFailure, HSTS, SECURITY_HEADERS } from './security-hooks.js';
import { FORWARDED_HEADER, requestClient } from './forwarder.js';

/** A hot route: its input part, that part's validator, and the shared work (agentAnswers). */
interface StreamRoute {
  part: 'body' | 'querystring';
  validate: ValidateFunction;
  answer: (agent: LiveAgent, input: never) => object | Promise<object>;
}

interface Outcome {
  status: number;
  body: object;
  headers?: Record<string, string>;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The agent protocol's three hot routes (heartbeat, command long-poll,
 * results) served straight on HTTP/2 streams, past node's HTTP/1-style
 * compatibility layer and Fastify's per-request objects. A fleet's traffic is
 * almost all these three; on them, those layers cost about ten times the
 * orchestrator's own work, and a parked long-poll held four objects and a
 * promise where it now holds the stream and a promise.
 *
 * Same routes, same answers: the work is `agentAnswers` (as on the Fastify
 * routes, which still serve HTTP/1.1), the input is checked against the same
 * TypeBox schemas with Ajv set up as Fastify's (no coercion, no defaults,
 * first error only), bodies are parsed by the same `parseJsonBody` under the
 * same limit, and errors have the same status, message and code. Every other
 * path, method or protocol goes to Fastify. `test/e2e/http2.test.ts` sends
 * the same requests both ways and compares the answers.
 */
export class AgentStreamRoutes {
  private readonly routes = new Map<string, StreamRoute>();
  private readonly logRequests: boolean;
  private readonly headers: Record<string, string>;

  constructor(
    private readonly agents: AgentProtocolService,
    private readonly log: FastifyBaseLogger,
    private readonly guard: Guard,
    tls: boolean,
    /** How long a body may take to arrive (REQUEST_TIMEOUT): 408 and the stream closed after that. */
    private readonly bodyTimeoutMs: number,
    /** The replicas' shared key: a follower's signed word on a forwarded request's client (forwarder.ts). */
    private readonly replicaKey: Buffer | null = null,
  ) {
    this.headers = { 'content-type': JSON_TYPE, ...SECURITY_HEADERS, ...(tls ? { 'strict-transport-security': HSTS } : {}) };
    const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, addUsedSchema: false });
    const compile = (schema: TSchema): ValidateFunction => ajv.compile(schema);
    this.routes.set('POST /api/v1/agent/heartbeat', {
      part: 'body',
      validate: compile(Heartbeat),
      answer: (agent, input) => agentAnswers.heartbeat(agents, agent, input),
    });
    this.routes.set('GET /api/v1/agent/commands', {
      part: 'querystring',
      validate: compile(Poll),
      answer: (agent, input) => agentAnswers.commands(agents, agent, input),
    });
    this.routes.set('POST /api/v1/agent/results', {
      part: 'body',
      validate: compile(Results),
      answer: (agent, input) => agentAnswers.results(agents, agent, input),
    });
    this.logRequests = log.level === 'debug' || log.level === 'trace';
  }

  /** Takes the stream if it is for one of the hot routes (true), or leaves it untouched, for Fastify (false). */
  handle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    const path = headers[':path'] ?? '';
    const q = path.indexOf('?');
    const route = this.routes.get(`${headers[':method'] ?? ''} ${q === -1 ? path : path.slice(0, q)}`);
    if (route === undefined) return false;
    const started = this.logRequests ? performance.now() : 0;
    // A stream without an error listener would take the process down with it (a peer's reset, for one).
    stream.on('error', () => undefined);
    const authorization = headers.authorization;
    const address = requestClient(headers[FORWARDED_HEADER], stream.session?.socket?.remoteAddress ?? '', this.replicaKey).address;
    const finish = (outcome: Outcome): void => {
      this.respond(stream, outcome);
      if (this.logRequests) this.log.debug({ method: headers[':method'], url: path, status: outcome.status, ms: performance.now() - started }, 'request');
    };
    // The agent is authenticated before its input is read, as on the Fastify routes.
    let agent: LiveAgent;
    try {
      this.guard.assertNotBlocked(address);
      agent = this.agents.authenticate(authorization);
    } catch (err) {
      stream.resume();
      finish(this.failure(countAgentFailure(this.guard, address, err), path));
      return true;
    }
    if (route.part === 'querystring') {
      stream.resume(); // a GET's body, if any, is not read
      this.run(route, agent, address, queryObject(q === -1 ? '' : path.slice(q + 1)), finish);
      return true;
    }
    const declared = Number(headers['content-length']);
    if (declared > BODY_LIMIT) {
      stream.resume();
      finish(tooLarge());
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    const timer = setTimeout(() => {
      refused = true;
      finish(this.failure(bodyTimeoutError(this.bodyTimeoutMs), path));
      // The answer ends the server's side; the client's is closed with it, so that it stops sending.
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }, this.bodyTimeoutMs);
    stream.once('close', () => clearTimeout(timer));
    stream.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > BODY_LIMIT) {
        refused = true;
        clearTimeout(timer);
        finish(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      if (refused) return;
      let body: unknown;
      try {
        body = parseJsonBody(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        finish(this.failure(err, path));
        return;
      }
      this.run(route, agent, address, body, finish);
    });
    return true;
  }

  /** Validates the input, then answers with the route's work, at once or when its promise settles. */
  private run(route: StreamRoute, agent: LiveAgent, address: string, input: unknown, finish: (o: Outcome) => void): void {
    if (!route.validate(input)) {
      const first = route.validate.errors?.[0];
      finish({ status: 400, body: { error: first ? validationMessage(first, route.part) : `${route.part} is invalid`, code: 'ORCH_VALIDATION' } satisfies ErrorBody });
      return;
    }
    let answer: object | Promise<object>;
    try {
      answer = route.answer(agent, input as never);
    } catch (err) {
      finish(this.failure(countAgentFailure(this.guard, address, err), route.part));
      return;
    }
    if (answer instanceof Promise) {
      answer.then(
        (body) => finish({ status: 200, body }),
        (err: unknown) => finish(this.failure(countAgentFailure(this.guard, address, err), route.part)),
      );
    } else {
      finish({ status: 200, body: answer });
    }
  }

  /** An error as the Fastify error handler would answer it: ours with their status and code, anything else a logged 500. */
  private failure(err: unknown, where: string): Outcome {
    if (err instanceof OrchestratorError) return orchestratorErrorReply(err);
    this.log.error({ err, where }, 'unhandled error');
    return { status: 500, body: { error: 'internal error', code: 'ORCH_INTERNAL' } satisfies ErrorBody };
  }

  private respond(stream: http2.ServerHttp2Stream, outcome: Outcome): void {
    if (stream.destroyed || stream.closed || stream.headersSent) return; // the agent went away: its commands are sent again to its next poll
    const payload = JSON.stringify(outcome.body);
    stream.respond({ ...this.headers, ...outcome.headers, ':status': outcome.status, 'content-length': Buffer.byteLength(payload) });
    stream.end(payload);
  }
}

function tooLarge(): Outcome {
  return orchestratorErrorReply(OrchestratorError.of('ORCH_PAYLOAD_TOO_LARGE'));
}

/** A query string as Fastify's parser makes it: a repeated key becomes an array (which the schemas refuse). */
function queryObject(search: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  if (search === '') return out;
  for (const [k, v] of new URLSearchParams(search)) {
    const prior = out[k];
    out[k] = prior === undefined ? v : Array.isArray(prior) ? [...prior, v] : [prior, v];
  }
  return out;
}
