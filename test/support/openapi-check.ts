import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';

/** The parts of an OpenAPI 3.0 document this checker reads. */
export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes?: Record<string, unknown> };
}

export interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  requestBody?: { required?: boolean; content: Record<string, { schema: unknown }> };
  responses: Record<string, { description: string; headers?: Record<string, { schema: unknown }>; content?: Record<string, { schema: unknown }> }>;
}

/** A response as a client saw it. */
export interface Seen {
  method: string;
  /** The path as sent, with its query string if any. */
  path: string;
  status: number;
  headers: Headers | Record<string, string | undefined>;
  /** The raw body text. */
  text: string;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Checks real answers against the OpenAPI document the server serves: the
 * answer's status must be documented for its operation, its body must match the
 * schema documented for that status (every component resolved from the document),
 * and a documented header must match its schema. Records which operations answered
 * which statuses, so that a test can prove it saw every documented success.
 */
export class OpenApiChecker {
  /** `METHOD /template` → statuses answered and checked. */
  readonly seen = new Map<string, Set<number>>();
  private readonly ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly templates: { method: string; template: string; regex: RegExp; literals: number }[] = [];

  constructor(readonly doc: OpenApiDocument) {
    this.ajv.addFormat('date-time', { type: 'string', validate: (s: string) => DATE_TIME.test(s) && !Number.isNaN(Date.parse(s)) });
    for (const [template, item] of Object.entries(doc.paths)) {
      const segments = template.split('/');
      const regex = new RegExp(`^${segments.map((s) => (/^\{.+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}$`);
      for (const method of Object.keys(item)) {
        if (METHODS.includes(method)) this.templates.push({ method: method.toUpperCase(), template, regex, literals: segments.filter((s) => !s.startsWith('{')).length });
      }
    }
  }

  static async load(base: string): Promise<OpenApiChecker> {
    const res = await fetch(`${base}/openapi.json`);
    if (res.status !== 200) throw new Error(`GET /openapi.json answered ${res.status}`);
    return new OpenApiChecker((await res.json()) as OpenApiDocument);
  }

  /** Every operation, as `METHOD /template`. */
  operations(): string[] {
    return this.templates.map((t) => `${t.method} ${t.template}`);
  }

  operation(key: string): Operation {
    const [method, template] = key.split(' ') as [string, string];
    const op = this.doc.paths[template]?.[method.toLowerCase()];
    if (op === undefined) throw new Error(`no operation ${key}`);
    return op;
  }

  /**
   * The operation a request reaches, as the router picks it: literal segments before parameters. The path
   * is taken as fetch sends it (`..` and `\\` resolved, as WHATWG URLs do).
   */
  match(method: string, path: string): string | undefined {
    const bare = new URL(path, 'http://localhost').pathname;
    const found = this.templates.filter((t) => t.method === method && t.regex.test(bare)).sort((a, b) => b.literals - a.literals)[0];
    return found === undefined ? undefined : `${found.method} ${found.template}`;
  }

  /** A validator for a schema of the document, its references resolved within the document. */
  validator(where: string, schema: unknown): ValidateFunction {
    let v = this.validators.get(where);
    if (v === undefined) {
      v = this.ajv.compile({ ...(schema as object), components: this.doc.components });
      this.validators.set(where, v);
    }
    return v;
  }

  /** What is wrong with an answer, in words; empty when it is what the document says. A request to no operation is not checked. */
  check(seen: Seen): string[] {
    const key = this.match(seen.method, seen.path);
    if (key === undefined) return [];
    const label = `${seen.method} ${seen.path} (${key}) answered ${seen.status}`;
    const response = this.operation(key).responses[String(seen.status)];
    if (response === undefined) return [`${label}, a status the document does not give: ${seen.text.slice(0, 300)}`];
    const statuses = this.seen.get(key) ?? new Set<number>();
    statuses.add(seen.status);
    this.seen.set(key, statuses);
    const problems: string[] = [];
    const header = (name: string): string | undefined => (seen.headers instanceof Headers ? (seen.headers.get(name) ?? undefined) : seen.headers[name]);
    for (const [name, h] of Object.entries(response.headers ?? {})) {
      const value = header(name);
      if (value === undefined) continue;
      const v = this.validator(`${key} ${seen.status} header ${name}`, h.schema);
      const typed = /^-?\d+$/.test(value) ? Number(value) : value;
      if (!v(typed)) problems.push(`${label}: header ${name}: ${value} does not match ${JSON.stringify(h.schema)}`);
    }
    if (header('retry-after') !== undefined && response.headers?.['retry-after'] === undefined) problems.push(`${label}: an undocumented retry-after header`);
    const type = header('content-type') ?? '';
    // A stream (server-sent events) or Prometheus' text is documented by its media type; its body is not JSON.
    const media = type.split(';')[0]?.trim() ?? '';
    if (media !== 'application/json' && response.content?.[media] !== undefined) return problems;
    const schema = response.content?.['application/json']?.schema;
    if (schema === undefined) return [...problems, `${label}: the document gives no JSON body for this status`];
    if (!type.startsWith('application/json')) problems.push(`${label}: content-type ${type}`);
    let body: unknown;
    try {
      body = JSON.parse(seen.text) as unknown;
    } catch {
      return [...problems, `${label}: the body is not JSON: ${seen.text.slice(0, 300)}`];
    }
    const v = this.validator(`${key} ${seen.status}`, schema);
    if (!v(body)) {
      const errs = (v.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || '(body)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
      problems.push(`${label}: the body does not match the documented schema: ${errs.join('; ')}; body: ${seen.text.slice(0, 500)}`);
    }
    return problems;
  }

  /** Whether a request body follows the operation's documented request schema (undefined: the operation takes no body). */
  requestBodyValid(key: string, body: unknown): boolean | undefined {
    const schema = this.operation(key).requestBody?.content['application/json']?.schema;
    if (schema === undefined) return undefined;
    return this.validator(`${key} request`, schema)(body);
  }
}

/**
 * A JSON client like `jsonClient` (server-process.ts) whose every answer is checked against the
 * OpenAPI document the server serves: an answer that differs from it throws, naming the difference.
 */
export function documentedClient(base: () => string, extraHeaders: Record<string, string> = {}): (method: string, path: string, body?: unknown) => Promise<{ status: number; body: Record<string, unknown> }> {
  let checker: Promise<OpenApiChecker> | undefined;
  return async (method, path, body) => {
    const res = await fetch(`${base()}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...extraHeaders },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    checker ??= OpenApiChecker.load(base());
    const problems = (await checker).check({ method, path, status: res.status, headers: res.headers, text });
    if (problems.length > 0) throw new Error(`the answer differs from the OpenAPI document:\n${problems.join('\n')}`);
    return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
  };
}

/**
 * `fetch`, and the answer's text; an event stream stays open, so for one the status and headers are its answer
 * and the text is '' (the request is aborted once its headers are in).
 */
export async function fetchAnswer(url: string, init: RequestInit = {}): Promise<{ res: Response; text: string; type: string }> {
  const controller = new AbortController();
  const res = await fetch(url, { ...init, signal: controller.signal });
  const type = res.headers.get('content-type') ?? '';
  if (type.startsWith('text/event-stream')) {
    controller.abort();
    return { res, text: '', type };
  }
  return { res, text: await res.text(), type };
}
