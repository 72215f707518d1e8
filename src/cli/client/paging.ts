import type { Command } from 'commander';
import { intOption, usage } from './options.js';
import type { Column, Output } from './output.js';
import { TableWriter } from './output.js';

/** `--limit N` and `--all` of a listing command. */
export interface PagingFlags {
  limit?: string;
  all?: boolean;
  cursor?: string;
}

export function pagingOptions(cmd: Command, defaultLimit: number, what: string, withCursor = true): Command {
  cmd.option('--limit <n>', `how many ${what} to show (default ${defaultLimit})`).option('--all', `all of them, page after page`);
  if (withCursor) cmd.option('--cursor <cursor>', 'continue after an earlier listing (its last line says the cursor)');
  return cmd;
}

/** How many to show: `--all` → Infinity, else `--limit` or the default. */
export function wanted(flags: PagingFlags, defaultLimit: number): number {
  if (flags.all === true && flags.limit !== undefined) throw usage('--all and --limit: give one of them');
  if (flags.all === true) return Infinity;
  return intOption('--limit', flags.limit, 1, 10_000_000) ?? defaultLimit;
}

/**
 * Follows an API's `nextCursor` from `cursor` until `want` items were read or the last page, asking pages of at
 * most `pageMax`; hands each page on as it arrives (a fleet of any size is never held whole). Returns the
 * cursor after the last item shown (null: nothing more).
 */
async function eachPage<T>(
  fetchPage: (cursor: string | undefined, limit: number) => Promise<{ items: T[]; next: string | null }>,
  want: number,
  pageMax: number,
  onPage: (items: T[]) => void,
  cursor?: string,
): Promise<string | null> {
  let next: string | undefined = cursor;
  let shown = 0;
  for (;;) {
    const limit = Math.min(pageMax, want - shown);
    const page = await fetchPage(next, limit);
    const items = page.items.slice(0, limit);
    shown += items.length;
    onPage(items);
    if (page.next === null || items.length === 0) return null;
    next = page.next;
    if (shown >= want) return next;
  }
}

/**
 * Prints a listing as JSON page by page (`{"<key>": [...], "nextCursor": ...}`), so that `--all` over a large
 * fleet streams instead of holding everything.
 */
class JsonListWriter {
  private first = true;

  constructor(
    private readonly out: Output,
    private readonly key: string,
  ) {
    out.write(`{${JSON.stringify(key)}:[`);
  }

  page(items: readonly unknown[]): void {
    if (items.length === 0) return;
    this.out.write(`${this.first ? '' : ','}${items.map((i) => JSON.stringify(i)).join(',')}`);
    this.first = false;
  }

  end(nextCursor: string | null): void {
    this.out.line(`],"nextCursor":${JSON.stringify(nextCursor)}}`);
  }
}

/** The last line of a listing cut short: how to see more. */
function moreHint(out: Output, shown: number, what: string, next: string | null, command: string): void {
  if (next === null) return;
  out.note(`${shown.toLocaleString('en-US')} ${what} shown; more may follow: --all for every one, or ${command} --cursor ${next}`);
}

/** What a listing command prints, and how (see printListing). */
export interface Listing<T> {
  /** One page of the API's listing from `cursor`, at most `limit` items. */
  fetchPage: (cursor: string | undefined, limit: number) => Promise<{ items: T[]; next: string | null }>;
  /** How many to show (`wanted`), pages of at most `pageMax`, from `cursor` (`--cursor`). */
  want: number;
  pageMax: number;
  cursor: string | undefined;
  /** The JSON answer's key for the items (`--json`). */
  key: string;
  /** The table's columns. */
  columns: readonly Column<T>[];
  /** The note when nothing matched, the items' name, and the command that shows more. */
  none: string;
  what: string;
  again: string;
}

/**
 * A listing page by page: as JSON (`{"<key>": [...], "nextCursor"}`) or as a table, then, when cut short, how to
 * see more.
 */
export async function printListing<T>(out: Output, l: Listing<T>): Promise<void> {
  if (out.json) {
    const writer = new JsonListWriter(out, l.key);
    writer.end(await eachPage(l.fetchPage, l.want, l.pageMax, (items) => writer.page(items), l.cursor));
    return;
  }
  const writer = new TableWriter<T>(out, l.columns);
  const next = await eachPage(l.fetchPage, l.want, l.pageMax, (items) => writer.page(items), l.cursor);
  if (writer.rows === 0) out.note(l.none);
  moreHint(out, writer.rows, l.what, next, l.again);
}
