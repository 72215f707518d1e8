import type { EventBus, EventKind, OrchestratorEvents } from '../domain/events.js';
import { EVENT_KINDS } from '../domain/events.js';
import type { Task } from '../domain/types.js';

/** An event as the stream sends it: its number, kind, time and a small summary of its payload. */
interface Entry {
  seq: number;
  kind: EventKind;
  at: number;
  data: object;
  /** The entry as an SSE message, made the first time a stream sends it. */
  text: string | null;
}

/** One open stream: which kinds it wants, and where its messages go. */
export interface Subscriber {
  /** null: every kind. */
  readonly kinds: ReadonlySet<EventKind> | null;
  /** Writes a chunk of SSE text; returns false when the stream should be closed (its client reads too slowly). */
  write(chunk: string): boolean;
  /** Closes the stream (the server is stopping, or the client fell behind). */
  end(): void;
}

interface Listener {
  sub: Subscriber;
  /** Entries waiting for the next flush. */
  pending: Entry[];
  /** Messages that are not entries (a reset), waiting for the next flush. */
  extra: string;
  /** A reset is waiting: what follows it in this turn is in what the client reloads. */
  overflowed: boolean;
}

export interface JournalOptions {
  events: Pick<EventBus, 'on'>;
  now: () => number;
  /** Entries kept for resuming (`Last-Event-ID`). @default 10000 */
  capacity?: number;
  /** How long the journal keeps recording after the last stream closed, so that a client that reconnects resumes. @default 60000 */
  retainMs?: number;
  /** A comment is sent this often on every stream so that proxies keep it open. @default 15000 */
  pingMs?: number;
}

/** Family names (`task`, `deployment`…) that a filter may use for all their kinds. */
const FAMILIES = new Map<string, EventKind[]>();
for (const kind of EVENT_KINDS) {
  const family = kind.slice(0, kind.indexOf('.'));
  FAMILIES.set(family, [...(FAMILIES.get(family) ?? []), kind]);
}

/**
 * The kinds a `kinds` filter names: exact kinds (`task.completed`) or families (`task`), comma separated.
 * Returns an error message for a name that is neither.
 */
export function parseKinds(filter: string | undefined): ReadonlySet<EventKind> | null | { error: string } {
  if (filter === undefined || filter.trim() === '') return null;
  const out = new Set<EventKind>();
  for (const raw of filter.split(',')) {
    const name = raw.trim();
    if (name === '') continue;
    const family = FAMILIES.get(name);
    if (family) for (const k of family) out.add(k);
    else if ((EVENT_KINDS as readonly string[]).includes(name)) out.add(name as EventKind);
    else return { error: `kinds names "${name}", which is no event kind or family; families are ${[...FAMILIES.keys()].join(', ')}` };
  }
  return out;
}

/** What a task event carries on the stream: the task's state, not its parameters or result. */
function taskSummary(t: Task): object {
  return {
    id: t.id,
    type: t.type,
    status: t.status,
    priority: t.priority,
    attempts: t.attempts,
    agentId: t.assignedTo,
    error: t.error,
    createdAt: t.createdAt,
    startedAt: t.startedAt,
    completedAt: t.completedAt,
  };
}

/** The stream's copy of a payload, taken when the event is emitted (a task changes after its event). */
function summarise(payload: object): object {
  return 'task' in payload ? { ...payload, task: taskSummary(payload.task as Task) } : payload;
}

/**
 * The live event stream's journal (`GET /api/v1/events`). It listens to the event bus only while a stream
 * is open, and for `retainMs` after the last one closed, so that a fleet nobody watches pays nothing for it.
 * It keeps the last `capacity` events as small summaries (serialised once, when a stream first sends them),
 * so that a client that lost its connection resumes from its `Last-Event-ID`; a client that cannot resume
 * (its event was dropped, the journal was not recording, or the server restarted) gets a `reset` and
 * reloads what it shows. Writes to a stream are batched per turn of the event loop.
 */
export class EventJournal {
  private readonly capacity: number;
  private readonly retainMs: number;
  private readonly pingMs: number;
  private readonly ring: (Entry | undefined)[];
  /** The next event's number. */
  private next = 1;
  /** The first number recorded since recording last began (events before it and after a gap are unknown). */
  private recordedFrom = 1;
  /** The ids of this process' events start with it: an id from another process cannot resume. */
  readonly boot: string;
  private readonly listeners = new Set<Listener>();
  private stopRecording: (() => void) | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private flushScheduled = false;

  constructor(private readonly o: JournalOptions) {
    this.capacity = o.capacity ?? 10_000;
    this.retainMs = o.retainMs ?? 60_000;
    this.pingMs = o.pingMs ?? 15_000;
    this.ring = new Array<Entry | undefined>(this.capacity);
    this.boot = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  }

  /** Open streams. */
  get size(): number {
    return this.listeners.size;
  }

  /** Whether the journal is listening to the bus. */
  get recording(): boolean {
    return this.stopRecording !== null;
  }

  /** The id of the last event recorded (what a client resumes from), or null before the first. */
  lastId(): string | null {
    return this.next > 1 ? this.idOf(this.next - 1) : null;
  }

  /**
   * Opens a stream: the events after `lastEventId` that it can still replay, then every new one.
   * Without an id the stream starts now; with one it cannot resume from, with a `reset`.
   */
  subscribe(sub: Subscriber, lastEventId: string | undefined): () => void {
    this.record();
    // The stream starts with the id of the last event (a block without data: no event, but the client's last
    // id), so that a client that loses the stream before any event arrives still resumes from where it began.
    const listener: Listener = { sub, pending: [], extra: `retry: 2000\nid: ${this.idOf(this.next - 1)}\n\n`, overflowed: false };
    if (lastEventId !== undefined && lastEventId !== '') {
      const from = this.resumeFrom(lastEventId);
      if (from === null) listener.extra += this.resetMessage('the events after this id are no longer kept; reload');
      else for (let seq = from; seq < this.next; seq++) this.queue(listener, this.ring[seq % this.capacity] as Entry);
    }
    this.listeners.add(listener);
    this.scheduleFlush();
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    if (!this.pingTimer) {
      this.pingTimer = setInterval(() => this.ping(), this.pingMs);
      this.pingTimer.unref();
    }
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.idle();
    };
  }

  /** Ends every stream and stops recording (the server is closing). */
  close(): void {
    for (const l of this.listeners) l.sub.end();
    this.listeners.clear();
    this.stop();
  }

  private idOf(seq: number): string {
    return `${this.boot}-${seq}`;
  }

  /** The first number to replay after `id`, or null when the events after it are not all kept. */
  private resumeFrom(id: string): number | null {
    const dash = id.lastIndexOf('-');
    if (dash < 0 || id.slice(0, dash) !== this.boot) return null;
    const seq = Number(id.slice(dash + 1));
    if (!Number.isSafeInteger(seq) || seq < 0 || seq >= this.next) return null;
    const first = seq + 1;
    const oldest = Math.max(this.recordedFrom, this.next - this.capacity);
    if (!this.recording || first < oldest) return null;
    return first;
  }

  private resetMessage(reason: string): string {
    return `event: reset\ndata: ${JSON.stringify({ reason })}\n\n`;
  }

  private record(): void {
    if (this.stopRecording) return;
    this.recordedFrom = this.next;
    const offs = EVENT_KINDS.map((kind) => this.o.events.on(kind, (payload: OrchestratorEvents[typeof kind]) => this.add(kind, payload)));
    this.stopRecording = () => {
      for (const off of offs) off();
    };
  }

  private add(kind: EventKind, payload: object): void {
    const entry: Entry = { seq: this.next, kind, at: this.o.now(), data: summarise(payload), text: null };
    this.ring[this.next % this.capacity] = entry;
    this.next++;
    if (this.listeners.size === 0) return;
    for (const l of this.listeners) if (l.sub.kinds === null || l.sub.kinds.has(kind)) this.queue(l, entry);
    this.scheduleFlush();
  }

  private queue(l: Listener, entry: Entry): void {
    // A burst larger than the journal (a rebalance that moves a whole fleet) is sent as one reset.
    if (l.overflowed) return;
    if (l.pending.length >= this.capacity) {
      l.pending.length = 0;
      l.overflowed = true;
      l.extra += this.resetMessage('more events at once than the stream sends; reload');
      return;
    }
    l.pending.push(entry);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    for (const l of this.listeners) {
      if (l.pending.length === 0 && l.extra === '') continue;
      let chunk = l.extra;
      for (const e of l.pending) chunk += e.text ?? this.serialise(e);
      l.pending.length = 0;
      l.extra = '';
      l.overflowed = false;
      if (!l.sub.write(chunk)) this.drop(l);
    }
  }

  private serialise(e: Entry): string {
    const json = JSON.stringify(e.data);
    e.text = `id: ${this.idOf(e.seq)}\nevent: ${e.kind}\ndata: {"at":${e.at}${json.length > 2 ? `,${json.slice(1)}` : '}'}\n\n`;
    return e.text;
  }

  private ping(): void {
    for (const l of this.listeners) if (!l.sub.write(': ping\n\n')) this.drop(l);
  }

  /** A stream whose client reads too slowly is closed: its client reconnects and resumes. */
  private drop(l: Listener): void {
    this.listeners.delete(l);
    l.sub.end();
    if (this.listeners.size === 0) this.idle();
  }

  private idle(): void {
    if (this.pingTimer) {
      clearInterval(this.pingTimer);
      this.pingTimer = null;
    }
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.listeners.size === 0) this.stop();
    }, this.retainMs);
    this.idleTimer.unref();
  }

  private stop(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.idleTimer = null;
    this.pingTimer = null;
    this.stopRecording?.();
    this.stopRecording = null;
  }
}
