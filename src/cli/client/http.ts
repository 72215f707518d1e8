import { ApiError, CliError, EXIT, exitCodeOf, usage } from './errors.js';

/** Where the client commands send their requests, and with which token. */
export interface ClientConfig {
  /** The orchestrator's replicas, tried in order: the next one when one cannot be reached or does not lead. */
  servers: readonly string[];
  /** An API token (`orch_…`, or an ADMIN_TOKEN); null: none (an open API on loopback). */
  token: string | null;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:8000';
/** How long an ordinary request may take. */
export const REQUEST_TIMEOUT_MS = 30_000;

export type Query = Record<string, string | number | boolean | undefined | null>;

export interface RequestOptions {
  body?: unknown;
  query?: Query;
  timeoutMs?: number;
}

/**
 * `--server` (or ORCH_SERVER): one URL, or replicas as `URL,URL`. Each must be http(s); a trailing slash is
 * dropped, and a path is kept (an orchestrator behind a proxy at `/orchestrator`).
 */
export function parseServers(raw: string): string[] {
  const out: string[] = [];
  for (const part of raw.split(',')) {
    const text = part.trim();
    if (text === '') continue;
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      throw usage(`--server: must be an http(s) URL, or several separated by commas (got "${text}")`);
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') {
      throw usage(`--server: must be an http(s) URL without query, fragment or credentials (got "${text}")`);
    }
    out.push(`${u.origin}${u.pathname.replace(/\/+$/, '')}`);
  }
  if (out.length === 0) throw usage('--server: give at least one URL');
  return out;
}

/** A failed fetch in words, and whether the request surely never reached the server (so that another may take it). */
function networkFailure(err: unknown, timeoutMs: number): { text: string; unsent: boolean } {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return { text: `no answer within ${Math.round(timeoutMs / 1000)} s`, unsent: false };
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'no such host',
    EAI_AGAIN: 'the host name could not be resolved',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    EADDRNOTAVAIL: 'address not available',
    UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
    ECONNRESET: 'connection reset',
    UND_ERR_SOCKET: 'connection closed',
  };
  // Failures of the connection itself (and of TLS, which comes before any request): nothing was sent.
  const unsent = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT'].includes(code) || /CERT|SSL|TLS/i.test(code);
  const message = typeof cause?.message === 'string' ? cause.message : err instanceof Error ? err.message : String(err);
  return { text: known[code] ?? (code !== '' ? `${message} (${code})` : message), unsent };
}

/** The query string of `query`, without its undefined and null values. */
export function queryString(query: Query | undefined): string {
  if (query === undefined) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, String(v));
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

/**
 * The orchestrator's HTTP API, as the command line uses it: JSON in and out, the token as a bearer, and
 * replicas tried in turn. A request goes to the replica that answered last; when it cannot be reached, or
 * answers 503 `ORCH_NOT_LEADER` or `ORCH_SHUTTING_DOWN` (nothing was changed), the next one is tried. A
 * change (not a GET) whose request may have reached a replica that then did not answer is never sent again
 * to another: it might have been applied. Errors are `ApiError`s with the command line's exit code.
 */
export class Api {
  private current = 0;

  constructor(readonly config: ClientConfig) {}

  /** The replica requests go to now. */
  get server(): string {
    return this.config.servers[this.current] as string;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, query === undefined ? {} : { query });
  }

  post<T>(path: string, body?: unknown, options: Omit<RequestOptions, 'body'> = {}): Promise<T> {
    return this.request<T>('POST', path, body === undefined ? options : { ...options, body });
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.config.token === null ? {} : { authorization: `Bearer ${this.config.token}` }), ...extra };
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const res = await this.fetchAny(method, path + queryString(options.query), timeoutMs, (signal) => ({
      method,
      headers: this.headers(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal,
    }));
    const text = await res.response.text();
    let json: unknown;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.response.ok) throw this.errorOf(res.server, method, path, res.response, json);
    if (json === undefined) throw new CliError(`${res.server} answered ${method} ${path} with something other than JSON: is it an orchestrator?`, EXIT.failed);
    return json as T;
  }

  /**
   * Opens `GET path` as an event stream on the first replica that serves it. The caller reads `response.body`
   * and aborts `signal` to close it.
   */
  async openStream(path: string, query: Query, lastEventId: string, signal: AbortSignal): Promise<Response> {
    const { response, server } = await this.fetchAny('GET', path + queryString(query), REQUEST_TIMEOUT_MS, (timeout) => ({
      method: 'GET',
      headers: this.headers({ accept: 'text/event-stream', ...(lastEventId === '' ? {} : { 'last-event-id': lastEventId }) }),
      signal: AbortSignal.any([signal, timeout]),
    }), { headersOnly: true });
    if (!response.ok) {
      const text = await response.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      throw this.errorOf(server, 'GET', path, response, json);
    }
    return response;
  }

  /**
   * Sends the request to each replica in turn, from the current one, until one answers with anything but a
   * 503 that says another may serve. `headersOnly`: the timeout covers the headers only (a stream).
   */
  private async fetchAny(method: string, pathAndQuery: string, timeoutMs: number, init: (signal: AbortSignal) => RequestInit, opts: { headersOnly?: boolean } = {}): Promise<{ response: Response; server: string }> {
    const servers = this.config.servers;
    const tried: string[] = [];
    for (let k = 0; k < servers.length; k++) {
      const index = (this.current + k) % servers.length;
      const server = servers[index] as string;
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), timeoutMs);
      let response: Response;
      try {
        response = await fetch(`${server}${pathAndQuery}`, init(controller.signal));
        if (!opts.headersOnly) {
          // Read the body within the same timeout; it is handed on as a fresh Response.
          const body = await response.arrayBuffer();
          response = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
        }
      } catch (err) {
        const failure = networkFailure(controller.signal.aborted ? controller.signal.reason : err, timeoutMs);
        tried.push(`${server} (${failure.text})`);
        // A change that may have reached the server is not sent again elsewhere: it might have been applied.
        if (method !== 'GET' && !failure.unsent) {
          throw new CliError(`${method} ${pathAndQuery} to ${server} failed: ${failure.text}; it may or may not have been applied: check before trying again`, EXIT.failed);
        }
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (response.status === 503) {
        const code = await peekCode(response);
        if (code === 'ORCH_NOT_LEADER' || code === 'ORCH_SHUTTING_DOWN') {
          tried.push(`${server} (503 ${code})`);
          continue;
        }
      }
      this.current = index;
      return { response, server };
    }
    const hint = servers.length > 1 ? 'check that one of them runs and leads' : 'start it (orchestrator serve), or point --server or ORCH_SERVER at it';
    throw new CliError(`cannot reach the orchestrator: ${tried.join(', ')}; ${hint}`, EXIT.failed);
  }

  private errorOf(server: string, method: string, path: string, res: Response, json: unknown): ApiError {
    const body = typeof json === 'object' && json !== null ? (json as Record<string, unknown>) : {};
    const code = typeof body.code === 'string' ? body.code : null;
    const message = typeof body.error === 'string' ? body.error : null;
    const details = Array.isArray(body.errors) ? body.errors.filter((e): e is string => typeof e === 'string') : [];
    const exitCode = exitCodeOf(res.status, code);
    const retry = res.headers.get('retry-after');
    const retryText = retry !== null && /^\d+$/.test(retry) ? `; try again in ${retry} s` : '';
    if (message === null) return new ApiError(res.status, null, `${server} answered ${method} ${path} with HTTP ${res.status} and no error of the orchestrator's: is it an orchestrator?`, EXIT.failed);
    // A message that lists the problems of `errors` says only what was refused; each problem is a line of its own.
    const at = details.length > 0 ? message.indexOf(details[0] as string) : -1;
    const said = at > 0 ? message.slice(0, at).replace(/[:;,\s]+$/, '') : message;
    let text = `${said} (${code ?? `HTTP ${res.status}`})`;
    if (res.status === 401) {
      text = this.config.token === null
        ? `the orchestrator at ${server} needs an API token: pass --token or set ORCH_TOKEN (ORCH_UNAUTHORIZED)`
        : `the orchestrator at ${server} refused the token: it is unknown, revoked or malformed (ORCH_UNAUTHORIZED)`;
    } else if (code === 'ORCH_NOT_FOUND') {
      text = `${server} does not serve ${method} ${path}: ${message} (is it an orchestrator of this version?)`;
    } else if (res.status === 404) {
      text = `${message} (${code ?? 'HTTP 404'}, ${method} ${path})`;
    }
    return new ApiError(res.status, code, `${text}${retryText}`, exitCode, details);
  }
}

/** The error code of a 503's body, leaving the body readable (it was buffered, or is small). */
async function peekCode(res: Response): Promise<string | null> {
  try {
    const json = (await res.clone().json()) as { code?: unknown };
    return typeof json.code === 'string' ? json.code : null;
  } catch {
    return null;
  }
}

/** A path with each segment's id encoded: `path('/api/v1/tasks', id)`. */
export function path(base: string, ...ids: string[]): string {
  return [base, ...ids.map((id) => encodeURIComponent(id))].join('/');
}
