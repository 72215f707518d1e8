import http2 from 'node:http2';

export interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/**
 * JSON over one clear-text HTTP/2 connection ("prior knowledge"): every
 * request is a stream of the same connection, as many at once as the server
 * allows. Used by the tests and by the agent load tool (bench/agents.ts).
 */
export class H2Client {
  private readonly session: http2.ClientHttp2Session;
  private readonly ready: Promise<void>;

  constructor(base: string) {
    this.session = http2.connect(base);
    this.ready = new Promise((resolve, reject) => {
      this.session.once('connect', () => resolve());
      this.session.once('error', reject);
    });
    // A request's own error is reported by its promise; the session's later errors end it.
    this.session.on('error', () => undefined);
  }

  async request(method: string, path: string, options: { body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}): Promise<H2Response> {
    await this.ready;
    const payload = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    return new Promise((resolve, reject) => {
      const stream = this.session.request({
        ':method': method,
        ':path': path,
        ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      });
      let headers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        headers = h;
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: Number(headers[':status']), headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
      stream.on('error', reject);
      stream.end(payload);
    });
  }

  get closed(): boolean {
    return this.session.closed || this.session.destroyed;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) resolve();
      else this.session.close(() => resolve());
    });
  }
}
