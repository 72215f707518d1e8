import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** The project's Markdown: the README and every page of docs/. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PAGES = [join(ROOT, 'README.md'), ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(ROOT, 'docs', f))];

/** Lines that a merge left behind: `<<<<<<< `, `=======` alone, `>>>>>>> `. */
const CONFLICT = /^(<{7} |={7}$|>{7} )/;

/** The targets of inline links, `[text](target)`, outside code blocks and code spans. */
function linkTargets(markdown: string): string[] {
  const out: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const prose = line.replace(/`[^`]*`/g, '');
    for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push(m[1] as string);
  }
  return out;
}

describe('the docs', () => {
  it.each(PAGES.map((p) => [relative(ROOT, p), p]))('%s holds no merge conflict markers', (_name, page) => {
    const lines = readFileSync(page, 'utf8').split('\n');
    const marked = lines.map((l, i) => [i + 1, l] as const).filter(([, l]) => CONFLICT.test(l));
    expect(marked).toEqual([]);
  });

  it.each(PAGES.map((p) => [relative(ROOT, p), p]))('%s links only to files that exist', (_name, page) => {
    const broken = linkTargets(readFileSync(page, 'utf8'))
      .filter((t) => !/^(https?:|mailto:|#)/.test(t))
      .map((t) => decodeURIComponent(t.split('#')[0] as string))
      .filter((t) => !existsSync(join(dirname(page), t)));
    expect(broken).toEqual([]);
  });

  it('finds a broken link and a marker when there is one (the checks can fail)', () => {
    expect(linkTargets('see [the API](api.md#tasks) and `[not](a-link.md)`\n```\n[nor](this.md)\n```\n[x](../nowhere.md)')).toEqual(['api.md#tasks', '../nowhere.md']);
    expect(['<<<<<<< HEAD', '=======', '>>>>>>> branch', '======= not alone', '## a heading'].filter((l) => CONFLICT.test(l))).toHaveLength(3);
  });
});
