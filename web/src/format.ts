/** Numbers, times and durations as the dashboard shows them. */

const nf = new Intl.NumberFormat('en');

export const num = (n: number | null | undefined): string => (n === null || n === undefined ? '–' : nf.format(n));

export const pct = (part: number, whole: number): string => (whole === 0 ? '–' : `${Math.round((part / whole) * 1000) / 10}%`);

export const score = (n: number | null | undefined): string => (n === null || n === undefined ? '–' : n.toFixed(1));

/** An instant (ISO string or ms) as a local date and time; `ago` adds how long ago. */
export function when(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '–';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '–' : d.toLocaleString();
}

export function ago(v: string | number | null | undefined, now = Date.now()): string {
  if (v === null || v === undefined) return '–';
  const ms = now - new Date(v).getTime();
  if (!Number.isFinite(ms)) return '–';
  return `${duration(Math.abs(ms))} ${ms >= 0 ? 'ago' : 'from now'}`;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${Math.round(s * 10) / 10} s`;
  const m = s / 60;
  if (m < 60) return `${Math.round(m)} min`;
  const h = m / 60;
  if (h < 48) return `${Math.round(h * 10) / 10} h`;
  return `${Math.round(h / 24)} d`;
}
