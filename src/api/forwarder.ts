import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';

/** Headers of one hop that are not passed on (and that HTTP/2 forbids). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te', 'host', 'trailer']);

/**
 * Marks a request a follower forwarded: the leader never forwards it again. Its value says which replica
 * forwarded it, for which client address, whether that client is on the leader's machine's side (`;local`),
 * signed with the replicas' shared key: `ID;for=ADDRESS[;local];sig=HMAC`.
 */
export const FORWARDED_HEADER = 'x-orchestrator-forwarded';

/** Where a request comes from, as the leader counts it (limits, blocks, the audit log, the open API). */
export interface RequestClient {
  /** The client's address: the socket's, or the one a follower signed for a request it forwarded. */
  address: string;
  /** Forwarded from a client that may be elsewhere: never the open API of a leader on loopback. */
  remote: boolean;
}

function signature(key: Buffer, claim: string): string {
  return createHmac('sha256', key).update(claim).digest('base64url');
}

/** FORWARDED_HEADER's value for a request from `address`, signed with `key`. */
export function forwardedHeader(key: Buffer, replicaId: string, address: string, local: boolean): string {
  const claim = `${replicaId};for=${address}${local ? ';local' : ''}`;
  return `${claim};sig=${signature(key, claim)}`;
}

/**
 * The client of a request, as its socket says, or as a follower says in FORWARDED_HEADER when the replicas'
 * key signed it. A forwarded request whose header is not signed with the key (no key: an SQLite store; or
 * another's) keeps its socket's address and counts as remote unless it says `;local`.
 */
export function requestClient(header: string | string[] | undefined, socketAddress: string, key: Buffer | null): RequestClient {
  if (header === undefined) return { address: socketAddress, remote: false };
  const value = Array.isArray(header) ? header.join(',') : header;
  const at = value.lastIndexOf(';sig=');
  if (key !== null && at > 0) {
    const claim = value.slice(0, at);
    const given = Buffer.from(value.slice(at + 5));
    const expected = Buffer.from(signature(key, claim));
    if (given.length === expected.length && timingSafeEqual(given, expected)) {
      const parts = claim.split(';');
      const address = parts.find((p) => p.startsWith('for='))?.slice(4);
      if (address !== undefined && address !== '') return { address, remote: !parts.includes('local') };
    }
  }
  return { address: socketAddress, remote: !value.endsWith(';local') };
}

export interface ForwarderOptions {
  /** HTTP/2 connections to the leader, requests spread over them. @default 2 */
  connections?: number;
  /** This replica's id, sent in FORWARDED_HEADER. */
  replicaId: string;
  /** The replicas' shared key (Leadership.replicaKey), which signs FORWARDED_HEADER. */
  key: Buffer;
  /** This replica listens on loopback only: its clients are on the leader's machine's side (`;local`). */
  local: boolean;
  /** Whether this replica's own clients came over TLS (x-forwarded-proto). */
  tls: boolean;
  /** Accept the leader's certificate without checking it (a self-signed one in a test). @default false */
  insecure?: boolean;
}

/** Streams a connection is given before the leader's own limit (its SETTINGS) is known: RFC 9113's advice. */
const ASSUMED_MAX_STREAMS = 100;

/** One connection to the leader and the requests it carries now. */
interface Connection {
  session: http2.ClientHttp2Session;
  active: number;
  /** The leader's SETTINGS arrived: its limit on concurrent streams is known. */
  settled: boolean;
}

/**
 * Forwards requests to the leader over a pool of multiplexed HTTP/2 connections, with the caller's method,
 * path, headers (its credentials among them) and body, and streams the answer back as it comes (an event
 * stream or a long-poll as much as a JSON answer). Each request goes on the least busy connection; when every
 * one carries as many requests as the leader allows on a connection (HTTP2_MAX_STREAMS: a thousand agents'
 * long-polls are more than one carries), another is opened. A connection that fails is replaced at the next
 * request; a change of leader replaces them all.
 */
export class LeaderForwarder {
  private target: string | null = null;
  private connections: Connection[] = [];
  private readonly size: number;

  constructor(private readonly options: ForwarderOptions) {
    this.size = Math.max(1, options.connections ?? 2);
  }

  /**
   * Sends `req` to `leader` and its answer to `res`. Rejects, with nothing sent to `res`, when the leader
   * cannot be reached or drops the request before answering; once the answer has begun, a failure ends it.
   */
  forward(leader: string, req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, clientIp: string): Promise<void> {
    const connection = this.connection(leader);
    const session = connection.session;
    const headers: http2.OutgoingHttpHeaders = { ':method': req.method ?? 'GET', ':path': req.url ?? '/', ':authority': new URL(leader).host };
    for (const [name, value] of Object.entries(req.headers)) {
      if (name.startsWith(':') || HOP_BY_HOP.has(name) || value === undefined) continue;
      headers[name] = value;
    }
    const prior = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = prior === undefined ? clientIp : `${String(prior)}, ${clientIp}`;
    headers['x-forwarded-proto'] = this.options.tls ? 'https' : 'http';
    headers[FORWARDED_HEADER] = forwardedHeader(this.options.key, this.options.replicaId, clientIp, this.options.local);
    const method = headers[':method'] as string;
    const bodyless = method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
    return new Promise((resolve, reject) => {
      let answered = false;
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(headers, { endStream: bodyless });
      } catch (err) {
        this.drop(session);
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      connection.active++;
      if (!bodyless) req.pipe(stream);
      stream.on('response', (answer) => {
        answered = true;
        const out: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer)) {
          if (name.startsWith(':') || HOP_BY_HOP.has(name) || value === undefined) continue;
          out[name] = value;
        }
        (res as ServerResponse).writeHead(Number(answer[':status'] ?? 502), out);
        // An event stream's events go out as they come.
        (res as ServerResponse).flushHeaders?.();
        stream.pipe(res as NodeJS.WritableStream);
      });
      stream.on('error', (err: Error) => {
        if (!answered) {
          if (session.destroyed || session.closed) this.drop(session);
          reject(err);
        } else {
          res.destroy(err);
        }
      });
      stream.on('close', () => {
        connection.active--;
        if (!answered) {
          reject(new Error(`the leader closed the stream before answering (code ${stream.rstCode ?? '?'})`));
          return;
        }
        resolve();
      });
      // The caller went away (a closed event stream, a cancelled long-poll): so does the request to the leader.
      res.on('close', () => {
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      });
    });
  }

  /** Closes every connection. */
  close(): void {
    for (const c of this.connections) c.session.close();
    this.connections = [];
    this.target = null;
  }

  /** How many connections to the leader are open now. */
  get open(): number {
    return this.connections.length;
  }

  /** The least busy connection with room under the leader's limit; a new one while there are fewer than `size`, or none has room. */
  private connection(leader: string): Connection {
    if (leader !== this.target) {
      this.close();
      this.target = leader;
    }
    let best: Connection | null = null;
    for (const c of this.connections) {
      const limit = c.settled ? c.session.remoteSettings.maxConcurrentStreams ?? ASSUMED_MAX_STREAMS : ASSUMED_MAX_STREAMS;
      if (c.active < limit && (best === null || c.active < best.active)) best = c;
    }
    if (best !== null && (best.active === 0 || this.connections.length >= this.size)) return best;
    const session = http2.connect(leader, this.options.insecure === true ? { rejectUnauthorized: false } : {});
    const made: Connection = { session, active: 0, settled: false };
    // A request's own error is reported by its stream; the session's end makes room for a new one.
    session.on('error', () => undefined);
    session.once('remoteSettings', () => {
      made.settled = true;
    });
    session.on('close', () => this.drop(session));
    session.unref();
    this.connections.push(made);
    return made;
  }

  private drop(session: http2.ClientHttp2Session): void {
    this.connections = this.connections.filter((c) => c.session !== session);
    if (!session.destroyed) session.destroy();
  }
}
