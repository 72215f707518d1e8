/**
 * How the client commands print: aligned tables and key–value blocks for people, JSON for scripts, ages and
 * percentages in human units, and progress bars that redraw in place on a terminal (one line per change
 * otherwise). No colour: the output reads the same in a terminal, a log file and a CI job.
 */

/** A column of a table: its header, its cell, and whether it is a number (right-aligned). */
export interface Column<T> {
  header: string;
  cell: (row: T) => string;
  right?: boolean;
}

/** Where output goes: stdout, or a stand-in in tests. */
export type OutStream = Pick<NodeJS.WriteStream, 'write' | 'isTTY' | 'columns'>;

export class Output {
  /** Whether stdout is a terminal (bars redraw in place, Unicode blocks). */
  readonly tty: boolean;

  constructor(
    readonly json: boolean,
    private readonly stream: OutStream = process.stdout,
  ) {
    this.tty = stream.isTTY === true;
  }

  /** Writes text as it is. */
  write(text: string): void {
    this.stream.write(text);
  }

  /** Writes text and a line end. */
  line(text = ''): void {
    this.stream.write(`${text}\n`);
  }

  lines(lines: readonly string[]): void {
    if (lines.length > 0) this.stream.write(`${lines.join('\n')}\n`);
  }

  /** Writes a value as one line of JSON. */
  jsonLine(value: unknown): void {
    this.stream.write(`${JSON.stringify(value)}\n`);
  }

  /** A note for people (a hint, a count): on stderr, so that stdout stays what was asked for. */
  note(text: string): void {
    process.stderr.write(`${text}\n`);
  }

  /** The width of the terminal, or null when not a terminal. */
  get columns(): number | null {
    return this.tty ? (this.stream.columns ?? 100) : null;
  }
}

/** Rows as an aligned table (a header line, then one line per row), columns two spaces apart. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[], widths?: number[]): string[] {
  const cells = rows.map((r) => columns.map((c) => clean(c.cell(r))));
  const w = widths ?? columnWidths(columns, cells);
  const format = (values: readonly string[]): string =>
    values
      .map((v, i) => (columns[i]?.right ? v.padStart(w[i] ?? 0) : i === values.length - 1 ? v : v.padEnd(w[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [format(columns.map((c) => c.header)), ...cells.map(format)];
}

export function columnWidths<T>(columns: readonly Column<T>[], cells: readonly (readonly string[])[]): number[] {
  return columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => (row[i] ?? '').length)));
}

/**
 * A table printed page by page (a fleet of any size): the first page sets the widths, later pages keep them
 * (a longer cell pushes its line, never the columns of lines already printed).
 */
export class TableWriter<T> {
  private widths: number[] | null = null;
  rows = 0;

  constructor(
    private readonly out: Output,
    private readonly columns: readonly Column<T>[],
  ) {}

  page(rows: readonly T[]): void {
    if (rows.length === 0 && this.widths !== null) return;
    const cells = rows.map((r) => this.columns.map((c) => clean(c.cell(r))));
    if (this.widths === null) {
      this.widths = columnWidths(this.columns, cells);
      this.out.lines(table(rows, this.columns, this.widths));
    } else {
      this.out.lines(table(rows, this.columns, this.widths).slice(1));
    }
    this.rows += rows.length;
  }
}

/** Label–value lines, the labels aligned. */
export function keyValues(pairs: readonly (readonly [string, string] | null)[]): string[] {
  const shown = pairs.filter((p): p is readonly [string, string] => p !== null);
  const w = Math.max(0, ...shown.map(([k]) => k.length));
  return shown.map(([k, v]) => `${k.padEnd(w)}  ${v}`.trimEnd());
}

/** One line of a value: line ends and control characters out (a name from the API never breaks a table). */
function clean(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
}

/** A count with thousands separators. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** `n thing` or `n things`. */
export function plural(n: number, word: string, words = `${word}s`): string {
  return `${count(n)} ${n === 1 ? word : words}`;
}

/** A share (0–1) as a percentage: `5%`, `12.5%`, `0.82%`. */
export function percent(share: number): string {
  const p = share * 100;
  if (p === 0 || p >= 10 || Number.isInteger(p)) return `${Math.round(p)}%`;
  return `${Number(p.toPrecision(2))}%`;
}

/** A duration in ms, short: `850ms`, `12s`, `3m 20s`, `2h 05m`, `3d 4h`. */
export function duration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  const s = Math.round(abs / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 === 0 ? `${m}m` : `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** How long ago (or, in the future, how soon) an instant is: `12s ago`, `in 3m`, `-` for none. */
export function ago(at: string | number | null | undefined, now = Date.now()): string {
  if (at === null || at === undefined) return '-';
  const t = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(t)) return '-';
  const d = now - t;
  if (Math.abs(d) < 1000) return 'just now';
  const text = duration(d).split(' ')[0] as string;
  return d >= 0 ? `${text} ago` : `in ${text}`;
}

/** A number to one decimal, or `-` for none. */
export function num(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined ? '-' : v.toFixed(digits).replace(/\.0+$/, '');
}

/** A health score to one decimal (`82.0`), or `-` before the first sample. */
export function score(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : v.toFixed(1);
}

/** A bar of `width` cells for a share from 0 to 1: `█████░░░░░` on a terminal, `#####.....` otherwise. */
export function bar(share: number, width: number, unicode: boolean): string {
  const s = Math.min(1, Math.max(0, Number.isFinite(share) ? share : 0));
  const filled = Math.round(s * width);
  return unicode ? `${'█'.repeat(filled)}${'░'.repeat(width - filled)}` : `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/**
 * Live lines (progress bars) under a log that scrolls: on a terminal the block is redrawn in place after each
 * change, with new log lines above it; otherwise each log line is printed, and each live line whenever its
 * text changes (one line per change, for logs and CI).
 */
export class LiveBlock {
  private drawn = 0;
  private readonly last = new Map<string, string>();

  constructor(private readonly out: Output) {}

  /** A line that stays. */
  log(text: string): void {
    if (!this.out.tty) {
      this.out.line(text);
      return;
    }
    this.clear();
    this.out.line(text);
    this.redraw();
  }

  private block: { key: string; text: string }[] = [];

  /** The live lines, by key. */
  update(lines: readonly { key: string; text: string }[]): void {
    const same = lines.length === this.block.length && lines.every((l, i) => l.text === this.block[i]?.text);
    this.block = [...lines];
    if (this.out.tty) {
      if (same && this.drawn > 0) return;
      this.clear();
      this.redraw();
      return;
    }
    for (const l of lines) {
      if (this.last.get(l.key) === l.text) continue;
      this.last.set(l.key, l.text);
      this.out.line(l.text);
    }
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }

  private redraw(): void {
    for (const l of this.block) this.out.line(this.fit(l.text));
    this.drawn = this.block.length;
  }

  /** A line cut to the terminal's width, so that redrawing in place counts lines right. */
  private fit(text: string): string {
    const cols = this.out.columns;
    return cols !== null && text.length >= cols ? `${text.slice(0, cols - 2)}…` : text;
  }
}

/** API tokens as `tokens list` (through the API) and the local `token list` show them: never their secrets. */
export function apiTokenTable(list: readonly { id: string; name: string; role: string; createdAt: number | string; createdBy: string; revokedAt: number | string | null }[], now: number): string[] {
  return table(list, [
    { header: 'ID', cell: (t) => t.id },
    { header: 'NAME', cell: (t) => t.name },
    { header: 'ROLE', cell: (t) => t.role },
    { header: 'CREATED', cell: (t) => ago(t.createdAt, now) },
    { header: 'BY', cell: (t) => t.createdBy },
    { header: 'REVOKED', cell: (t) => ago(t.revokedAt, now) },
  ]);
}
