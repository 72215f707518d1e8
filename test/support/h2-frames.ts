import net from 'node:net';

/**
 * Raw HTTP/2 frames (RFC 9113), for clients that misbehave on purpose: that
 * ignore the server's stream limit, or reset each stream as they open it. A
 * well-behaved client (node's) cannot be made to. Used by the tests and by
 * the flood benchmark (bench/h2-flood.ts).
 */
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ERROR = { NO_ERROR: 0, REFUSED_STREAM: 0x7, CANCEL: 0x8, ENHANCE_YOUR_CALM: 0xb } as const;
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/**
 * A request's header block in HPACK, without Huffman coding or indexing: the method and scheme from the
 * static table (GET or POST, http), the path and authority as literals with indexed names.
 */
export function requestBlock(method: 'GET' | 'POST', path: string, authority: string): Buffer {
  const literal = (index: number, value: string): Buffer => {
    const v = Buffer.from(value);
    if (v.length >= 127) throw new Error('a header value of 127 bytes or more needs a longer length prefix');
    return Buffer.concat([Buffer.from([index, v.length]), v]);
  };
  return Buffer.concat([Buffer.from([method === 'GET' ? 0x82 : 0x83, 0x86]), literal(0x04, path), literal(0x01, authority)]);
}

export const headers = (stream: number, block: Buffer, endStream: boolean): Buffer => frame(FRAME.HEADERS, FLAG.END_HEADERS | (endStream ? FLAG.END_STREAM : 0), stream, block);
export const rstStream = (stream: number, code: number): Buffer => frame(FRAME.RST_STREAM, 0, stream, u32(code));

/** What a raw connection has received, frame by frame. */
export interface Received {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/**
 * A clear-text HTTP/2 connection that speaks in raw frames: it sends the preface with a large window
 * (so answers never wait for it), acknowledges the server's settings and pings, and hands every frame
 * it receives to `onFrame`.
 */
export function rawConnection(url: URL, onFrame: (f: Received) => void): net.Socket {
  const socket = net.connect(Number(url.port), url.hostname);
  socket.setNoDelay(true);
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(0x4, 0); // SETTINGS_INITIAL_WINDOW_SIZE
  settings.writeUInt32BE(0x7fffffff, 2);
  socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, settings), frame(FRAME.WINDOW_UPDATE, 0, 0, u32(0x7fffffff - 65535))]));
  let buffered: Buffer = Buffer.alloc(0);
  let consumed = 0;
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    let at = 0;
    while (buffered.length - at >= 9) {
      const length = buffered.readUIntBE(at, 3);
      if (buffered.length - at < 9 + length) break;
      const f: Received = { type: buffered[at + 3] as number, flags: buffered[at + 4] as number, stream: buffered.readUInt32BE(at + 5) & 0x7fffffff, payload: buffered.subarray(at + 9, at + 9 + length) };
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      else if (f.type === FRAME.PING && (f.flags & FLAG.ACK) === 0) socket.write(frame(FRAME.PING, FLAG.ACK, 0, f.payload));
      if (f.type === FRAME.DATA) consumed += length;
      onFrame(f);
      at += 9 + length;
    }
    buffered = buffered.subarray(at);
    // The connection's window is given back as answers arrive (the streams' windows are already 2^31-1).
    if (consumed > 1 << 20) {
      socket.write(frame(FRAME.WINDOW_UPDATE, 0, 0, u32(consumed)));
      consumed = 0;
    }
  });
  return socket;
}
