import { EventEmitter } from 'node:events';

/** A typed event bus over an event map `M` (event name → payload). */
export class TypedEventBus<M extends object> {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(100);
  }

  on<K extends keyof M & string>(event: K, listener: (payload: M[K]) => void): () => void {
    this.emitter.on(event, listener);
    return () => this.emitter.off(event, listener);
  }

  emit<K extends keyof M & string>(event: K, payload: M[K]): void {
    this.emitter.emit(event, payload);
  }
}
