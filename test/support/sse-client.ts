import type { ServerSentEvent } from '../../src/util/sse-parser.js';
import { SseParser } from '../../src/util/sse-parser.js';

export interface SseClient {
  status: number;
  headers: Headers;
  /** Every event received so far. */
  events: ServerSentEvent[];
  /** Raw text received so far (comments included). */
  text(): string;
  /** Resolves with the first event (from the start) that matches, or fails after `timeoutMs`. */
  next(match: (e: ServerSentEvent) => boolean, timeoutMs?: number): Promise<ServerSentEvent>;
  /** Resolves once the server ended the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens `GET url` as an event stream over real HTTP and parses what arrives. */
export async function openEventStream(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const events: ServerSentEvent[] = [];
  let raw = '';
  const waiters = new Set<() => void>();
  const parser = new SseParser((e) => {
    events.push(e);
    for (const w of waiters) w();
  });
  const decoder = new TextDecoder();
  const ended = (async () => {
    if (!res.body) return;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const chunk = decoder.decode(value, { stream: true });
        raw += chunk;
        parser.push(chunk);
        for (const w of waiters) w();
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    events,
    text: () => raw,
    next(match, timeoutMs = 5000) {
      const found = events.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching event within ${timeoutMs} ms; got ${events.map((e) => e.event).join(', ') || 'none'}`));
        }, timeoutMs);
        const check = (): void => {
          const e = events.find(match);
          if (!e) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(e);
        };
        waiters.add(check);
      });
    },
    ended,
    close: () => controller.abort(),
  };
}
