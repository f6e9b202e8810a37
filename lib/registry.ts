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
  /** The type each UUID is indexed under: an entry's `type` may change (`getData()`). */
  readonly #indexedType = new Map<string, string>();

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
    this.#index(entry);
    return previous;
  }

  /**
   * Moves this exact entry to the type it has now, after it re-identified
   * (its `type` changed since it was added). Does nothing for an entry that is
   * not present.
   *
   * @returns `true` if it was present.
   */
  retype(entry: T): boolean {
    if (this.#byUuid.get(entry.uuid) !== entry) return false;
    this.#unindex(entry);
    this.#index(entry);
    return true;
  }

  /**
   * Removes this exact entry (not a newer one under the same UUID), from the
   * type it is indexed under even if its `type` has changed since.
   *
   * @returns `true` if it was present.
   */
  remove(entry: T): boolean {
    if (this.#byUuid.get(entry.uuid) !== entry) return false;
    this.#byUuid.delete(entry.uuid);
    this.#unindex(entry);
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

  #index(entry: T): void {
    let group = this.#byType.get(entry.type);
    if (!group) this.#byType.set(entry.type, group = new Set());
    group.add(entry);
    this.#indexedType.set(entry.uuid, entry.type);
  }

  #unindex(entry: T): void {
    const type = this.#indexedType.get(entry.uuid)!;
    this.#indexedType.delete(entry.uuid);
    const group = this.#byType.get(type);
    group?.delete(entry);
    if (group?.size === 0) this.#byType.delete(type);
  }
}
