import type pg from 'pg';

/**
 * One connection of its own (the writer's, the lease's): opened on first use, and again after it was lost,
 * whether the driver said so (its 'error' event) or its owner found it broken (`discard`).
 */
export class OwnConnection {
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;

  constructor(private readonly open: () => Promise<pg.Client>) {}

  /** The connection, opened when there is none (one opening at a time). */
  get(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.open()
      .then((c) => {
        c.on('error', () => {
          if (this.client === c) this.client = null;
        });
        this.client = c;
        return c;
      })
      .finally(() => {
        this.connecting = null;
      });
    return this.connecting;
  }

  /** Drops a connection that failed: the next `get` opens another. */
  discard(client: pg.Client): void {
    if (this.client === client) this.client = null;
    void client.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => undefined);
  }
}
