import http2 from 'node:http2';

/**
 * New requests one HTTP/2 connection may start in one turn of the event loop; the rest wait for the next
 * turn. (Counted, not timed: most of a request's work runs in promise callbacks after its start returns.)
 */
export const STREAMS_PER_TURN = 4;
/** Streams a connection may reset before they were started, at once... */
const RESET_BURST = 256;
/** ...and then per second, before the connection is closed (GOAWAY ENHANCE_YOUR_CALM). */
const RESETS_PER_SECOND = 64;

type StreamArgs = [stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]];
type Start = (...args: StreamArgs) => void;
/** Takes a stream at once (true), or leaves it untouched (false). */
type TakeAtOnce = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

const ignore = (): void => undefined;

/** Where a session keeps what the scheduler knows of it (a property, not a WeakMap: thousands of short-lived sessions' ephemerons slow the collector). */
const STATE = Symbol('stream-scheduler');
type SessionWithState = http2.Http2Session & { [STATE]?: Connection };

/** What the scheduler keeps of one connection. */
interface Connection {
  /** Kept here: a stream that is closed no longer knows its session. */
  readonly session: http2.Http2Session;
  /** Streams waiting for a turn, in arrival order. */
  readonly waiting: StreamArgs[];
  /** Streams opened in the current turn. */
  opened: number;
  /** The turn `opened` counts in. */
  turn: number;
  /** Resets still allowed (a token bucket), and when it was last refilled (ms, monotonic). */
  resetBudget: number;
  refilledAt: number;
}

/**
 * Starts the requests of HTTP/2 connections fairly. Node reads a whole
 * socket buffer at once, and one connection's buffer can hold hundreds of
 * requests; started in a row, they hold every other client (and the
 * heartbeats of every agent) behind them. So each connection starts at most
 * STREAMS_PER_TURN requests per turn of the event loop; the others wait, in
 * order, for the following turns, which come after the other sockets have
 * been read. With the per-connection stream cap, one connection never has
 * more than that cap waiting. The agent protocol's hot routes (heartbeat,
 * commands, results: cheap, and authenticated before anything else) start
 * at once: a proxy's burst of a hundred agents' heartbeats would otherwise
 * wait turns for nothing.
 *
 * The others start at the end of the turn they arrived in, once node has
 * read the resets that came with them: a stream its client reset before it
 * started (the "rapid reset" of CVE-2023-44487: open a stream, cancel it at
 * once, repeat) is never started; node has created it, nothing more. A
 * connection that does it more than RESET_BURST times at once, or faster
 * than RESETS_PER_SECOND, is closed with GOAWAY (ENHANCE_YOUR_CALM). Node
 * says a stream was reset only a moment after it announced the stream; a
 * connection that opens more than twice its stream cap in one turn can only
 * be resetting them, and is closed too, before more of what it sent is read.
 */
export class StreamScheduler {
  /** Connections with streams waiting, in the order they are served. */
  private readonly ready = new Set<Connection>();
  private turn = 0;
  private turnScheduled = false;

  constructor(
    /** Starts a stream in its turn. */
    private readonly start: Start,
    /** The connections' stream cap (SETTINGS_MAX_CONCURRENT_STREAMS). */
    private readonly maxStreams: number,
    /** Offered every stream first, whatever the turn (the agent protocol's hot routes take theirs). */
    private readonly takeAtOnce: TakeAtOnce = () => false,
  ) {}

  /** The 'stream' listener: starts the stream now, or queues it for a later turn. */
  readonly accept = (...args: StreamArgs): void => {
    const [stream] = args;
    const session = stream.session;
    if (session === undefined || session.destroyed) return;
    let c = (session as SessionWithState)[STATE];
    if (c === undefined) {
      c = { session, waiting: [], opened: 0, turn: this.turn, resetBudget: RESET_BURST, refilledAt: performance.now() };
      (session as SessionWithState)[STATE] = c;
    }
    if (stream.destroyed || stream.closed) {
      this.reset(c);
      return;
    }
    if (c.turn !== this.turn) {
      c.turn = this.turn;
      c.opened = 0;
    }
    // A client cannot have more streams open than the cap, and it frees them only as it reads our answers, or
    // by resetting them. Twice the cap in one turn is a client resetting them faster than they are seen to close.
    if (++c.opened > 2 * this.maxStreams) {
      this.close(c);
      return;
    }
    // The turn ends (and the counts above start again) once the sockets readable now have been read.
    this.nextTurn();
    // The agent protocol's hot routes are a fleet's steady traffic, cheap and authenticated first: they start
    // at once (what one connection may have open is still capped, and resets still counted).
    if (this.takeAtOnce(stream, args[1])) return;
    // The rest start at the end of the turn (onTurn): by then node has read the resets that came with them, and a
    // stream opened and cancelled at once costs no work. Until it starts, nobody else listens to it: a reset
    // with an error code would be an unhandled 'error'.
    stream.on('error', ignore);
    c.waiting.push(args);
    this.ready.add(c);
  };

  /** Turns are counted by setImmediate: it runs once the sockets readable in this turn have been read. */
  private nextTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    setImmediate(this.onTurn);
  }

  private readonly onTurn = (): void => {
    this.turnScheduled = false;
    this.turn++;
    for (const c of this.ready) {
      let started = 0;
      while (started < STREAMS_PER_TURN && c.waiting.length > 0) {
        const args = c.waiting.shift() as StreamArgs;
        const [stream] = args;
        if (c.session.destroyed) {
          c.waiting.length = 0;
          break;
        }
        if (stream.destroyed || stream.closed) {
          this.reset(c);
          continue;
        }
        started++;
        this.start(...args);
      }
      if (c.waiting.length === 0) this.ready.delete(c);
    }
    if (this.ready.size > 0) this.nextTurn();
  };

  /** A stream reset before it started: spends the connection's budget, and closes it when none is left. */
  private reset(c: Connection): void {
    const now = performance.now();
    c.resetBudget = Math.min(RESET_BURST, c.resetBudget + ((now - c.refilledAt) / 1000) * RESETS_PER_SECOND);
    c.refilledAt = now;
    c.resetBudget -= 1;
    if (c.resetBudget < 0) this.close(c);
  }

  /** Closes an abusive connection at once: GOAWAY (ENHANCE_YOUR_CALM), and what it sent and has not been read is dropped. */
  private close(c: Connection): void {
    if (c.session.destroyed) return;
    c.waiting.length = 0;
    this.ready.delete(c);
    // GOAWAY with the reason, then closed at once. (destroy(code) would destroy every stream with an error,
    // and streams node has not announced yet have nobody to take it.)
    c.session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    c.session.destroy();
  }
}
