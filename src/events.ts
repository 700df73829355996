/**
 * A small synchronous, typed event emitter.
 *
 * Listeners run in the order they were added. A listener that throws does not stop the others
 * or the emitter's owner: the error goes to the `onListenerError` callback given at creation.
 *
 * @module
 */

/** Removes the listener it was returned for. */
export type Unsubscribe = () => void;

/**
 * Emits events of a map of event names to payload types.
 *
 * @example
 * ```ts
 * import { Emitter } from "./events.ts";
 * const emitter = new Emitter<{ ping: { n: number } }>();
 * let total = 0;
 * const off = emitter.on("ping", (event) => void (total += event.n));
 * emitter.emit("ping", { n: 2 });
 * off();
 * emitter.emit("ping", { n: 5 });
 * console.assert(total === 2);
 * ```
 */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  readonly #listeners = new Map<keyof Events, Array<(event: never) => void>>();
  readonly #onListenerError: (error: unknown, type: string) => void;

  constructor(onListenerError?: (error: unknown, type: string) => void) {
    this.#onListenerError = onListenerError ?? ((error) => {
      throw error;
    });
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): Unsubscribe {
    if (typeof listener !== "function") {
      throw new TypeError(`Cannot listen to "${String(type)}": the listener is not a function`);
    }
    const list = this.#listeners.get(type) ?? [];
    // Copy on write: emitting iterates a stable array even if a listener unsubscribes.
    this.#listeners.set(type, [...list, listener as (event: never) => void]);
    return () => {
      const current = this.#listeners.get(type);
      if (current) this.#listeners.set(type, current.filter((item) => item !== listener));
    };
  }

  /** Whether anyone listens to `type`: lets callers skip building an event nobody reads. */
  has(type: keyof Events): boolean {
    return (this.#listeners.get(type)?.length ?? 0) > 0;
  }

  /** Calls every listener of `type` with `event`. */
  emit<K extends keyof Events>(type: K, event: Events[K]): void {
    const list = this.#listeners.get(type);
    if (list === undefined) return;
    for (const listener of list) {
      try {
        (listener as (event: Events[K]) => void)(event);
      } catch (error) {
        this.#onListenerError(error, String(type));
      }
    }
  }
}
