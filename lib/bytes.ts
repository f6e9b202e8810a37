/**
 * Byte helpers shared by the protocol, the send buffer and the connections.
 *
 * @module
 */

/**
 * Joins byte arrays into one; returns the only array unchanged when given one.
 *
 * @example
 * ```ts
 * import { concatBytes } from "./lib/bytes.ts";
 * console.log(concatBytes([Uint8Array.of(1), Uint8Array.of(2, 3)])); // Uint8Array(3) [1, 2, 3]
 * ```
 */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  let length = 0;
  for (const chunk of chunks) length += chunk.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
