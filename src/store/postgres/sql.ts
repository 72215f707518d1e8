const numberedCache = new Map<string, string>();

/**
 * The shared SQL (../sql/) with PostgreSQL's placeholders: each `?` outside a quoted string or identifier
 * becomes `$1`, `$2`, ... in order. Cached: the statements are a fixed set.
 */
export function numbered(sql: string): string {
  let out = numberedCache.get(sql);
  if (out !== undefined) return out;
  let n = 0;
  let quote: string | null = null;
  out = '';
  for (const ch of sql) {
    if (quote !== null) {
      if (ch === quote) quote = null;
      out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else if (ch === '?') {
      out += `$${++n}`;
    } else {
      out += ch;
    }
  }
  numberedCache.set(sql, out);
  return out;
}
