/**
 * The command line's exit codes (docs/cli.md): every command ends with one of these.
 * - 0: done (a watch: the deployment completed, every task completed);
 * - 1: failed (the server could not be reached, refused the action as things stand (409), failed (5xx), or a
 *   watched deployment or task ended badly);
 * - 2: usage (a bad option or file, or a request the server found invalid: 400);
 * - 3: not found (an unknown id: 404);
 * - 4: refused by authentication (401, 403, or 429 after too many failed authentications).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, auth: 4 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the command line reports in one line on stderr (and `details`, one per line), then exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly details: readonly string[] = [],
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A usage error: exit 2. */
export function usage(message: string): CliError {
  return new CliError(message, EXIT.usage);
}

/** An answer of the API that is an error: its status, code and message. */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string | null,
    message: string,
    exitCode: ExitCode,
    details: readonly string[] = [],
  ) {
    super(message, exitCode, details);
    this.name = 'ApiError';
  }
}

/** The exit code of an API error: 400 → 2, 401/403/429 → 4, 404 (of an id) → 3, anything else → 1. */
export function exitCodeOf(status: number, code: string | null): ExitCode {
  if (status === 400) return EXIT.usage;
  if (status === 401 || status === 403 || (status === 429 && code === 'ORCH_RATE_LIMITED')) return EXIT.auth;
  // ORCH_NOT_FOUND is a route the server does not have (an older server): not an unknown id.
  if (status === 404 && code !== 'ORCH_NOT_FOUND') return EXIT.notFound;
  return EXIT.failed;
}
