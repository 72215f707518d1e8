import { describe, expect, it } from 'vitest';
import { exitCodeOf } from '../../src/cli/client/errors.js';
import { parseServers, queryString } from '../../src/cli/client/http.js';
import type { OutStream } from '../../src/cli/client/output.js';
import { ago, bar, duration, keyValues, LiveBlock, Output, percent, table, TableWriter } from '../../src/cli/client/output.js';

/** A stand-in for stdout: a terminal of `columns` or a pipe, keeping what is written. */
function stream(tty: boolean, columns = 80): OutStream & { text: () => string } {
  let text = '';
  return {
    isTTY: tty,
    columns,
    write: ((chunk: string) => {
      text += chunk;
      return true;
    }),
    text: () => text,
  };
}

describe('the command line\'s output', () => {
  it('aligns tables: text left, numbers right, two spaces apart, the last column unpadded', () => {
    const rows = [
      { name: 'canary', n: 5, note: 'x' },
      { name: 'prod', n: 1234, note: '' },
    ];
    expect(table(rows, [{ header: 'RING', cell: (r) => r.name }, { header: 'DEVICES', cell: (r) => String(r.n), right: true }, { header: 'NOTE', cell: (r) => r.note }])).toEqual([
      'RING    DEVICES  NOTE',
      'canary        5  x',
      'prod       1234',
    ]);
    // A line end in a value never breaks a row.
    expect(table([{ v: 'a\nb' }], [{ header: 'V', cell: (r) => r.v }])).toEqual(['V', 'a b']);
    expect(keyValues([['Status', 'ok'], null, ['Ring', 'dev']])).toEqual(['Status  ok', 'Ring    dev']);
  });

  it('prints a long listing page by page with the widths of the first page', () => {
    const s = stream(false);
    const w = new TableWriter<{ id: string }>(new Output(false, s), [{ header: 'DEVICE', cell: (r) => r.id }, { header: 'X', cell: () => 'x' }]);
    w.page([{ id: 'a' }, { id: 'bb' }]);
    w.page([{ id: 'ccccccccc' }]);
    expect(s.text()).toBe('DEVICE  X\na       x\nbb      x\nccccccccc  x\n');
    expect(w.rows).toBe(3);
  });

  it('says times, durations, shares and bars in human units', () => {
    const now = Date.parse('2026-12-06T12:00:00Z');
    expect([ago('2026-12-06T11:59:48Z', now), ago('2026-12-06T11:57:00Z', now), ago('2026-12-06T12:05:00Z', now), ago(null, now), ago(now - 400, now)]).toEqual(['12s ago', '3m ago', 'in 5m', '-', 'just now']);
    expect([duration(225), duration(12_000), duration(200_000), duration(7_500_000), duration(90_000_000)]).toEqual(['225ms', '12s', '3m 20s', '2h 05m', '1d 1h']);
    expect([percent(0.05), percent(0.125), percent(0.0082), percent(1), percent(0)]).toEqual(['5%', '13%', '0.82%', '100%', '0%']);
    expect([bar(0.5, 8, false), bar(0.5, 8, true), bar(2, 4, false), bar(Number.NaN, 4, false)]).toEqual(['[####....]', '████░░░░', '[####]', '[....]']);
  });

  it('live lines: on a terminal redrawn in place under the log; elsewhere one line per change', () => {
    const tty = stream(true);
    const live = new LiveBlock(new Output(false, tty));
    live.update([{ key: 'a', text: 'a 0%' }, { key: 'b', text: 'b 0%' }]);
    live.update([{ key: 'a', text: 'a 0%' }, { key: 'b', text: 'b 0%' }]);
    live.log('gate a: pass');
    live.update([{ key: 'a', text: 'a 100%' }, { key: 'b', text: 'b 0%' }]);
    // Up two lines and clear, then the log line, then the block again; an unchanged block is not redrawn.
    expect(tty.text()).toBe('a 0%\nb 0%\n\x1b[2A\x1b[Jgate a: pass\na 0%\nb 0%\n\x1b[2A\x1b[Ja 100%\nb 0%\n');

    const pipe = stream(false);
    const lines = new LiveBlock(new Output(false, pipe));
    lines.update([{ key: 'a', text: 'a 0%' }, { key: 'b', text: 'b 0%' }]);
    lines.log('gate a: pass');
    lines.update([{ key: 'a', text: 'a 100%' }, { key: 'b', text: 'b 0%' }]);
    expect(pipe.text()).toBe('a 0%\nb 0%\ngate a: pass\na 100%\n');

    // A live line longer than the terminal is cut, so that redrawing counts lines right.
    const narrow = stream(true, 10);
    new LiveBlock(new Output(false, narrow)).update([{ key: 'a', text: 'x'.repeat(20) }]);
    expect(narrow.text()).toBe(`${'x'.repeat(8)}…\n`);
  });

  it('maps API errors to exit codes, and reads --server', () => {
    expect([exitCodeOf(400, 'ORCH_VALIDATION'), exitCodeOf(401, 'ORCH_UNAUTHORIZED'), exitCodeOf(403, 'ORCH_FORBIDDEN'), exitCodeOf(429, 'ORCH_RATE_LIMITED')]).toEqual([2, 4, 4, 4]);
    expect([exitCodeOf(404, 'ORCH_TASK_NOT_FOUND'), exitCodeOf(404, 'ORCH_NOT_FOUND'), exitCodeOf(409, 'ORCH_TASK_STATE'), exitCodeOf(503, 'ORCH_STORAGE_UNAVAILABLE'), exitCodeOf(502, null)]).toEqual([3, 1, 1, 1, 1]);
    expect(parseServers(' http://a:8000/ , https://b.example/orchestrator/')).toEqual(['http://a:8000', 'https://b.example/orchestrator']);
    for (const bad of ['ftp://a', 'a:8000', 'http://u:p@a', 'http://a/?x=1', ',']) expect(() => parseServers(bad)).toThrow(/^--server: /);
    expect(queryString({ a: 'x y', b: undefined, c: null, d: 2 })).toBe('?a=x+y&d=2');
    expect(queryString({})).toBe('');
  });
});
