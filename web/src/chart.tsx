import type { JSX } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  color: string;
  /** A scale of its own (e.g. `%` and `score`), default `y`. */
  scale?: string;
}

/**
 * A uPlot chart: `x` and one array per series. Bars draw a distribution, lines a time series (x in seconds).
 * The chart is made once and given new data on each render; it follows its container's width.
 */
export function Chart(props: { x: number[]; ys: (number | null)[][]; series: Series[]; kind: 'bars' | 'lines'; height?: number; xLabels?: (v: number) => string; testid?: string }): JSX.Element {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = `${props.kind}:${props.series.map((s) => s.label).join(',')}`;

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const bars = props.kind === 'bars';
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: props.height ?? 220,
      legend: { show: !bars },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: !bars } },
      axes: [
        { stroke: '#9aa4b2', grid: { stroke: '#2a3240' }, ...(props.xLabels ? { values: (_u: uPlot, vals: number[]) => vals.map((v) => props.xLabels?.(v) ?? String(v)) } : {}) },
        { stroke: '#9aa4b2', grid: { stroke: '#2a3240' } },
        ...(props.series.some((s) => s.scale === 'score') ? [{ scale: 'score', side: 1, stroke: '#9aa4b2', grid: { show: false } }] : []),
      ],
      series: [
        {},
        ...props.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          fill: bars ? `${s.color}cc` : undefined,
          scale: s.scale ?? 'y',
          width: bars ? 0 : 1.5,
          points: { show: false },
          spanGaps: false,
          ...(bars ? { paths: uPlot.paths.bars?.({ size: [0.85, Infinity] }) } : {}),
        })),
      ],
    };
    plot.current = new uPlot(opts, [props.x, ...props.ys] as uPlot.AlignedData, el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: props.height ?? 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([props.x, ...props.ys] as uPlot.AlignedData);
  });

  return <div class="chart" ref={box} data-testid={props.testid} />;
}
