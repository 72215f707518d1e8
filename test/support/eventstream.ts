import { crc32 } from 'node:zlib';

/**
 * The AWS event-stream framing (`application/vnd.amazon.eventstream`), as Amazon Bedrock's
 * ConverseStream answers with it. One message:
 *
 *   prelude  = total length (u32 BE) + headers length (u32 BE) + CRC32 of those 8 bytes (u32 BE)
 *   headers  = per header: name length (u8), name (UTF-8), value type (u8), value
 *   payload  = the bytes (here JSON)
 *   trailer  = CRC32 of everything before it (u32 BE)
 *
 * Value types: 0 true, 1 false, 2 byte, 3 short, 4 integer, 5 long, 6 byte array (u16 BE length),
 * 7 string (u16 BE length, UTF-8), 8 timestamp (i64 BE milliseconds), 9 UUID (16 bytes).
 * Used by the fake Bedrock server to encode and by tests to decode.
 */

/** A header value as decoded: the wire type decides the JS type. */
export type EventStreamHeaderValue = string | boolean | number | bigint | Uint8Array | Date;

/** One decoded message. */
export interface EventStreamMessage {
  readonly headers: Record<string, EventStreamHeaderValue>;
  readonly payload: Buffer;
}

const PRELUDE_LENGTH = 12;
const TRAILER_LENGTH = 4;
/** The smallest message: a prelude and a trailer, no headers, no payload. */
const MIN_MESSAGE_LENGTH = PRELUDE_LENGTH + TRAILER_LENGTH;

/** The wire codes of the header value types. */
const HeaderType = {
  True: 0,
  False: 1,
  Byte: 2,
  Short: 3,
  Integer: 4,
  Long: 5,
  Bytes: 6,
  String: 7,
  Timestamp: 8,
  Uuid: 9,
} as const;

/** One header's wire bytes. Strings are type 7, booleans 0/1, numbers 32-bit integers, bigints longs, bytes type 6, dates timestamps. */
function encodeHeader(name: string, value: EventStreamHeaderValue): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length > 255) throw new RangeError(`event-stream header name too long: ${name}`);
  let typed: Buffer;
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    if (bytes.length > 0xffff) throw new RangeError(`event-stream header value too long: ${name}`);
    typed = Buffer.alloc(3 + bytes.length);
    typed.writeUInt8(typeof value === 'string' ? HeaderType.String : HeaderType.Bytes, 0);
    typed.writeUInt16BE(bytes.length, 1);
    bytes.copy(typed, 3);
  } else if (typeof value === 'boolean') {
    typed = Buffer.from([value ? HeaderType.True : HeaderType.False]);
  } else if (typeof value === 'number') {
    typed = Buffer.alloc(5);
    typed.writeUInt8(HeaderType.Integer, 0);
    typed.writeInt32BE(value, 1);
  } else if (typeof value === 'bigint') {
    typed = Buffer.alloc(9);
    typed.writeUInt8(HeaderType.Long, 0);
    typed.writeBigInt64BE(value, 1);
  } else {
    typed = Buffer.alloc(9);
    typed.writeUInt8(HeaderType.Timestamp, 0);
    typed.writeBigInt64BE(BigInt(value.getTime()), 1);
  }
  return Buffer.concat([Buffer.from([nameBytes.length]), nameBytes, typed]);
}

/** Encodes one message: the headers in the order given, then the payload (a string is UTF-8). */
export function encodeMessage(headers: Record<string, EventStreamHeaderValue>, payload: Uint8Array | string = ''): Buffer {
  const headerBytes = Buffer.concat(Object.entries(headers).map(([name, value]) => encodeHeader(name, value)));
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  const total = PRELUDE_LENGTH + headerBytes.length + body.length + TRAILER_LENGTH;
  const message = Buffer.alloc(total);
  message.writeUInt32BE(total, 0);
  message.writeUInt32BE(headerBytes.length, 4);
  message.writeUInt32BE(crc32(message.subarray(0, 8)), 8);
  headerBytes.copy(message, PRELUDE_LENGTH);
  body.copy(message, PRELUDE_LENGTH + headerBytes.length);
  message.writeUInt32BE(crc32(message.subarray(0, total - TRAILER_LENGTH)), total - TRAILER_LENGTH);
  return message;
}

/** An event of a stream, e.g. `eventMessage('messageStart', { role: 'assistant' })`: JSON payload, `:message-type` event. */
export function eventMessage(eventType: string, body: unknown): Buffer {
  return encodeMessage({ ':event-type': eventType, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(body));
}

/** A modelled exception inside a stream, e.g. `exceptionMessage('throttlingException', 'slow down')`. */
export function exceptionMessage(exceptionType: string, message: string): Buffer {
  return encodeMessage({ ':exception-type': exceptionType, ':content-type': 'application/json', ':message-type': 'exception' }, JSON.stringify({ message }));
}

function decodeHeaders(bytes: Buffer): Record<string, EventStreamHeaderValue> {
  const headers: Record<string, EventStreamHeaderValue> = {};
  let at = 0;
  const need = (n: number): void => {
    if (at + n > bytes.length) throw new Error('event-stream: truncated header');
  };
  while (at < bytes.length) {
    need(1);
    const nameLength = bytes.readUInt8(at);
    at += 1;
    need(nameLength + 1);
    const name = bytes.toString('utf8', at, at + nameLength);
    at += nameLength;
    const type = bytes.readUInt8(at);
    at += 1;
    switch (type) {
      case HeaderType.True:
      case HeaderType.False:
        headers[name] = type === HeaderType.True;
        break;
      case HeaderType.Byte:
        need(1);
        headers[name] = bytes.readInt8(at);
        at += 1;
        break;
      case HeaderType.Short:
        need(2);
        headers[name] = bytes.readInt16BE(at);
        at += 2;
        break;
      case HeaderType.Integer:
        need(4);
        headers[name] = bytes.readInt32BE(at);
        at += 4;
        break;
      case HeaderType.Long:
        need(8);
        headers[name] = bytes.readBigInt64BE(at);
        at += 8;
        break;
      case HeaderType.Timestamp:
        need(8);
        headers[name] = new Date(Number(bytes.readBigInt64BE(at)));
        at += 8;
        break;
      case HeaderType.Uuid:
        need(16);
        headers[name] = new Uint8Array(bytes.subarray(at, at + 16));
        at += 16;
        break;
      case HeaderType.Bytes:
      case HeaderType.String: {
        need(2);
        const length = bytes.readUInt16BE(at);
        at += 2;
        need(length);
        headers[name] = type === HeaderType.String ? bytes.toString('utf8', at, at + length) : new Uint8Array(bytes.subarray(at, at + length));
        at += length;
        break;
      }
      default:
        throw new Error(`event-stream: unknown header value type ${type} for ${name}`);
    }
  }
  return headers;
}

/** Decodes the one message that fills `bytes` exactly; throws on a bad length or CRC. */
export function decodeMessage(bytes: Uint8Array): EventStreamMessage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < MIN_MESSAGE_LENGTH) throw new Error(`event-stream: ${buf.length} bytes is shorter than a message`);
  const total = buf.readUInt32BE(0);
  const headersLength = buf.readUInt32BE(4);
  if (total !== buf.length) throw new Error(`event-stream: the prelude says ${total} bytes, the message has ${buf.length}`);
  if (crc32(buf.subarray(0, 8)) !== buf.readUInt32BE(8)) throw new Error('event-stream: prelude CRC mismatch');
  if (crc32(buf.subarray(0, total - TRAILER_LENGTH)) !== buf.readUInt32BE(total - TRAILER_LENGTH)) throw new Error('event-stream: message CRC mismatch');
  if (PRELUDE_LENGTH + headersLength > total - TRAILER_LENGTH) throw new Error('event-stream: headers longer than the message');
  return {
    headers: decodeHeaders(buf.subarray(PRELUDE_LENGTH, PRELUDE_LENGTH + headersLength)),
    payload: Buffer.from(buf.subarray(PRELUDE_LENGTH + headersLength, total - TRAILER_LENGTH)),
  };
}

/**
 * Splits a byte stream into messages as its chunks arrive (a message may span chunks, a chunk may hold
 * several messages): `push(chunk)` returns the messages it completed; `end()` throws if bytes are left over.
 */
export class EventStreamDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): EventStreamMessage[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const out: EventStreamMessage[] = [];
    while (this.pending.length >= 4) {
      const total = this.pending.readUInt32BE(0);
      if (total < MIN_MESSAGE_LENGTH) throw new Error(`event-stream: impossible message length ${total}`);
      if (this.pending.length < total) break;
      out.push(decodeMessage(this.pending.subarray(0, total)));
      this.pending = this.pending.subarray(total);
    }
    return out;
  }

  end(): void {
    if (this.pending.length > 0) throw new Error(`event-stream: ${this.pending.length} bytes of an unfinished message`);
  }
}

/** Decodes a whole stream body into its messages. */
export function decodeMessages(bytes: Uint8Array): EventStreamMessage[] {
  const decoder = new EventStreamDecoder();
  const messages = decoder.push(bytes);
  decoder.end();
  return messages;
}

/** A decoded message's payload as JSON (the payload of every Bedrock event and exception). */
export function payloadJson(message: EventStreamMessage): unknown {
  return JSON.parse(message.payload.toString('utf8'));
}
