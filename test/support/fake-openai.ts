import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type net from 'node:net';
import { Delays, parseJsonObject, readBody, ScriptPlayer, split, type Script } from './scripted-server.js';

/**
 * A fake OpenAI-compatible Chat Completions server on loopback (HTTP/1.1) that speaks the real wire
 * protocol, so that tests drive the real `openai` client against scripted model turns.
 *
 * - `POST /v1/chat/completions` answers a `chat.completion` JSON object, or with `"stream": true`
 *   Server-Sent Events: `chat.completion.chunk`s (role, content or tool_call pieces, finish_reason),
 *   a usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`.
 * - `POST /v1/responses` (the Responses API) is refused with 404, and recorded, so tests can assert it is never used.
 *
 * Give the client `baseURL` = the URL start() resolves to (`http://127.0.0.1:PORT/v1`).
 */

/** Token counts a turn reports (`usage.prompt_tokens` / `completion_tokens` on the wire). */
export interface OpenAIUsage {
  promptTokens: number;
  completionTokens: number;
}

/** One tool call of a turn; `arguments` is any JSON value (sent as JSON text), or a string sent as is. */
export interface OpenAIToolCall {
  name: string;
  arguments: unknown;
  id?: string;
}

/** What the model does on one request. */
export type OpenAITurn =
  /** An answer in text; finish_reason stop unless given (e.g. length). */
  | { text: string; finishReason?: 'stop' | 'length'; usage?: OpenAIUsage }
  /** Tool calls, with optional text content before them; finish_reason tool_calls. */
  | { toolCalls: OpenAIToolCall[]; text?: string; usage?: OpenAIUsage }
  /** An HTTP error with OpenAI's error body `{"error":{"message","type","code"}}`, e.g. status 429. */
  | { httpError: { status: number; message: string; type?: string; code?: string } }
  /** Waits `delayMs` before answering `then` (to test client timeouts); an aborted request or close() ends the wait. */
  | { delayMs: number; then: OpenAITurn };

/** A Chat Completions request body (the parts tests look at; the rest is kept). */
export interface ChatCompletionRequestBody {
  model?: string;
  messages?: { role: string; content?: unknown; tool_calls?: unknown[]; tool_call_id?: string }[];
  tools?: { type: string; function: { name: string; description?: string; parameters?: unknown } }[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number;
  max_completion_tokens?: number;
  [key: string]: unknown;
}

/** Every request the fake received, in order. */
export interface RecordedOpenAIRequest {
  method: string;
  path: string;
  /** `chat.completions`, `responses` (refused) or null for anything else. */
  endpoint: 'chat.completions' | 'responses' | null;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or null when it was empty or not JSON (see rawBody). */
  body: ChatCompletionRequestBody | null;
  rawBody: string;
}

/** The turns, consumed one per chat completion request; or a function that picks each request's turn from its body. */
export type OpenAIScript = Script<OpenAITurn, ChatCompletionRequestBody, RecordedOpenAIRequest>;

/** The default token counts of a text or tool-call turn. */
export const DEFAULT_OPENAI_USAGE: OpenAIUsage = { promptTokens: 100, completionTokens: 20 };

/** A fake OpenAI-compatible server; see the module comment. */
export class FakeOpenAI {
  /** Every request received, in order (including refused ones and ones the script had no turn for). */
  readonly requests: RecordedOpenAIRequest[] = [];

  private readonly script: ScriptPlayer<OpenAITurn, ChatCompletionRequestBody, RecordedOpenAIRequest>;
  private callCounter = 0;
  private readonly server: http.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly delays = new Delays();
  private base: string | null = null;

  constructor(script: OpenAIScript = []) {
    this.script = new ScriptPlayer('FakeOpenAI', script, () => ({}));
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendError(res, 500, `FakeOpenAI failed: ${err instanceof Error ? err.message : String(err)}`, 'server_error');
        else res.destroy();
      });
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** Adds turns to a list script (not to a function script). */
  push(...turns: OpenAITurn[]): void {
    this.script.push(...turns);
  }

  /** How many scripted turns are left (Infinity for a function script). */
  get remaining(): number {
    return this.script.remaining;
  }

  /** The base URL (`http://127.0.0.1:PORT/v1`), once started. */
  get url(): string {
    if (this.base === null) throw new Error('FakeOpenAI: not started');
    return this.base;
  }

  /** Listens on 127.0.0.1 on a free port; resolves to the base URL to give the client as `baseURL`. */
  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const address = this.server.address() as net.AddressInfo;
    this.base = `http://127.0.0.1:${address.port}/v1`;
    return this.base;
  }

  /** Ends pending delays, drops every connection and stops listening. */
  async close(): Promise<void> {
    this.delays.cancelAll();
    for (const socket of this.sockets) socket.destroy();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawBody = await readBody(req);
    const path = req.url ?? '/';
    const pathname = new URL(path, 'http://fake').pathname.replace(/\/+$/, '');
    const endpoint = pathname === '/v1/chat/completions' ? 'chat.completions' : pathname === '/v1/responses' ? 'responses' : null;
    const record: RecordedOpenAIRequest = {
      method: req.method ?? '',
      path,
      endpoint,
      headers: req.headers,
      body: parseJsonObject(rawBody),
      rawBody,
    };
    this.requests.push(record);
    if (req.method !== 'POST' || endpoint !== 'chat.completions') {
      const what = endpoint === 'responses' ? 'the Responses API is not served (use Chat Completions)' : `FakeOpenAI serves POST /v1/chat/completions, not ${req.method} ${path}`;
      sendError(res, 404, what, 'invalid_request_error', 'not_found');
      return;
    }
    let turn: OpenAITurn;
    try {
      turn = this.script.turnFor(record, this.requests.length);
    } catch (err) {
      sendError(res, 500, err instanceof Error ? err.message : String(err), 'server_error');
      return;
    }
    await this.answer(turn, record.body ?? {}, res);
  }

  private async answer(turn: OpenAITurn, body: ChatCompletionRequestBody, res: ServerResponse): Promise<void> {
    if ('delayMs' in turn) {
      if (await this.delays.wait(turn.delayMs, res)) await this.answer(turn.then, body, res);
      return;
    }
    if (res.destroyed || res.writableEnded) return;
    if ('httpError' in turn) {
      const { status, message, type, code } = turn.httpError;
      sendError(res, status, message, type ?? defaultErrorType(status), code ?? null);
      return;
    }
    const id = `chatcmpl-fake${randomUUID().replaceAll('-', '').slice(0, 20)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? 'fake-model';
    const text = turn.text ?? '';
    const calls = 'toolCalls' in turn ? turn.toolCalls.map((c) => ({ id: c.id ?? `call_fake${++this.callCounter}`, name: c.name, arguments: argumentsText(c.arguments) })) : [];
    const finishReason = 'toolCalls' in turn ? 'tool_calls' : (turn.finishReason ?? 'stop');
    const u = turn.usage ?? DEFAULT_OPENAI_USAGE;
    const usage = { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens };
    const content = 'toolCalls' in turn && text === '' ? null : text;
    const toolCalls = calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));

    if (body.stream !== true) {
      const message = { role: 'assistant', content, refusal: null, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) };
      sendJson(res, 200, { id, object: 'chat.completion', created, model, choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }], usage });
      return;
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const chunk = (delta: Record<string, unknown>, finish: string | null = null): string =>
      sse({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(includeUsage ? { usage: null } : {}) });
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': `req_${randomUUID()}` });
    res.write(chunk({ role: 'assistant', content: '', refusal: null }));
    if (text !== '') for (const piece of split(text, 4)) res.write(chunk({ content: piece }));
    calls.forEach((c, index) => {
      res.write(chunk({ tool_calls: [{ index, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }] }));
      for (const fragment of split(c.arguments, 3)) res.write(chunk({ tool_calls: [{ index, function: { arguments: fragment } }] }));
    });
    res.write(chunk({}, finishReason));
    if (includeUsage) res.write(sse({ id, object: 'chat.completion.chunk', created, model, choices: [], usage }));
    res.end('data: [DONE]\n\n');
  }

}

function sse(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

function argumentsText(args: unknown): string {
  return typeof args === 'string' ? args : JSON.stringify(args ?? {});
}

function defaultErrorType(status: number): string {
  if (status === 429) return 'rate_limit_exceeded';
  if (status === 401) return 'authentication_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, 'x-request-id': `req_${randomUUID()}`, ...headers });
  res.end(bytes);
}

/** OpenAI's error shape: `{"error":{"message","type","param","code"}}`. */
function sendError(res: ServerResponse, status: number, message: string, type: string, code: string | null = null): void {
  sendJson(res, status, { error: { message, type, param: null, code } });
}
