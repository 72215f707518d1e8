/** A server-sent event as dispatched: its kind (`message` when unnamed), data and id. */
export interface ServerSentEvent {
  event: string;
  data: string;
  /** The last id seen on the stream (it carries over to events without one, as the standard says). */
  id: string;
}

/**
 * An incremental parser of `text/event-stream` (the WHATWG rules: lines end in LF, CRLF or CR; `:` starts
 * a comment; data lines join with LF; an event is dispatched at a blank line, and not when its data is
 * empty). Feed it text as it arrives; it calls `dispatch` for each complete event. Used by the dashboard,
 * the command line and the tests (no Node or DOM dependency).
 */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private lastId = '';
  private sawCr = false;
  /** The `retry` the server asked for, in ms, or null. */
  retryMs: number | null = null;

  constructor(private readonly dispatch: (e: ServerSentEvent) => void) {}

  /** The id to resume from (`Last-Event-ID`), or '' before any. */
  get id(): string {
    return this.lastId;
  }

  push(chunk: string): void {
    let text = chunk;
    // A CR at the end of the last chunk and an LF at the start of this one are one line end.
    if (this.sawCr && text.startsWith('\n')) text = text.slice(1);
    this.sawCr = false;
    this.buffer += text;
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf('\r', start);
      const lf = this.buffer.indexOf('\n', start);
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      this.line(this.buffer.slice(start, end));
      if (this.buffer[end] === '\r') {
        if (end + 1 === this.buffer.length) {
          this.sawCr = true;
          start = end + 1;
          break;
        }
        start = this.buffer[end + 1] === '\n' ? end + 2 : end + 1;
      } else {
        start = end + 1;
      }
    }
    this.buffer = this.buffer.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.dispatch({ event: this.event === '' ? 'message' : this.event, data: this.data.join('\n'), id: this.lastId });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') {
      if (!value.includes('\u0000')) this.lastId = value;
    } else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
  }
}
