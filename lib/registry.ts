/**
 * Who is connected: devices by UUID and by type. No I/O.
 *
 * @module
 */

/** What the registry needs to know of an entry. */
export interface Registered {
  /** The device's UUID. */
  readonly uuid: string;
  /** The device's type. */
  readonly type: string;
}

/**
 * An index of live devices by UUID and by type.
 *
 * @example
 * ```ts
 * import { Registry } from "./lib/registry.ts";
 * const registry = new Registry<{ uuid: string; type: string }>();
 * registry.add({ uuid: "a", type: "light" });
 * console.log(registry.size, [...registry.ofType("light")].length); // 1 1
 * ```
 */
export class Registry<T extends Registered> {
  readonly #byUuid = new Map<string, T>();
  readonly #byType = new Map<string, Set<T>>();

  /** Number of entries. */
  get size(): number {
    return this.#byUuid.size;
  }

  /** The entry with this UUID, if any. */
  get(uuid: string): T | undefined {
    return this.#byUuid.get(uuid);
  }

  /**
   * Adds an entry; an entry already holding the UUID is removed and returned.
   *
   * @returns The entry it displaced, if any.
   */
  add(entry: T): T | undefined {
    const previous = this.#byUuid.get(entry.uuid);
    if (previous) this.remove(previous);
    this.#byUuid.set(entry.uuid, entry);
    let group = this.#byType.get(entry.type);
    if (!group) this.#byType.set(entry.type, group = new Set());
    group.add(entry);
    return previous;
  }

  /**
   * Removes this exact entry (not a newer one under the same UUID).
   *
   * @returns `true` if it was present.
   */
  remove(entry: T): boolean {
    if (this.#byUuid.get(entry.uuid) !== entry) return false;
    this.#byUuid.delete(entry.uuid);
    const group = this.#byType.get(entry.type);
    group?.delete(entry);
    if (group?.size === 0) this.#byType.delete(entry.type);
    return true;
  }

  /** Every entry. */
  all(): IterableIterator<T> {
    return this.#byUuid.values();
  }

  /** Entries of one type. */
  ofType(type: string): IterableIterator<T> {
    return (this.#byType.get(type) ?? new Set<T>()).values();
  }

  /** Number of entries of one type. */
  countOfType(type: string): number {
    return this.#byType.get(type)?.size ?? 0;
  }
}
