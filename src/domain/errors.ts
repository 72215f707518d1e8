/**
 * Every error the orchestrator reports on purpose, with a stable code and the
 * HTTP status it maps to. The API's error handler is the only place that turns
 * these into responses; anything else that escapes is a bug (500).
 */
export const ERROR_CODES = {
  ORCH_VALIDATION: 400,
  ORCH_INVALID_JSON: 400,
  ORCH_EMPTY_PAYLOAD: 400,
  ORCH_UNKNOWN_TASK_TYPE: 400,
  ORCH_UNKNOWN_RING: 400,
  ORCH_UNAUTHORIZED: 401,
  ORCH_ENROLL_REFUSED: 403,
  ORCH_FORBIDDEN: 403,
  ORCH_NOT_FOUND: 404,
  ORCH_TOKEN_NOT_FOUND: 404,
  ORCH_DEVICE_NOT_FOUND: 404,
  ORCH_TASK_NOT_FOUND: 404,
  ORCH_AGENT_NOT_FOUND: 404,
  ORCH_ASSET_NOT_FOUND: 404,
  ORCH_DEPLOYMENT_NOT_FOUND: 404,
  ORCH_DEPLOYMENT_EXISTS: 409,
  ORCH_DEPLOYMENT_NOT_ACTIVE: 409,
  ORCH_DEPLOYMENT_STATE: 409,
  ORCH_STALE_ATTEMPT: 409,
  ORCH_TASK_STATE: 409,
  ORCH_DEVICE_HELD: 409,
  ORCH_AGENT_IDENTITY: 409,
  /** The body did not arrive within REQUEST_TIMEOUT; the connection (HTTP/1) or stream (HTTP/2) is closed. */
  ORCH_REQUEST_TIMEOUT: 408,
  ORCH_PAYLOAD_TOO_LARGE: 413,
  ORCH_URI_TOO_LONG: 414,
  ORCH_UNSUPPORTED_MEDIA_TYPE: 415,
  ORCH_RATE_LIMITED: 429,
  ORCH_SHUTTING_DOWN: 503,
  /** The store cannot commit (disk full, I/O error, database unreachable): nothing was changed; retry later. */
  ORCH_STORAGE_UNAVAILABLE: 503,
  ORCH_INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class OrchestratorError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra fields for the error body (for example every problem of a configuration). */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'OrchestratorError';
    this.code = code;
    this.status = ERROR_CODES[code];
    this.details = details;
  }
}
