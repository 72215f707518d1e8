import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { eventMessage, exceptionMessage } from './eventstream.js';
import { Delays, isObject, parseJsonObject, readBody, ScriptPlayer, split, type Script } from './scripted-server.js';

/**
 * A fake Amazon Bedrock Runtime on loopback that speaks the real wire protocol, so that tests drive the
 * real `@aws-sdk/client-bedrock-runtime` (and anything built on it) against scripted model turns:
 *
 * - `POST /model/{modelId}/converse` answers the Converse JSON document;
 * - `POST /model/{modelId}/converse-stream` answers an `application/vnd.amazon.eventstream` body
 *   (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata; or a modelled exception).
 *
 * One port serves both HTTP/1.1 and clear-text HTTP/2 with prior knowledge (what the SDK's default
 * NodeHttp2Handler speaks to an http:// endpoint): each connection's first bytes decide.
 * The server signs nothing and checks no signature.
 */

/** Token counts a turn reports in its metadata / usage. */
export interface BedrockUsage {
  inputTokens: number;
  outputTokens: number;
}

/** One tool call of a turn; `input` is any JSON value (the stream sends it as JSON text in fragments). */
export interface BedrockToolUse {
  name: string;
  input: unknown;
  toolUseId?: string;
}

/** What the model does on one request. */
export type BedrockTurn =
  /** An answer in text; stopReason end_turn unless given (e.g. max_tokens). */
  | { text: string; stopReason?: 'end_turn' | 'max_tokens' | 'stop_sequence'; usage?: BedrockUsage }
  /** Tool calls, after an optional text block; stopReason tool_use. */
  | { toolUse: BedrockToolUse[]; text?: string; usage?: BedrockUsage }
  /** An HTTP error before any stream, e.g. `{ status: 429, type: 'ThrottlingException', message: 'Too many requests' }`. */
  | { httpError: { status: number; type: string; message: string } }
  /**
   * HTTP 200, then (streaming) messageStart, `afterText` if given, and a modelled exception in the stream,
   * e.g. `{ type: 'throttlingException', message: '...' }`. On non-streaming Converse it is the HTTP error instead.
   */
  | { streamException: { type: string; message: string }; afterText?: string }
  /** Waits `delayMs` before answering `then` (to test client timeouts); an aborted request or close() ends the wait. */
  | { delayMs: number; then: BedrockTurn };

/** The Converse / ConverseStream request body as the SDK sends it (the parts tests look at; the rest is kept). */
export interface ConverseRequestBody {
  messages?: { role: string; content: Record<string, unknown>[] }[];
  system?: Record<string, unknown>[];
  toolConfig?: { tools?: { toolSpec?: { name: string; description?: string; inputSchema?: { json?: unknown } } }[]; toolChoice?: unknown };
  inferenceConfig?: { maxTokens?: number; temperature?: number; topP?: number; stopSequences?: string[] };
  [key: string]: unknown;
}

/** Every request the fake received, in order. */
export interface RecordedBedrockRequest {
  method: string;
  /** The path as sent (the model id in it possibly URL-encoded). */
  path: string;
  /** `converse`, `converse-stream`, or null for a path the fake does not serve. */
  operation: 'converse' | 'converse-stream' | null;
  /** The model id, URL-decoded (e.g. `us.amazon.nova-pro-v1:0`), or null. */
  modelId: string | null;
  /** '1.1' or '2.0': the protocol the client spoke. */
  httpVersion: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or null when it was empty or not JSON (see rawBody). */
  body: ConverseRequestBody | null;
  rawBody: string;
}

/** The turns, consumed one per request; or a function that picks each request's turn from its body. */
export type BedrockScript = Script<BedrockTurn, ConverseRequestBody, RecordedBedrockRequest>;

/** The default token counts of a text or tool-use turn. */
export const DEFAULT_BEDROCK_USAGE: BedrockUsage = { inputTokens: 100, outputTokens: 20 };

/** The first bytes of the HTTP/2 connection preface (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0', 'latin1');
const EVENT_STREAM = 'application/vnd.amazon.eventstream';
const ERROR_TYPE_SUFFIX = ':http://internal.amazon.com/coral/com.amazon.bedrock/';

/** The parts of an HTTP/1.1 or HTTP/2 compatibility-API request the fake uses. */
interface Incoming extends AsyncIterable<unknown> {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly httpVersion: string;
}

/** The parts of an HTTP/1.1 or HTTP/2 compatibility-API response the fake uses. */
interface Outgoing {
  writeHead(statusCode: number, headers?: OutgoingHttpHeaders): unknown;
  write(chunk: Uint8Array): boolean;
  end(chunk?: Uint8Array | string): unknown;
  once(event: 'close', listener: () => void): unknown;
  readonly destroyed: boolean;
  readonly writableEnded: boolean;
}

/** A fake Bedrock Runtime endpoint; see the module comment. */
export class FakeBedrock {
  /** Every request received, in order (including ones the script had no turn for). */
  readonly requests: RecordedBedrockRequest[] = [];

  private readonly script: ScriptPlayer<BedrockTurn, ConverseRequestBody, RecordedBedrockRequest>;
  private toolUseCounter = 0;
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.Http2Session>();
  private readonly delays = new Delays();
  private endpoint: string | null = null;

  constructor(script: BedrockScript = []) {
    this.script = new ScriptPlayer('FakeBedrock', script, () => ({}));
    const onRequest = (req: Incoming, res: Outgoing): void => {
      this.handle(req, res).catch((err: unknown) => failInternally(res, err));
    };
    this.h1 = http.createServer(onRequest);
    this.h2 = http2.createServer(onRequest);
    this.h2.on('session', (session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', () => undefined);
    });
    this.tcp = net.createServer((socket) => this.sniff(socket));
  }

  /** Adds turns to a list script (not to a function script). */
  push(...turns: BedrockTurn[]): void {
    this.script.push(...turns);
  }

  /** How many scripted turns are left (Infinity for a function script). */
  get remaining(): number {
    return this.script.remaining;
  }

  /** The endpoint URL (`http://127.0.0.1:PORT`), once started. */
  get url(): string {
    if (this.endpoint === null) throw new Error('FakeBedrock: not started');
    return this.endpoint;
  }

  /** Listens on 127.0.0.1 on a free port; resolves to the endpoint URL to give the client as `endpoint`. */
  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.tcp.once('error', reject);
      this.tcp.listen(0, '127.0.0.1', () => {
        this.tcp.off('error', reject);
        resolve();
      });
    });
    const address = this.tcp.address() as net.AddressInfo;
    this.endpoint = `http://127.0.0.1:${address.port}`;
    return this.endpoint;
  }

  /** Ends pending delays, drops every connection and stops listening. */
  async close(): Promise<void> {
    this.delays.cancelAll();
    for (const session of this.sessions) session.destroy();
    for (const socket of this.sockets) socket.destroy();
    if (!this.tcp.listening) return;
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
  }

  /** Reads a connection's first bytes and hands it to the HTTP/2 server (preface) or the HTTP/1.1 one. */
  private sniff(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, H2_PREFACE.length);
      const h2 = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (h2 && seen.length < H2_PREFACE.length) return;
      // Put the bytes back and hand the socket over. HTTP/2 reads what is buffered when its session starts;
      // the HTTP/1.1 parser reads the socket's handle directly, so the buffered bytes must be let flow to it
      // (resume() delivers them on the next tick, before any further network read).
      socket.off('data', onData);
      socket.pause();
      socket.unshift(seen);
      if (h2) {
        this.h2.emit('connection', socket);
      } else {
        this.h1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  }

  private async handle(req: Incoming, res: Outgoing): Promise<void> {
    const rawBody = await readBody(req);
    const path = req.url ?? '/';
    const match = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(new URL(path, 'http://fake').pathname);
    const record: RecordedBedrockRequest = {
      method: req.method ?? '',
      path,
      operation: match ? (match[2] as 'converse' | 'converse-stream') : null,
      modelId: match?.[1] === undefined ? null : safeDecode(match[1]),
      httpVersion: req.httpVersion,
      headers: req.headers,
      body: parseJsonObject(rawBody),
      rawBody,
    };
    this.requests.push(record);
    if (req.method !== 'POST' || record.operation === null) {
      sendError(res, 404, 'UnknownOperationException', `FakeBedrock serves POST /model/{modelId}/converse and /converse-stream, not ${req.method} ${path}`);
      return;
    }
    let turn: BedrockTurn;
    try {
      turn = this.script.turnFor(record, this.requests.length);
    } catch (err) {
      sendError(res, 500, 'InternalServerException', err instanceof Error ? err.message : String(err));
      return;
    }
    await this.answer(turn, record.operation === 'converse-stream', res);
  }

  private async answer(turn: BedrockTurn, streaming: boolean, res: Outgoing): Promise<void> {
    if ('delayMs' in turn) {
      if (await this.delays.wait(turn.delayMs, res)) await this.answer(turn.then, streaming, res);
      return;
    }
    if (res.destroyed || res.writableEnded) return;
    if ('httpError' in turn) {
      sendError(res, turn.httpError.status, turn.httpError.type, turn.httpError.message);
      return;
    }
    if ('streamException' in turn) {
      const { type, message } = turn.streamException;
      if (!streaming) {
        const [status, name] = httpErrorOf(type);
        sendError(res, status, name, message);
        return;
      }
      res.writeHead(200, { 'content-type': EVENT_STREAM, 'x-amzn-requestid': randomUUID() });
      res.write(eventMessage('messageStart', { role: 'assistant' }));
      if (turn.afterText !== undefined && turn.afterText !== '') {
        for (const piece of split(turn.afterText, 3)) res.write(eventMessage('contentBlockDelta', { contentBlockIndex: 0, delta: { text: piece } }));
      }
      res.end(exceptionMessage(type, message));
      return;
    }
    const text = turn.text ?? '';
    const toolUses = 'toolUse' in turn ? turn.toolUse.map((t) => ({ ...t, toolUseId: t.toolUseId ?? `tooluse_fake${++this.toolUseCounter}` })) : [];
    const stopReason = 'toolUse' in turn ? 'tool_use' : (turn.stopReason ?? 'end_turn');
    const usage = turn.usage ?? DEFAULT_BEDROCK_USAGE;
    const usageBody = { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, totalTokens: usage.inputTokens + usage.outputTokens };
    const withText = 'toolUse' in turn ? text !== '' : true;

    if (!streaming) {
      const content: Record<string, unknown>[] = [];
      if (withText) content.push({ text });
      for (const t of toolUses) content.push({ toolUse: { toolUseId: t.toolUseId, name: t.name, input: t.input ?? {} } });
      sendJson(res, 200, { output: { message: { role: 'assistant', content } }, stopReason, usage: usageBody, metrics: { latencyMs: 42 } });
      return;
    }

    res.writeHead(200, { 'content-type': EVENT_STREAM, 'x-amzn-requestid': randomUUID() });
    res.write(eventMessage('messageStart', { role: 'assistant' }));
    let index = 0;
    if (withText) {
      // As Bedrock does: a text block has no contentBlockStart, only deltas and a stop.
      for (const piece of split(text, 4)) res.write(eventMessage('contentBlockDelta', { contentBlockIndex: index, delta: { text: piece } }));
      res.write(eventMessage('contentBlockStop', { contentBlockIndex: index }));
      index++;
    }
    for (const t of toolUses) {
      res.write(eventMessage('contentBlockStart', { contentBlockIndex: index, start: { toolUse: { toolUseId: t.toolUseId, name: t.name } } }));
      for (const fragment of split(JSON.stringify(t.input ?? {}), 3)) {
        res.write(eventMessage('contentBlockDelta', { contentBlockIndex: index, delta: { toolUse: { input: fragment } } }));
      }
      res.write(eventMessage('contentBlockStop', { contentBlockIndex: index }));
      index++;
    }
    res.write(eventMessage('messageStop', { stopReason }));
    res.end(eventMessage('metadata', { usage: usageBody, metrics: { latencyMs: 42 } }));
  }

}

/** The fixture folder of scripted turns. */
const FIXTURES = new URL('../fixtures/advisor/', import.meta.url);

/** Reads `test/fixtures/advisor/<name>.json`: an array of BedrockTurn (checked, with the offending index on error). */
export function loadTurns(name: string): BedrockTurn[] {
  const file = fileURLToPath(new URL(`${name}.json`, FIXTURES));
  const value: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (!Array.isArray(value)) throw new Error(`${file}: expected an array of turns`);
  return value.map((turn: unknown, i) => checkTurn(turn, `${file}[${i}]`));
}

/** Checks that a value parsed from JSON has the shape of a BedrockTurn. */
function checkTurn(value: unknown, where: string): BedrockTurn {
  const fail = (why: string): never => {
    throw new Error(`${where}: ${why}`);
  };
  if (!isObject(value)) return fail('a turn is an object');
  if ('delayMs' in value) {
    if (typeof value.delayMs !== 'number') fail('delayMs is a number');
    checkTurn(value.then, `${where}.then`);
  } else if ('httpError' in value) {
    const e = value.httpError;
    if (!isObject(e) || typeof e.status !== 'number' || typeof e.type !== 'string' || typeof e.message !== 'string') fail('httpError is { status, type, message }');
  } else if ('streamException' in value) {
    const e = value.streamException;
    if (!isObject(e) || typeof e.type !== 'string' || typeof e.message !== 'string') fail('streamException is { type, message }');
  } else if ('toolUse' in value) {
    if (!Array.isArray(value.toolUse) || !value.toolUse.every((t: unknown) => isObject(t) && typeof t.name === 'string' && 'input' in t)) {
      fail('toolUse is an array of { name, input, toolUseId? }');
    }
  } else if (typeof value.text !== 'string') {
    fail('a turn has text, toolUse, httpError, streamException or delayMs');
  }
  return value as BedrockTurn;
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The HTTP status and error name Converse answers for a stream exception type (e.g. throttlingException → 429 ThrottlingException). */
function httpErrorOf(streamType: string): [number, string] {
  const name = streamType.charAt(0).toUpperCase() + streamType.slice(1);
  const status: Record<string, number> = {
    ThrottlingException: 429,
    ValidationException: 400,
    ModelStreamErrorException: 424,
    ServiceUnavailableException: 503,
    ModelTimeoutException: 408,
  };
  return [status[name] ?? 500, name];
}

function sendJson(res: Outgoing, status: number, body: unknown, headers: OutgoingHttpHeaders = {}): void {
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length, 'x-amzn-requestid': randomUUID(), ...headers });
  res.end(bytes);
}

/** A Bedrock (restJson1) error: the type in `x-amzn-errortype`, the message in the JSON body. */
function sendError(res: Outgoing, status: number, type: string, message: string): void {
  sendJson(res, status, { message }, { 'x-amzn-errortype': `${type}${ERROR_TYPE_SUFFIX}` });
}

/** A failure of the fake itself: a 500 if nothing was sent yet, else the response is cut. */
function failInternally(res: Outgoing, err: unknown): void {
  if (res.destroyed || res.writableEnded) return;
  try {
    sendError(res, 500, 'InternalServerException', `FakeBedrock failed: ${err instanceof Error ? err.message : String(err)}`);
  } catch {
    res.end();
  }
}
