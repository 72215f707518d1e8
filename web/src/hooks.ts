import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { live } from './live';
import type { LiveEvent } from './live';

export interface Resource<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  reload: () => void;
}

/**
 * Data loaded from the API, loaded again when `deps` change and when events of `liveKinds` arrive (at most
 * every `throttleMs`), so that a view follows the orchestrator without a reload. A reload keeps showing the
 * data it has until the new data is in.
 */
export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[], liveKinds: string[] = [], throttleMs = 500, refreshMs = 0): Resource<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(true);
  const [version, setVersion] = useState(0);
  const lastLoad = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const reload = useCallback(() => setVersion((v) => v + 1), []);

  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    lastLoad.current = Date.now();
    load(controller.signal).then(
      (d) => {
        if (controller.signal.aborted) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (err: Error) => {
        if (controller.signal.aborted || err.name === 'AbortError') return;
        setError(err);
        setLoading(false);
      },
    );
    return () => controller.abort();
  }, [...deps, version]);

  useEffect(() => {
    if (liveKinds.length === 0) return undefined;
    const off = live.listen(liveKinds, () => {
      if (timer.current) return;
      const wait = Math.max(0, throttleMs - (Date.now() - lastLoad.current));
      timer.current = setTimeout(() => {
        timer.current = null;
        reload();
      }, wait);
    });
    return () => {
      off();
      if (timer.current) clearTimeout(timer.current);
      timer.current = null;
    };
  }, [liveKinds.join(','), ...deps]);

  // What no event announces (a device's metrics change with every heartbeat) is read again every `refreshMs`, while the tab shows.
  useEffect(() => {
    if (refreshMs <= 0) return undefined;
    const timer = setInterval(() => {
      if (!document.hidden) reload();
    }, refreshMs);
    return () => clearInterval(timer);
  }, [refreshMs, reload]);

  return { data, error, loading, reload };
}

/** Calls `onEvents` with each batch of live events of `kinds`. */
export function useLive(kinds: string[], onEvents: (events: LiveEvent[], reset: boolean) => void): void {
  const handler = useRef(onEvents);
  handler.current = onEvents;
  useEffect(() => live.listen(kinds, (events, reset) => handler.current(events, reset)), [kinds.join(',')]);
}
