/**
 * Every error the orchestrator reports on purpose, in one table: its stable code, the HTTP status it maps
 * to, what it means (the words of the API reference), the message its common cases share (`message`,
 * written once here: `OrchestratorError.of`), and the client errors of Fastify that are this error
 * (`fastify`). The API's error handler is the only place that turns these into responses; anything else that
 * escapes is a bug (500).
 */
export const ERRORS = {
  ORCH_VALIDATION: { status: 400, meaning: 'a field is missing, of the wrong type, out of range or unknown; an id with a slash, backslash or control character; a URL that does not decode', fastify: ['FST_ERR_CTP_INVALID_CONTENT_LENGTH', 'FST_ERR_INVALID_URL', 'FST_ERR_BAD_URL', 'FST_ERR_ASYNC_CONSTRAINT'] },
  ORCH_INVALID_JSON: { status: 400, meaning: 'the body is not JSON', message: () => 'invalid json', fastify: ['FST_ERR_CTP_INVALID_JSON_BODY'] },
  ORCH_EMPTY_PAYLOAD: { status: 400, meaning: 'no body, or `{}`', message: () => 'empty payload', fastify: ['FST_ERR_CTP_EMPTY_JSON_BODY'] },
  ORCH_UNKNOWN_TASK_TYPE: { status: 400, meaning: 'a task type that is not one of the five' },
  ORCH_UNKNOWN_RING: { status: 400, meaning: 'a ring that is not configured' },
  ORCH_UNAUTHORIZED: { status: 401, meaning: 'no credential, or a malformed, unknown or revoked one' },
  ORCH_ENROLL_REFUSED: { status: 403, meaning: 'an enrollment token that is unknown, revoked, expired or used up', message: () => 'enrollment token not accepted' },
  ORCH_FORBIDDEN: { status: 403, meaning: "a valid token without the route's role, or an agent's credential on an operator route" },
  ORCH_NOT_FOUND: { status: 404, meaning: 'no such route or action' },
  ORCH_TOKEN_NOT_FOUND: { status: 404, meaning: 'no such API or enrollment token' },
  ORCH_DEVICE_NOT_FOUND: { status: 404, meaning: 'no such device', message: (id: string) => `device ${id} not found` },
  ORCH_TASK_NOT_FOUND: { status: 404, meaning: 'no such task (or, for an agent, not one of its own)', message: () => 'task not found' },
  ORCH_AGENT_NOT_FOUND: { status: 404, meaning: 'no such agent, or a decommissioned one', message: (id: string) => `agent ${id} not found` },
  ORCH_ASSET_NOT_FOUND: { status: 404, meaning: 'no such asset', message: () => 'asset not found' },
  ORCH_DEPLOYMENT_NOT_FOUND: { status: 404, meaning: 'no such deployment', message: (id: string) => `deployment ${id} not found` },
  ORCH_DASHBOARD_NOT_BUILT: { status: 404, meaning: 'the dashboard was not built (`npm run build` builds it); the API works without it' },
  ORCH_ADVICE_NOT_FOUND: { status: 404, meaning: 'no such advice', message: (id: string) => `advice ${id} not found` },
  ORCH_ADVICE_APPLIED: { status: 409, meaning: 'the advice was applied already', message: (id: string) => `advice ${id} was applied already` },
  ORCH_DEPLOYMENT_EXISTS: { status: 409, meaning: 'a deployment with this id exists', message: (id: string) => `deployment ${id} already exists` },
  ORCH_DEPLOYMENT_NOT_ACTIVE: { status: 409, meaning: 'the deployment is not active' },
  ORCH_DEPLOYMENT_STATE: { status: 409, meaning: 'the deployment is not in a state this applies to' },
  ORCH_STALE_ATTEMPT: { status: 409, meaning: "the attempt is no longer the task's current one" },
  ORCH_TASK_STATE: { status: 409, meaning: 'the task is not in a state this applies to' },
  ORCH_DEVICE_HELD: { status: 409, meaning: 'the device is held by a rule and belongs to no ring' },
  ORCH_AGENT_IDENTITY: { status: 409, meaning: 'the agent id is not an enrolled network agent, or its credential differs' },
  ORCH_REQUEST_TIMEOUT: { status: 408, meaning: 'the body did not arrive within REQUEST_TIMEOUT (default 30 s); the connection or stream is closed' },
  ORCH_PAYLOAD_TOO_LARGE: { status: 413, meaning: 'the body is larger than 1 MiB', message: () => 'request body is larger than the 1 MiB limit', fastify: ['FST_ERR_CTP_BODY_TOO_LARGE'] },
  ORCH_URI_TOO_LONG: { status: 414, meaning: 'a path segment is longer than 256 characters' },
  ORCH_UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'an unsupported content type', fastify: ['FST_ERR_CTP_INVALID_MEDIA_TYPE'] },
  ORCH_RATE_LIMITED: { status: 429, meaning: 'too many failed authentications or enrollments from this address; `retry-after` says when to come back' },
  ORCH_SHUTTING_DOWN: { status: 503, meaning: 'the orchestrator is stopping', message: () => 'the orchestrator is not running' },
  ORCH_STORAGE_UNAVAILABLE: { status: 503, meaning: 'the store cannot commit (nothing was changed); retry after `retry-after` seconds' },
  ORCH_NOT_LEADER: { status: 503, meaning: 'this replica does not lead (it was deposed, or no leader is known yet); retry after `retry-after` seconds, here or at the leader' },
  ORCH_INTERNAL: { status: 500, meaning: 'a bug' },
} as const satisfies Record<string, ErrorSpec>;

interface ErrorSpec {
  status: number;
  meaning: string;
  message?: (...args: never[]) => string;
  fastify?: readonly string[];
}

export type ErrorCode = keyof typeof ERRORS;

/** The codes whose message is written in the table. */
type Templated = { [K in ErrorCode]: (typeof ERRORS)[K] extends { message: (...args: never[]) => string } ? K : never }[ErrorCode];
type TemplateArgs<K extends Templated> = (typeof ERRORS)[K] extends { message: (...args: infer A) => string } ? A : never;

/** The HTTP status of each code. */
export const ERROR_CODES = Object.fromEntries(Object.entries(ERRORS).map(([code, spec]) => [code, spec.status])) as { readonly [K in ErrorCode]: (typeof ERRORS)[K]['status'] };

export class OrchestratorError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra fields for the error body (for example every problem of a configuration). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'OrchestratorError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }

  /** The error of a code whose message the table writes (`ERRORS[code].message`). */
  static of<K extends Templated>(code: K, ...args: TemplateArgs<K>): OrchestratorError {
    const message = (ERRORS[code] as { message: (...a: TemplateArgs<K>) => string }).message(...args);
    return new OrchestratorError(code, message);
  }
}
