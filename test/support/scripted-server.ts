/**
 * What the fake model servers (fake-bedrock.ts, fake-openai.ts) share: a script of turns consumed one per
 * request, delays that a client's abort or the fake's close ends, and the reading and writing of bodies.
 */

/** The turns, consumed one per request; or a function that picks each request's turn from its body. */
export type Script<Turn, Body, Rec> = Turn[] | ((body: Body, request: Rec) => Turn);

/** A script being played: `name` says which fake in its errors. */
export class ScriptPlayer<Turn, Body, Rec extends { method: string; path: string; body: Body | null }> {
  private readonly script: Script<Turn, Body, Rec>;
  private next = 0;

  constructor(
    private readonly name: string,
    script: Script<Turn, Body, Rec>,
    private readonly emptyBody: () => Body,
  ) {
    this.script = Array.isArray(script) ? [...script] : script;
  }

  /** Adds turns to a list script (not to a function script). */
  push(...turns: Turn[]): void {
    if (!Array.isArray(this.script)) throw new Error(`${this.name}: push() needs a list script, not a function`);
    this.script.push(...turns);
  }

  /** How many scripted turns are left (Infinity for a function script). */
  get remaining(): number {
    return Array.isArray(this.script) ? this.script.length - this.next : Number.POSITIVE_INFINITY;
  }

  /** The turn for the `count`-th request, or throws a clear error when the script has none left. */
  turnFor(record: Rec, count: number): Turn {
    if (typeof this.script === 'function') return this.script(record.body ?? this.emptyBody(), record);
    const turn = this.script[this.next];
    if (turn === undefined) {
      throw new Error(`${this.name}: script exhausted: request #${count} (${record.method} ${record.path}) came after all ${this.script.length} scripted turns were used`);
    }
    this.next++;
    return turn;
  }
}

/** Pending delays of scripted turns, all of which close() ends. */
export class Delays {
  private readonly cancels = new Set<() => void>();

  /** Resolves true after `ms`, or false as soon as the response closes (client abort) or cancelAll() runs. */
  wait(ms: number, res: { once(event: 'close', listener: () => void): unknown }): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (elapsed: boolean): void => {
        clearTimeout(timer);
        this.cancels.delete(cancel);
        resolve(elapsed);
      };
      const cancel = (): void => done(false);
      const timer = setTimeout(() => done(true), ms);
      timer.unref();
      this.cancels.add(cancel);
      res.once('close', cancel);
    });
  }

  cancelAll(): void {
    for (const cancel of [...this.cancels]) cancel();
  }
}

export async function readBody(req: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The body as a JSON object, or null when it is empty, not JSON, or not an object. */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

/** Splits a string into at most `parts` non-empty pieces (by code point), so clients must reassemble. */
export function split(text: string, parts: number): string[] {
  const chars = Array.from(text);
  if (chars.length === 0) return [''];
  const size = Math.ceil(chars.length / parts);
  const out: string[] = [];
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(''));
  return out;
}
