/**
 * Who listens for what: the manager's iterators and event handlers, each for
 * every device or for one type. The type filter lives here, written once.
 *
 * @module
 */

/** One listener: a queue or a handler, for every device (`type` undefined) or one type. */
export interface Subscriber<T> {
  /** The device type it wants, or undefined for every device. */
  readonly type: string | undefined;
  /** The queue or handler. */
  readonly target: T;
}

/**
 * Whether a listener wants an event about a device of `type`.
 *
 * @example
 * ```ts
 * import { wants } from "./lib/subscribers.ts";
 * console.log(wants({ type: "lock" }, "light"), wants({ type: undefined }, "light")); // false true
 * ```
 */
export function wants(subscriber: { readonly type: string | undefined }, type: string): boolean {
  return subscriber.type === undefined || subscriber.type === type;
}

/** What `matching` returns when nobody listens. */
const NONE: readonly never[] = Object.freeze([]);

/**
 * A set of listeners; iterate it and filter with {@linkcode wants}.
 *
 * @example
 * ```ts
 * import { Subscribers } from "./lib/subscribers.ts";
 * const handlers = new Subscribers<() => void>();
 * const off = handlers.add(() => console.log("a lock"), "lock");
 * off();
 * console.log(handlers.size); // 0
 * ```
 */
export class Subscribers<T> implements Iterable<Subscriber<T>> {
  readonly #entries = new Set<Subscriber<T>>();

  /** How many listen. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Adds a listener.
   *
   * @param target The queue or handler.
   * @param type Only devices of this type; undefined for all.
   * @param signal Removes the listener when aborted.
   * @returns A function that removes it (idempotent).
   */
  add(target: T, type: string | undefined, signal?: AbortSignal): () => void {
    const entry: Subscriber<T> = { type, target };
    this.#entries.add(entry);
    const remove = () => void this.#entries.delete(entry);
    signal?.addEventListener("abort", remove, { once: true });
    return remove;
  }

  /** The listeners that want an event about a device of `type` (see {@linkcode wants}). */
  matching(type: string): Iterable<T> {
    // Asked on every connect and every message: nobody listening costs no iterator.
    return this.#entries.size === 0 ? NONE : this.#matching(type);
  }

  *#matching(type: string): IterableIterator<T> {
    for (const entry of this.#entries) if (wants(entry, type)) yield entry.target;
  }

  /** Listeners of exactly `type` (not those of every type). */
  *ofType(type: string): IterableIterator<T> {
    for (const entry of this.#entries) if (entry.type === type) yield entry.target;
  }

  [Symbol.iterator](): Iterator<Subscriber<T>> {
    return this.#entries.values();
  }
}
