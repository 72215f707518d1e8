import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { LiveAgent } from '../core/agents.js';
import type { AgentProtocolService } from '../core/services.js';
import type { AuditOutcome } from '../domain/security.js';
import { OrchestratorError } from '../domain/errors.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import type { Access } from '../security/access.js';
import { accessOf } from '../security/access.js';
import type { Guard, Identity } from '../security/guard.js';
import { actorName, isRole } from '../security/guard.js';
import { PAGE_HEADERS } from './dashboard.js';
import type { RequestClient } from './forwarder.js';
import { FORWARDED_HEADER, requestClient } from './forwarder.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who an operator route's request comes from, once authorised. */
    identity: Identity | null;
    /** The agent an agent route's request comes from, once authenticated. */
    agent: LiveAgent | null;
    /** Where the request comes from (a forwarded request's client, when a follower signed it), once known. */
    client: RequestClient | null;
  }
  interface FastifyContextConfig {
    /** The route's access rule, set once when the route is added (see `installSecurity`). */
    access?: Access;
    /** A dashboard page or file: sent with the dashboard's headers instead of the API's. */
    page?: boolean;
  }
  interface FastifyInstance {
    /** Every route served, with its access rule (the auth matrix test walks it). */
    routeTable: { method: string; url: string; access: Access; schema: { body?: unknown; querystring?: unknown; params?: unknown } }[];
  }
}

/** Headers on every answer: JSON only, never framed, never cached, no referrer. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

/** With TLS, browsers are told to keep to it. */
export const HSTS = 'max-age=31536000';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface SecurityOptions {
  agents: Pick<AgentProtocolService, 'authenticate'>;
  guard: Guard;
  store: Store;
  clock: Clock;
  tls: boolean;
  /** The replicas' shared key (Leadership.replicaKey): what followers sign of forwarded requests; null on SQLite. */
  replicaKey: Buffer | null;
}

/**
 * Authentication, authorisation, limits, headers and the audit log, for every
 * route Fastify serves (the agent routes served on HTTP/2 streams apply the
 * same through `agent-streams.ts`).
 * - Every route must have a rule in `ROUTE_ACCESS`: one without stops the app from being built.
 * - Operator routes: `guard.authorize` before the body is even read (401, 403, 429).
 * - Enrollment: limited per client address (429). Agent routes: the agent's credential checked before the
 *   body is read; refused while the address is over its failed-authentication limit; their 401s count.
 * - Every changing request to an operator route is in the audit log, committed before the answer.
 */
export function installSecurity(app: FastifyInstance, { agents, guard, store, clock, tls, replicaKey }: SecurityOptions): void {
  app.decorateRequest('identity', null);
  app.decorateRequest('agent', null);
  app.decorateRequest('client', null);
  const table: FastifyInstance['routeTable'] = [];
  app.decorate('routeTable', table);
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const rules = new Set<Access>();
    for (const method of methods) {
      const access = accessOf(method, route.url);
      if (access === undefined) throw new Error(`route ${method} ${route.url} has no access rule in src/security/access.ts`);
      rules.add(access);
      table.push({ method, url: route.url, access, schema: route.schema ?? {} });
    }
    if (rules.size !== 1) throw new Error(`route ${methods.join(',')} ${route.url} has different access rules for its methods: register it once per method`);
    // Kept with the route, so that each request reads its rule instead of looking it up again.
    route.config = { ...route.config, access: [...rules][0] as Access };
  });

  // Callback hooks, not async ones: the agent routes (a fleet's traffic) pass through without a promise.
  app.addHook('onRequest', (request, _reply, done) => {
    const access = request.routeOptions.config.access;
    const client = requestClient(request.headers[FORWARDED_HEADER], request.ip, replicaKey);
    request.client = client;
    try {
      if (access === 'enroll') guard.takeEnrollment(client.address);
      else if (access === 'agent') {
        guard.assertNotBlocked(client.address);
        request.agent = agents.authenticate(request.headers.authorization);
      } else if (access !== undefined && access !== 'public') {
        guard.authenticate(request.headers.authorization, client.address, { remote: client.remote }).then((identity) => {
          request.identity = identity;
          try {
            guard.assertRole(identity, access);
          } catch (err) {
            done(err as Error);
            return;
          }
          done();
        }, done);
        return;
      }
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  });

  const headers = tls ? { ...SECURITY_HEADERS, 'strict-transport-security': HSTS } : SECURITY_HEADERS;
  const pageHeaders = tls ? { ...PAGE_HEADERS, 'strict-transport-security': HSTS } : PAGE_HEADERS;
  app.addHook('onSend', (request, reply, payload, done) => {
    // A dashboard page keeps the cache-control it set; an error on its route is the API's JSON, with the API's headers.
    if (request.routeOptions.config.page === true && reply.statusCode < 400) reply.headers(pageHeaders);
    else reply.headers(headers);
    const access = request.routeOptions.config.access;
    if (access === undefined || !isRole(access) || !MUTATING.has(request.method)) {
      done(null, payload);
      return;
    }
    const status = reply.statusCode;
    const entry = {
      at: clock.now(),
      actor: request.identity === null ? 'anonymous' : actorName(request.identity),
      actorTokenId: request.identity?.kind === 'operator' ? request.identity.tokenId : null,
      role: request.identity?.kind === 'operator' ? request.identity.role : request.identity?.kind === 'local' ? 'admin' : null,
      action: `${request.method} ${request.routeOptions.url ?? ''}`,
      target: targetOf(request, payload),
      outcome: outcomeOf(status),
      status,
      address: clientAddress(request),
    };
    store.appendAudit(entry).then(
      () => done(null, payload),
      (err: unknown) => {
        // The store cannot commit (a full disk): the answer stands (a change it reports did commit; a refusal
        // changed nothing), and the entry goes to the log instead, in full.
        request.log.error({ err, audit: entry }, 'audit entry not stored: the store cannot commit; it is in this log line instead');
        done(null, payload);
      },
    );
  });
}

/** An agent route's 401 counts as a failed authentication; past the limit it becomes a 429. */
export function countAgentFailure(guard: Guard, address: string, err: unknown): unknown {
  if (!(err instanceof OrchestratorError) || err.code !== 'ORCH_UNAUTHORIZED') return err;
  try {
    guard.fail(address);
  } catch (limited) {
    return limited;
  }
  return err;
}

function outcomeOf(status: number): AuditOutcome {
  if (status < 400) return 'ok';
  if (status === 401 || status === 403 || status === 429) return 'denied';
  return status < 500 ? 'refused' : 'failed';
}

/** What an action was on: the route's parameters, else the id of what it created. */
function targetOf(request: FastifyRequest, payload: unknown): string | null {
  const params = request.params as Record<string, string> | undefined;
  const values = params ? Object.values(params).filter((v) => typeof v === 'string') : [];
  if (values.length > 0) return values.join('/').slice(0, 300);
  if (typeof payload !== 'string' || payload.length > 100_000 || !payload.startsWith('{')) return null;
  try {
    const body = JSON.parse(payload) as Record<string, unknown>;
    for (const key of ['id', 'task_id', 'agent_id', 'deployment_id', 'agentId']) {
      const v = body[key];
      if (typeof v === 'string' || typeof v === 'number') return String(v).slice(0, 300);
    }
  } catch {
    return null;
  }
  return null;
}

/** The address a request counts as coming from (its client's, when a follower forwarded it; see RequestClient). */
export function clientAddress(request: FastifyRequest): string {
  return request.client?.address ?? request.ip;
}
