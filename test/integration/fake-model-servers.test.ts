import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { BedrockRuntimeClientConfig, ContentBlock, ConverseStreamOutput, Message, Tool } from '@aws-sdk/client-bedrock-runtime';
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, InternalServerException, ThrottlingException } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttp2Handler, NodeHttpHandler } from '@smithy/node-http-handler';
import OpenAI, { APIConnectionTimeoutError, NotFoundError, RateLimitError } from 'openai';
import type { ChatCompletionTool } from 'openai/resources/chat/completions';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessage, decodeMessages, encodeMessage, EventStreamDecoder, eventMessage, exceptionMessage, payloadJson } from '../support/eventstream.js';
import type { BedrockTurn } from '../support/fake-bedrock.js';
import { FakeBedrock, loadTurns } from '../support/fake-bedrock.js';
import type { OpenAITurn } from '../support/fake-openai.js';
import { FakeOpenAI } from '../support/fake-openai.js';

/**
 * Proves the fake model servers against the real clients: the AWS SDK's BedrockRuntimeClient (over HTTP/2
 * and HTTP/1.1) and the `openai` package, on loopback only.
 */

// The SDK warns once per process, on stderr, that Node 20 will lose support in 2027; keep the test output clean.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const MODEL = 'us.amazon.nova-pro-v1:0';
const SYSTEM = 'You advise on fleet deployments.';
const USER: Message[] = [{ role: 'user', content: [{ text: 'Should deployment dep-1 go on?' }] }];
const TOOLS: Tool[] = [
  {
    toolSpec: {
      name: 'get_deployment',
      description: 'Reads one deployment',
      inputSchema: { json: { type: 'object', properties: { deploymentId: { type: 'string' } }, required: ['deploymentId'] } },
    },
  },
];

/** What a ConverseStream response carried, reassembled. */
interface Collected {
  events: string[];
  text: string;
  toolUses: { toolUseId: string; name: string; input: string }[];
  stopReason: string | undefined;
  usage: { inputTokens?: number; outputTokens?: number; totalTokens?: number } | undefined;
}

/** Reads a ConverseStream response's events; text and tool input are reassembled from their deltas. */
async function collect(stream: AsyncIterable<ConverseStreamOutput> | undefined, into: Collected = emptyCollected()): Promise<Collected> {
  if (stream === undefined) throw new Error('no stream in the response');
  const byIndex = new Map<number, { toolUseId: string; name: string; input: string }>();
  for await (const event of stream) {
    const kind = Object.keys(event).find((k) => event[k as keyof ConverseStreamOutput] !== undefined) ?? '?';
    into.events.push(kind);
    const start = event.contentBlockStart?.start?.toolUse;
    if (start) {
      const use = { toolUseId: start.toolUseId ?? '', name: start.name ?? '', input: '' };
      byIndex.set(event.contentBlockStart?.contentBlockIndex ?? -1, use);
      into.toolUses.push(use);
    }
    const delta = event.contentBlockDelta;
    if (delta?.delta?.text !== undefined) into.text += delta.delta.text;
    const fragment = delta?.delta?.toolUse?.input;
    if (fragment !== undefined) {
      const use = byIndex.get(delta?.contentBlockIndex ?? -1);
      if (use === undefined) throw new Error('a tool input delta without its contentBlockStart');
      use.input += fragment;
    }
    if (event.messageStop) into.stopReason = event.messageStop.stopReason;
    if (event.metadata) into.usage = event.metadata.usage;
  }
  return into;
}

function emptyCollected(): Collected {
  return { events: [], text: '', toolUses: [], stopReason: undefined, usage: undefined };
}

function streamInput(extra: { tools?: boolean } = {}): ConstructorParameters<typeof ConverseStreamCommand>[0] {
  return {
    modelId: MODEL,
    system: [{ text: SYSTEM }],
    messages: USER,
    inferenceConfig: { maxTokens: 500 },
    ...(extra.tools === true ? { toolConfig: { tools: TOOLS } } : {}),
  };
}

/** The ways the SDK can reach the fake: its default handler, and the two Node handlers explicitly. */
const HANDLERS: { name: string; handler: () => BedrockRuntimeClientConfig['requestHandler']; protocol: string | null }[] = [
  { name: 'the default request handler', handler: () => undefined, protocol: null },
  { name: 'an explicit NodeHttp2Handler (h2c)', handler: () => new NodeHttp2Handler(), protocol: '2.0' },
  { name: 'an explicit NodeHttpHandler (HTTP/1.1)', handler: () => new NodeHttpHandler(), protocol: '1.1' },
];

describe.each(HANDLERS)('FakeBedrock with BedrockRuntimeClient and $name', ({ handler, protocol }) => {
  let fake: FakeBedrock;
  let client: BedrockRuntimeClient;

  async function serve(script: BedrockTurn[] | ConstructorParameters<typeof FakeBedrock>[0]): Promise<void> {
    fake = new FakeBedrock(script);
    const endpoint = await fake.start();
    const requestHandler = handler();
    client = new BedrockRuntimeClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' },
      maxAttempts: 1,
      ...(requestHandler === undefined ? {} : { requestHandler }),
    });
  }

  afterEach(async () => {
    client?.destroy();
    await fake?.close();
  });

  it('streams a text answer and records what the client sent', async () => {
    await serve([{ text: 'Hold the rollout: the canary ring is failing.', usage: { inputTokens: 321, outputTokens: 12 } }]);
    const response = await client.send(new ConverseStreamCommand(streamInput()));
    const got = await collect(response.stream);
    expect(got.text).toBe('Hold the rollout: the canary ring is failing.');
    expect(got.events[0]).toBe('messageStart');
    expect(got.events.filter((e) => e === 'contentBlockDelta').length).toBeGreaterThan(1);
    expect(got.stopReason).toBe('end_turn');
    expect(got.usage).toEqual({ inputTokens: 321, outputTokens: 12, totalTokens: 333 });

    expect(fake.requests).toHaveLength(1);
    const request = fake.requests[0];
    expect(request?.operation).toBe('converse-stream');
    expect(request?.modelId).toBe(MODEL);
    expect(request?.path).toMatch(/^\/model\/us\.amazon\.nova-pro-v1(%3A|:)0\/converse-stream$/);
    expect(request?.body?.system).toEqual([{ text: SYSTEM }]);
    expect(request?.body?.messages).toEqual(USER);
    expect(request?.body?.inferenceConfig?.maxTokens).toBe(500);
    expect(request?.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\//);
    if (protocol === null) expect(['1.1', '2.0']).toContain(request?.httpVersion);
    else expect(request?.httpVersion).toBe(protocol);
  });

  it('streams tool use with the input JSON in fragments, and records the toolConfig', async () => {
    await serve([{ text: 'Looking.', toolUse: [{ name: 'get_deployment', input: { deploymentId: 'dep-1', verbose: true }, toolUseId: 'tooluse_1' }] }]);
    const response = await client.send(new ConverseStreamCommand(streamInput({ tools: true })));
    const got = await collect(response.stream);
    expect(got.text).toBe('Looking.');
    expect(got.stopReason).toBe('tool_use');
    expect(got.toolUses).toHaveLength(1);
    expect(got.toolUses[0]?.name).toBe('get_deployment');
    expect(got.toolUses[0]?.toolUseId).toBe('tooluse_1');
    expect(JSON.parse(got.toolUses[0]?.input ?? '')).toEqual({ deploymentId: 'dep-1', verbose: true });
    expect(got.events).toEqual([
      'messageStart',
      ...Array<string>(got.events.indexOf('contentBlockStop') - 1).fill('contentBlockDelta'),
      'contentBlockStop',
      'contentBlockStart',
      'contentBlockDelta',
      'contentBlockDelta',
      'contentBlockDelta',
      'contentBlockStop',
      'messageStop',
      'metadata',
    ]);
    expect(fake.requests[0]?.body?.toolConfig?.tools?.map((t) => t.toolSpec?.name)).toEqual(['get_deployment']);
  });

  it('answers an HTTP 429 that the SDK throws as ThrottlingException', async () => {
    await serve([{ httpError: { status: 429, type: 'ThrottlingException', message: 'Too many requests, please wait.' } }]);
    const error: unknown = await client.send(new ConverseStreamCommand(streamInput())).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ThrottlingException);
    expect(error).toMatchObject({ name: 'ThrottlingException', message: 'Too many requests, please wait.', $metadata: { httpStatusCode: 429 } });
  });

  it('sends a throttlingException inside the stream, after some text', async () => {
    await serve([{ streamException: { type: 'throttlingException', message: 'Slow down in-stream.' }, afterText: 'Partial answer' }]);
    const response = await client.send(new ConverseStreamCommand(streamInput()));
    const got = emptyCollected();
    const error: unknown = await collect(response.stream, got).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ThrottlingException);
    expect(error).toMatchObject({ name: 'ThrottlingException', message: 'Slow down in-stream.' });
    expect(got.events[0]).toBe('messageStart');
    expect(got.text).toBe('Partial answer');
  });

  it('answers non-streaming Converse with text and with tool use', async () => {
    await serve([{ text: 'All stages are healthy.' }, { toolUse: [{ name: 'get_deployment', input: { deploymentId: 'dep-2' } }] }]);
    const first = await client.send(new ConverseCommand({ modelId: MODEL, system: [{ text: SYSTEM }], messages: USER }));
    expect(first.output?.message?.content).toEqual([{ text: 'All stages are healthy.' }]);
    expect(first.stopReason).toBe('end_turn');
    expect(first.usage).toEqual({ inputTokens: 100, outputTokens: 20, totalTokens: 120 });

    const second = await client.send(new ConverseCommand({ modelId: MODEL, messages: USER, toolConfig: { tools: TOOLS } }));
    expect(second.stopReason).toBe('tool_use');
    const use = second.output?.message?.content?.[0]?.toolUse;
    expect(use?.name).toBe('get_deployment');
    expect(use?.input).toEqual({ deploymentId: 'dep-2' });
    expect(use?.toolUseId).toMatch(/^tooluse_/);
    expect(fake.requests.map((r) => r.operation)).toEqual(['converse', 'converse']);
    expect(fake.requests[1]?.body?.toolConfig?.tools?.[0]?.toolSpec?.name).toBe('get_deployment');
  });

  it('delays a turn: an AbortSignal ends the call, a longer wait gets the answer', async () => {
    await serve([{ delayMs: 10_000, then: { text: 'too late' } }, { delayMs: 50, then: { text: 'in time' } }]);
    const started = Date.now();
    const error: unknown = await client.send(new ConverseStreamCommand(streamInput()), { abortSignal: AbortSignal.timeout(200) }).catch((err: unknown) => err);
    expect(error).toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(5000);

    const response = await client.send(new ConverseStreamCommand(streamInput()));
    expect((await collect(response.stream)).text).toBe('in time');
  });

  it('answers HTTP 500 InternalServerException once the script is exhausted', async () => {
    await serve([]);
    const error: unknown = await client.send(new ConverseStreamCommand(streamInput())).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(InternalServerException);
    expect((error as Error).message).toMatch(/FakeBedrock: script exhausted/);
  });

  it('takes a function that picks the turn from the request body', async () => {
    await serve((body) => {
      const last = body.messages?.at(-1)?.content.at(-1);
      return last !== undefined && 'toolResult' in last ? { text: 'Done, thanks for the result.' } : { toolUse: [{ name: 'get_deployment', input: {} }] };
    });
    const first = await collect((await client.send(new ConverseStreamCommand(streamInput({ tools: true })))).stream);
    const use = first.toolUses[0];
    expect(use?.name).toBe('get_deployment');
    expect(JSON.parse(use?.input ?? '')).toEqual({});

    const assistant: ContentBlock[] = [{ toolUse: { toolUseId: use?.toolUseId ?? '', name: 'get_deployment', input: {} } }];
    const messages: Message[] = [
      ...USER,
      { role: 'assistant', content: assistant },
      { role: 'user', content: [{ toolResult: { toolUseId: use?.toolUseId ?? '', content: [{ json: { state: 'running' } }] } }] },
    ];
    const second = await collect((await client.send(new ConverseStreamCommand({ ...streamInput({ tools: true }), messages }))).stream);
    expect(second.text).toBe('Done, thanks for the result.');
  });

  it('plays a fixture file: a tool call, then the answer', async () => {
    await serve(loadTurns('bedrock-tool-then-answer'));
    const first = await collect((await client.send(new ConverseStreamCommand(streamInput({ tools: true })))).stream);
    expect(first.toolUses.map((u) => [u.name, JSON.parse(u.input) as unknown])).toEqual([['get_deployment', { deploymentId: 'dep-1' }]]);
    expect(first.usage?.inputTokens).toBe(850);
    const second = await collect((await client.send(new ConverseStreamCommand(streamInput({ tools: true })))).stream);
    expect(second.text).toMatch(/^Halt the rollout/);
    expect(fake.remaining).toBe(0);
  });
});

describe('FakeBedrock on the wire', () => {
  let fake: FakeBedrock | undefined;
  afterEach(async () => {
    await fake?.close();
  });

  it('frames each event with the event-stream headers and a URL-encoded model id is decoded', async () => {
    fake = new FakeBedrock([{ toolUse: [{ name: 't', input: { a: 'é'.repeat(10) } }] }]);
    const url = await fake.start();
    const res = await fetch(`${url}/model/${encodeURIComponent('anthropic.claude-3:0')}/converse-stream`, { method: 'POST', body: '{"messages":[]}' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/vnd.amazon.eventstream');
    const messages = decodeMessages(new Uint8Array(await res.arrayBuffer()));
    expect(messages.map((m) => m.headers[':event-type'])).toEqual([
      'messageStart',
      'contentBlockStart',
      'contentBlockDelta',
      'contentBlockDelta',
      'contentBlockDelta',
      'contentBlockStop',
      'messageStop',
      'metadata',
    ]);
    for (const m of messages) expect(m.headers).toMatchObject({ ':content-type': 'application/json', ':message-type': 'event' });
    expect(messages.slice(1, 2).map(payloadJson)).toMatchObject([{ contentBlockIndex: 0, start: { toolUse: { name: 't' } } }]);
    expect(fake.requests[0]?.modelId).toBe('anthropic.claude-3:0');
    expect(fake.requests[0]?.httpVersion).toBe('1.1');
  });

  it('answers 404 on a path it does not serve, and records it', async () => {
    fake = new FakeBedrock([{ text: 'unused' }]);
    const url = await fake.start();
    const res = await fetch(`${url}/model/m/invoke`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(404);
    expect(res.headers.get('x-amzn-errortype')).toMatch(/^UnknownOperationException:/);
    expect(fake.requests[0]?.operation).toBeNull();
    expect(fake.remaining).toBe(1);
  });

  it('ends a pending delayed request on close()', async () => {
    fake = new FakeBedrock([{ delayMs: 60_000, then: { text: 'never' } }]);
    const url = await fake.start();
    const pending = fetch(`${url}/model/m/converse`, { method: 'POST', body: '{}' }).then(
      () => 'answered',
      () => 'failed',
    );
    while (fake.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
    await fake.close();
    expect(await pending).toBe('failed');
  });
});

describe('event-stream codec', () => {
  it('round-trips every header type and checks both CRCs', () => {
    const when = new Date(1_700_000_000_000);
    const bytes = encodeMessage({ s: 'text', t: true, f: false, i: -7, l: 1n << 40n, b: new Uint8Array([1, 2, 3]), d: when }, '{"x":1}');
    const message = decodeMessage(bytes);
    expect(message.headers).toEqual({ s: 'text', t: true, f: false, i: -7, l: 1n << 40n, b: new Uint8Array([1, 2, 3]), d: when });
    expect(payloadJson(message)).toEqual({ x: 1 });

    const corrupt = Buffer.from(bytes);
    corrupt[corrupt.length - 6] = (corrupt[corrupt.length - 6] ?? 0) ^ 0xff;
    expect(() => decodeMessage(corrupt)).toThrow(/message CRC/);
    corrupt[5] = (corrupt[5] ?? 0) ^ 0xff;
    expect(() => decodeMessage(corrupt)).toThrow(/prelude CRC/);
  });

  it('reassembles messages split across chunks', () => {
    const stream = Buffer.concat([eventMessage('messageStart', { role: 'assistant' }), exceptionMessage('throttlingException', 'slow')]);
    const decoder = new EventStreamDecoder();
    const out = [...decoder.push(stream.subarray(0, 5)), ...decoder.push(stream.subarray(5, 60)), ...decoder.push(stream.subarray(60))];
    decoder.end();
    expect(out.map((m) => m.headers[':message-type'])).toEqual(['event', 'exception']);
    expect(out[1]?.headers[':exception-type']).toBe('throttlingException');
    expect(out.slice(1).map(payloadJson)).toEqual([{ message: 'slow' }]);
  });
});

describe('FakeOpenAI with the openai client', () => {
  let fake: FakeOpenAI;
  let client: OpenAI;
  const tools: ChatCompletionTool[] = [
    { type: 'function', function: { name: 'get_deployment', description: 'Reads one deployment', parameters: { type: 'object', properties: { deploymentId: { type: 'string' } } } } },
  ];
  const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
    { role: 'system', content: SYSTEM },
    { role: 'user', content: 'Should deployment dep-1 go on?' },
  ];

  async function serve(script: OpenAITurn[]): Promise<void> {
    fake = new FakeOpenAI(script);
    client = new OpenAI({ baseURL: await fake.start(), apiKey: 'x', maxRetries: 0 });
  }

  afterEach(async () => {
    await fake?.close();
  });

  /** Streams one completion and reassembles content, tool calls, finish reason and usage. */
  async function streamed() {
    const stream = await client.chat.completions.create({ model: 'qwen2.5:7b', messages, tools, stream: true, stream_options: { include_usage: true } });
    let content = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let emptyChoiceChunks = 0;
    const calls: { id: string; name: string; arguments: string }[] = [];
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      if (chunk.choices.length === 0) emptyChoiceChunks++;
      for (const choice of chunk.choices) {
        content += choice.delta.content ?? '';
        for (const call of choice.delta.tool_calls ?? []) {
          const entry = (calls[call.index] ??= { id: '', name: '', arguments: '' });
          entry.id += call.id ?? '';
          entry.name += call.function?.name ?? '';
          entry.arguments += call.function?.arguments ?? '';
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    return { content, finish, usage, emptyChoiceChunks, calls };
  }

  it('streams text with a usage chunk, and records the request', async () => {
    await serve([{ text: 'Hold the rollout: the canary ring is failing.', usage: { promptTokens: 400, completionTokens: 11 } }]);
    const got = await streamed();
    expect(got.content).toBe('Hold the rollout: the canary ring is failing.');
    expect(got.finish).toBe('stop');
    expect(got.usage).toEqual({ prompt_tokens: 400, completion_tokens: 11, total_tokens: 411 });
    expect(got.emptyChoiceChunks).toBe(1);
    const request = fake.requests[0];
    expect(request?.endpoint).toBe('chat.completions');
    expect(request?.body?.model).toBe('qwen2.5:7b');
    expect(request?.body?.stream_options).toEqual({ include_usage: true });
    expect(request?.body?.messages?.[0]).toEqual({ role: 'system', content: SYSTEM });
    expect(request?.body?.tools?.map((t) => t.function.name)).toEqual(['get_deployment']);
    expect(request?.headers.authorization).toBe('Bearer x');
  });

  it('streams tool calls whose arguments arrive in fragments', async () => {
    await serve([
      {
        toolCalls: [
          { name: 'get_deployment', arguments: { deploymentId: 'dep-1' }, id: 'call_1' },
          { name: 'get_deployment', arguments: { deploymentId: 'dep-2' } },
        ],
      },
    ]);
    const got = await streamed();
    expect(got.finish).toBe('tool_calls');
    expect(got.content).toBe('');
    expect(got.calls.map((c) => c.name)).toEqual(['get_deployment', 'get_deployment']);
    expect(got.calls[0]?.id).toBe('call_1');
    expect(got.calls[1]?.id).toMatch(/^call_/);
    expect(got.calls.map((c) => JSON.parse(c.arguments) as unknown)).toEqual([{ deploymentId: 'dep-1' }, { deploymentId: 'dep-2' }]);
    expect(got.usage?.total_tokens).toBe(120);
  });

  it('answers 429 that the client throws as RateLimitError', async () => {
    await serve([{ httpError: { status: 429, message: 'Rate limit reached', code: 'rate_limit_exceeded' } }]);
    const error: unknown = await client.chat.completions.create({ model: 'm', messages }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error).toMatchObject({ status: 429, code: 'rate_limit_exceeded', type: 'rate_limit_exceeded' });
    expect((error as Error).message).toContain('Rate limit reached');
    expect(fake.requests).toHaveLength(1);
  });

  it('answers without streaming: text, then tool calls', async () => {
    await serve([{ text: 'All good.', finishReason: 'length' }, { toolCalls: [{ name: 'get_deployment', arguments: { deploymentId: 'dep-3' } }], text: 'Checking.' }]);
    const first = await client.chat.completions.create({ model: 'm', messages });
    expect(first.object).toBe('chat.completion');
    expect(first.choices[0]?.message.content).toBe('All good.');
    expect(first.choices[0]?.finish_reason).toBe('length');
    expect(first.usage).toEqual({ prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 });

    const second = await client.chat.completions.create({ model: 'm', messages, tools });
    const call = second.choices[0]?.message.tool_calls?.[0];
    expect(second.choices[0]?.finish_reason).toBe('tool_calls');
    expect(second.choices[0]?.message.content).toBe('Checking.');
    expect(call?.type === 'function' ? [call.function.name, JSON.parse(call.function.arguments) as unknown] : null).toEqual(['get_deployment', { deploymentId: 'dep-3' }]);
  });

  it('refuses the Responses API with 404 and records it', async () => {
    await serve([{ text: 'unused' }]);
    const error: unknown = await client.responses.create({ model: 'm', input: 'hi' }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(NotFoundError);
    expect(fake.requests.map((r) => r.endpoint)).toEqual(['responses']);
    expect(fake.remaining).toBe(1);
  });

  it('delays a turn past the client timeout', async () => {
    await serve([{ delayMs: 10_000, then: { text: 'too late' } }]);
    const error: unknown = await client.chat.completions.create({ model: 'm', messages }, { timeout: 200 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(APIConnectionTimeoutError);
  });

  it('answers 500 with a clear message once the script is exhausted', async () => {
    await serve([]);
    const error: unknown = await client.chat.completions.create({ model: 'm', messages }).catch((err: unknown) => err);
    expect(error).toMatchObject({ status: 500 });
    expect((error as Error).message).toMatch(/FakeOpenAI: script exhausted/);
  });
});

describe('closing', () => {
  it('leaves nothing that keeps a process alive, even with requests pending', async () => {
    const bedrock = fileURLToPath(new URL('../support/fake-bedrock.ts', import.meta.url));
    const openai = fileURLToPath(new URL('../support/fake-openai.ts', import.meta.url));
    // A child process starts both fakes, leaves a request waiting on each, closes them and must then exit on its own.
    const code = `
      const { FakeBedrock } = await import(${JSON.stringify(bedrock)});
      const { FakeOpenAI } = await import(${JSON.stringify(openai)});
      const b = new FakeBedrock([{ delayMs: 600000, then: { text: 'x' } }]);
      const o = new FakeOpenAI([{ delayMs: 600000, then: { text: 'x' } }]);
      const bu = await b.start(), ou = await o.start();
      const done = Promise.allSettled([
        fetch(bu + '/model/m/converse', { method: 'POST', body: '{}' }),
        fetch(ou + '/chat/completions', { method: 'POST', body: '{}' }),
      ]);
      while (b.requests.length + o.requests.length < 2) await new Promise((r) => setTimeout(r, 10));
      await Promise.all([b.close(), o.close()]);
      await done;
    `;
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: 20_000 }, (err, _stdout, stderr) =>
        err ? reject(new Error(`the child did not exit cleanly (${err.message}): ${stderr}`)) : resolve(),
      );
    });
    expect(Date.now() - started).toBeLessThan(20_000);
  });
});
