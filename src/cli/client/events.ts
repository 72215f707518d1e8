import { SseParser } from '../../util/sse-parser.js';
import { CliError, EXIT } from './errors.js';
import type { Api } from './http.js';

/** An event of `GET /api/v1/events`: its kind, id and data. */
export interface StreamEvent {
  kind: string;
  id: string;
  data: Record<string, unknown>;
}

export interface FollowOptions {
  /** The `kinds` filter: kinds or families, comma-separated. */
  kinds: string;
  onEvent: (e: StreamEvent) => void;
  /**
   * The stream could not replay what was missed (a `reset`), or was reconnected: what the caller shows
   * should be read again.
   */
  onGap: () => void;
  /** How long the stream may stay lost (every replica tried again and again) before giving up. @default 60000 */
  giveUpAfterMs?: number;
}

/**
 * Follows the event stream: connected once `start` resolves (so that a state read after it misses no event),
 * reconnected after a loss with `Last-Event-ID` (to the next replica when one is gone), and failed (`failed`
 * rejects) after `giveUpAfterMs` without a stream.
 */
export class EventFollower {
  private readonly controller = new AbortController();
  private lastId = '';
  private closed = false;
  private rejectFailed: (err: Error) => void = () => undefined;
  /** Rejects when the stream is lost for good. */
  readonly failed: Promise<never>;

  constructor(
    private readonly api: Api,
    private readonly o: FollowOptions,
  ) {
    this.failed = new Promise<never>((_resolve, reject) => {
      this.rejectFailed = reject;
    });
    // Only a watch that is still running cares; an unawaited rejection must not end the process.
    this.failed.catch(() => undefined);
  }

  /** Opens the stream (an error of the first request, 401 or 404 say, is thrown as is). */
  async start(): Promise<void> {
    const res = await this.api.openStream('/api/v1/events', { kinds: this.o.kinds }, '', this.controller.signal);
    void this.read(res);
  }

  close(): void {
    this.closed = true;
    this.controller.abort();
  }

  private async read(res: Response): Promise<void> {
    let current: Response | null = res;
    let lostSince: number | null = null;
    while (!this.closed) {
      if (current !== null) {
        await this.consume(current);
        if (this.closed) return;
        lostSince ??= Date.now();
      }
      current = null;
      await new Promise((r) => setTimeout(r, 1000));
      if (this.closed) return;
      try {
        current = await this.api.openStream('/api/v1/events', { kinds: this.o.kinds }, this.lastId, this.controller.signal);
        lostSince = null;
        this.o.onGap();
      } catch (err) {
        if (this.closed) return;
        const lostFor = Date.now() - (lostSince ?? Date.now());
        if (lostFor >= (this.o.giveUpAfterMs ?? 60_000)) {
          this.rejectFailed(new CliError(`lost the event stream for ${Math.round(lostFor / 1000)} s: ${err instanceof Error ? err.message : String(err)}`, EXIT.failed));
          return;
        }
      }
    }
  }

  /** Reads one connection's events until it ends. */
  private async consume(res: Response): Promise<void> {
    const parser = new SseParser((e) => {
      this.lastId = e.id;
      if (e.event === 'reset') {
        this.o.onGap();
        return;
      }
      let data: Record<string, unknown>;
      try {
        data = JSON.parse(e.data) as Record<string, unknown>;
      } catch {
        return;
      }
      this.o.onEvent({ kind: e.event, id: e.id, data });
    });
    if (!res.body) return;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
        // A block with only an id (the stream's start) dispatches nothing, but it is where to resume from.
        if (parser.id !== '') this.lastId = parser.id;
      }
    } catch {
      // The connection was lost (or closed by close()).
    }
  }
}
