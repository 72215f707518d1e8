import type { Server, Socket } from 'node:net';
import { connect, createServer } from 'node:net';

/**
 * A TCP proxy on loopback in front of a real server (PostgreSQL, an orchestrator): a test can cut every
 * connection through it and refuse new ones (`cut`), then let them through again (`mend`), to play a
 * network fault without touching the server.
 */
export interface TcpProxy {
  readonly port: number;
  /** Connections open through it now. */
  readonly open: number;
  /** Destroys every connection and refuses new ones. */
  cut(): void;
  /** Lets new connections through again. */
  mend(): void;
  close(): Promise<void>;
}

/** `listenHost`: where the proxy listens (loopback unless a test's network namespace must reach it). */
export async function tcpProxy(targetPort: number, targetHost = '127.0.0.1', listenHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, listenHost, resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    get open() {
      return sockets.size / 2;
    },
    cut() {
      refusing = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    mend() {
      refusing = false;
    },
    close() {
      refusing = true;
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
