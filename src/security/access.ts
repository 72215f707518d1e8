import type { Role } from '../domain/security.js';

/**
 * Who may call a route:
 * - `public`: anyone (liveness, the API description);
 * - `enroll`: anyone holding an enrollment token, given in the body;
 * - `agent`: an enrolled agent, with its own credential, on its own work only;
 * - a role: an operator's API token with that role or a higher one.
 */
export type Access = 'public' | 'enroll' | 'agent' | Role;

/** The dashboard's pages (src/api/dashboard.ts): each answers with the same document, which shows the view its path names. */
export const DASHBOARD_PAGES = ['/', '/devices', '/devices/:id', '/rings', '/deployments', '/deployments/new', '/deployments/:id', '/tasks', '/tasks/:id', '/security'] as const;

/**
 * Every route's rule, keyed `METHOD /path` as registered. A route without a
 * rule stops the app from being built (see `app.ts`), so none is ever served
 * unguarded by omission; `docs/security.md` lists them by role.
 */
export const ROUTE_ACCESS: Readonly<Record<string, Access>> = {
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'GET /openapi.json': 'public',
  // The dashboard's pages and files: public, as they hold no data (every view asks the API, with a token).
  ...Object.fromEntries(DASHBOARD_PAGES.map((page) => [`GET ${page}`, 'public'] as const)),
  'GET /assets/:file': 'public',
  // Prometheus' scrape: a viewer's token (or open on loopback, as the API is).
  'GET /metrics': 'viewer',

  // The prototype's endpoints.
  'POST /spawn_agent': 'operator',
  'POST /add_asset': 'operator',
  'POST /submit_task': 'operator',
  'GET /list_agents': 'viewer',
  'GET /cluster_status': 'viewer',
  'GET /status/:task_id': 'viewer',
  'POST /start_deployment': 'operator',
  'POST /complete_deployment': 'operator',
  'GET /deployment_status': 'viewer',
  'GET /asset_details': 'viewer',
  'POST /simulate_activity': 'operator',

  // Agents as operators see them.
  'GET /api/v1/agents': 'viewer',
  'GET /api/v1/agents/:id': 'viewer',
  'GET /api/v1/agents/:id/ring-history': 'viewer',
  'DELETE /api/v1/agents/:id': 'operator',
  'POST /api/v1/agents/:id/approve': 'admin',

  // Tasks.
  'POST /api/v1/tasks': 'operator',
  'POST /api/v1/tasks/batch': 'operator',
  'GET /api/v1/tasks': 'viewer',
  'GET /api/v1/tasks/:id': 'viewer',
  'POST /api/v1/tasks/:id/cancel': 'operator',
  'POST /api/v1/tasks/:id/retry': 'operator',

  // Devices and rings.
  'POST /api/v1/devices': 'operator',
  'GET /api/v1/devices': 'viewer',
  'GET /api/v1/devices/:id': 'viewer',
  'PUT /api/v1/devices/:id/ring': 'operator',
  'GET /api/v1/devices/:id/ring-history': 'viewer',
  'GET /api/v1/devices/:id/history': 'viewer',
  'GET /api/v1/devices/:id/executions': 'viewer',
  'GET /api/v1/rings': 'viewer',
  'PUT /api/v1/rings': 'admin',
  'POST /api/v1/rings/rebalance': 'operator',
  'GET /api/v1/rings/moves': 'viewer',

  // Deployments.
  'POST /api/v1/deployments': 'operator',
  'GET /api/v1/deployments': 'viewer',
  'GET /api/v1/deployments/:id': 'viewer',
  'GET /api/v1/deployments/:id/impact': 'viewer',
  'POST /api/v1/deployments/:id/:action': 'operator',

  // The advisor.
  'POST /api/v1/advice': 'operator',
  'GET /api/v1/advice': 'viewer',
  'GET /api/v1/advice/:id': 'viewer',
  'POST /api/v1/advice/:id/apply': 'operator',
  'POST /api/v1/gating/parse': 'operator',

  // The live event stream, and the fleet at a glance.
  'GET /api/v1/events': 'viewer',
  'GET /api/v1/overview': 'viewer',

  // The agent protocol.
  'POST /api/v1/agent/enroll': 'enroll',
  'POST /api/v1/agent/heartbeat': 'agent',
  'GET /api/v1/agent/commands': 'agent',
  'POST /api/v1/agent/results': 'agent',
  'POST /api/v1/agent/progress': 'agent',

  // Security.
  'GET /api/v1/whoami': 'viewer',
  'POST /api/v1/tokens': 'admin',
  'GET /api/v1/tokens': 'admin',
  'DELETE /api/v1/tokens/:id': 'admin',
  'POST /api/v1/enrollment-tokens': 'admin',
  'GET /api/v1/enrollment-tokens': 'admin',
  'DELETE /api/v1/enrollment-tokens/:id': 'admin',
  'GET /api/v1/audit': 'admin',
};

/** A route's rule; HEAD, which Fastify adds beside every GET, follows its GET. */
export function accessOf(method: string, url: string): Access | undefined {
  return ROUTE_ACCESS[`${method === 'HEAD' ? 'GET' : method} ${url}`];
}
