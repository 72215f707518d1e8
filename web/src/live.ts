import { SseParser } from '../../src/util/sse-parser';
import { authHeaders } from './api';

/** An event of the orchestrator's stream: its kind and its fields (`at`: when, ms since the epoch). */
export interface LiveEvent {
  kind: string;
  id: string;
  data: Record<string, unknown> & { at: number };
}

/** What a listener is told: the events of its kinds since the last batch, or that it should reload (`reset`). */
export type LiveListener = (events: LiveEvent[], reset: boolean) => void;

interface Registration {
  /** Kind prefixes: `task` hears every task event, `task.completed` only that one. */
  kinds: string[];
  listener: LiveListener;
}

/** Events are handed to listeners together, at most this often: a burst is one update. */
const BATCH_MS = 250;

/** `idle`: nothing shown follows the orchestrator's events, so no stream is open. */
export type LiveStatus = 'connecting' | 'live' | 'paused' | 'offline' | 'idle';

/**
 * The one event stream of the dashboard (`GET /api/v1/events`), shared by every view: read with fetch, so
 * that it carries the session's token, resumed from the last event id after a lost connection, closed while
 * the tab is hidden and resumed when it shows again. Bursts are batched.
 */
class LiveStream {
  private readonly registrations = new Set<Registration>();
  private readonly statusListeners = new Set<(s: LiveStatus) => void>();
  private controller: AbortController | null = null;
  private lastId = '';
  private pending: LiveEvent[] = [];
  private pendingReset = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  /** The kinds the open stream asked for. */
  private kinds = '';
  private kindsTimer: ReturnType<typeof setTimeout> | null = null;
  status: LiveStatus = 'connecting';

  constructor() {
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) this.stop('paused');
      else this.start();
    });
  }

  listen(kinds: string[], listener: LiveListener): () => void {
    const reg = { kinds, listener };
    this.registrations.add(reg);
    this.kindsChanged();
    return () => {
      this.registrations.delete(reg);
      this.kindsChanged();
    };
  }

  /** The kinds the views shown now listen to: the stream asks for those only (a view that leaves stops its kinds). */
  private wanted(): string {
    return [...new Set([...this.registrations].flatMap((r) => r.kinds))].sort().join(',');
  }

  private kindsChanged(): void {
    // Views mount and unmount together on a navigation: the stream is re-opened once, after them, and resumes.
    if (this.kindsTimer) clearTimeout(this.kindsTimer);
    this.kindsTimer = setTimeout(() => {
      this.kindsTimer = null;
      const kinds = this.wanted();
      if (kinds === this.kinds && (this.controller || document.hidden)) return;
      this.kinds = kinds;
      this.stop(kinds === '' ? 'idle' : 'connecting');
      this.start();
    }, 50);
  }

  onStatus(listener: (s: LiveStatus) => void): () => void {
    this.statusListeners.add(listener);
    listener(this.status);
    return () => this.statusListeners.delete(listener);
  }

  /** Reconnects (a new token was given). */
  restart(): void {
    this.stop('connecting');
    this.start();
  }

  private setStatus(s: LiveStatus): void {
    this.status = s;
    for (const l of this.statusListeners) l(s);
  }

  private stop(status: LiveStatus): void {
    this.controller?.abort();
    this.controller = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setStatus(status);
  }

  private start(): void {
    if (this.controller || document.hidden || this.kinds === '') return;
    const controller = new AbortController();
    this.controller = controller;
    this.setStatus('connecting');
    void this.read(controller).catch(() => undefined).finally(() => {
      if (this.controller !== controller) return; // stopped on purpose
      this.controller = null;
      this.setStatus('offline');
      this.failures++;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6));
      this.retryTimer = setTimeout(() => this.start(), delay);
    });
  }

  private async read(controller: AbortController): Promise<void> {
    const headers: Record<string, string> = { accept: 'text/event-stream', ...authHeaders() };
    if (this.lastId !== '') headers['last-event-id'] = this.lastId;
    const res = await fetch(`/api/v1/events?kinds=${encodeURIComponent(this.kinds)}`, { headers, signal: controller.signal, cache: 'no-store' });
    if (!res.ok || !res.body) throw new Error(`event stream: ${res.status}`);
    this.failures = 0;
    this.setStatus('live');
    // Whatever happened while the stream was down may have been missed: views reload unless the server replays it.
    const parser = new SseParser((e) => {
      if (e.event === 'reset') {
        this.pendingReset = true;
        this.pending = [];
      } else {
        this.lastId = e.id;
        try {
          this.pending.push({ kind: e.event, id: e.id, data: JSON.parse(e.data) as LiveEvent['data'] });
        } catch {
          return;
        }
      }
      this.schedule();
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
      // The stream's first block is an id without an event: where to resume from even before any event.
      if (parser.id !== '') this.lastId = parser.id;
    }
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const events = this.pending;
      const reset = this.pendingReset;
      this.pending = [];
      this.pendingReset = false;
      for (const reg of this.registrations) {
        const mine = reset ? [] : events.filter((e) => reg.kinds.some((k) => e.kind === k || e.kind.startsWith(`${k}.`)));
        if (reset || mine.length > 0) reg.listener(mine, reset);
      }
    }, BATCH_MS);
  }
}

export const live = new LiveStream();
