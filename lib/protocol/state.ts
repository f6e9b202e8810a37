/**
 * Device state as JSON objects, the way AWS IoT device shadows and Azure IoT
 * Hub device twins keep it: the application's *desired* state, the device's
 * *reported* state, and the *delta* between them (what the device still has
 * to do). Changes travel as JSON Merge Patches (RFC 7386): a key set to
 * `null` is removed, nested objects are merged, anything else replaces.
 * Pure functions, and the two mode-2 frames that carry them (`DELTA`,
 * `REPORT`; feature `state`).
 *
 * @module
 */

import { ProtocolError } from "../errors.ts";
import { encodeFrame, FrameType } from "./frames.ts";
import { decodeUtf8 } from "./handshake_text.ts";

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/** A JSON object: what desired, reported and delta states are. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * Applies a JSON Merge Patch (RFC 7386) to `target` and returns the result
 * (neither argument is changed).
 *
 * @example
 * ```ts
 * import { mergePatch } from "@iot-manager/core/protocol";
 * console.log(mergePatch({ on: true, color: { r: 1, g: 2 } }, { color: { g: null }, level: 40 }));
 * // { on: true, color: { r: 1 }, level: 40 }
 * ```
 */
export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const result: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else if (isObject(value)) {
      const current = own(result, key);
      setOwn(result, key, mergePatch(isObject(current) ? current : {}, value));
    } else setOwn(result, key, value);
  }
  return result;
}

/** `object[key]` if it is the object's own (a key like `__proto__` never reads the prototype). */
function own(object: JsonObject, key: string): JsonValue | undefined {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/** Sets an own property, as `JSON.parse` does: `__proto__` is a key, never the prototype. */
function setOwn(object: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(object, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/**
 * What the device still has to do: every key of `desired` whose value differs
 * from `reported` (objects compared key by key, arrays and scalars as wholes).
 * Empty when the device reports what is desired; keys only reported are not
 * part of it.
 *
 * @example
 * ```ts
 * import { stateDelta } from "@iot-manager/core/protocol";
 * console.log(stateDelta({ locked: true, mode: "away" }, { locked: false, mode: "away", battery: 80 }));
 * // { locked: true }
 * ```
 */
export function stateDelta(desired: JsonObject, reported: JsonObject): JsonObject {
  const delta: JsonObject = {};
  for (const [key, want] of Object.entries(desired)) {
    const have = own(reported, key);
    if (isObject(want) && isObject(have)) {
      const inner = stateDelta(want, have);
      if (Object.keys(inner).length > 0) setOwn(delta, key, inner);
    } else if (!jsonEqual(want, have)) setOwn(delta, key, want);
  }
  return delta;
}

/** Whether two JSON values are equal (objects regardless of key order). */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length &&
      keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
  }
  return false;
}

/** Deepest nesting of objects and arrays accepted in a state or a patch. */
export const MAX_STATE_DEPTH = 32;

/**
 * Checks that `value` is a JSON object a state can hold: only `null`,
 * booleans, finite numbers, strings, arrays and plain objects, at most
 * {@linkcode MAX_STATE_DEPTH} deep, and at most `maxBytes` as JSON text.
 * Without the check, a `BigInt`, a function or `NaN` would break the delta
 * on its way to the device, and a deep one the recursion that merges it.
 *
 * @returns Why it is not, or `undefined` when it is.
 *
 * @example
 * ```ts
 * import { stateProblem } from "@iot-manager/core/protocol";
 * console.log(stateProblem({ locked: true }, 65536)); // undefined
 * console.log(stateProblem({ n: NaN }, 65536)); // "n: NaN is not a JSON value"
 * ```
 */
export function stateProblem(value: unknown, maxBytes: number): string | undefined {
  if (!isObject(value)) return "a state or patch must be a JSON object";
  const problem = jsonProblem(value, "", 0);
  if (problem) return problem;
  const bytes = new TextEncoder().encode(JSON.stringify(value)).length;
  return bytes > maxBytes ? `${bytes} bytes of JSON is over the ${maxBytes}-byte limit` : undefined;
}

function jsonProblem(value: unknown, path: string, depth: number): string | undefined {
  const at = path === "" ? "" : `${path}: `;
  switch (typeof value) {
    case "boolean":
    case "string":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : `${at}${value} is not a JSON value`;
    case "object": {
      if (value === null) return undefined;
      if (depth >= MAX_STATE_DEPTH) return `${at}nested deeper than ${MAX_STATE_DEPTH} levels`;
      const prototype = Object.getPrototypeOf(value);
      if (!Array.isArray(value) && prototype !== Object.prototype && prototype !== null) {
        return `${at}a ${prototype?.constructor?.name ?? "non-plain"} object is not a JSON value`;
      }
      for (const [key, item] of Object.entries(value)) {
        const problem = jsonProblem(item, path === "" ? key : `${path}.${key}`, depth + 1);
        if (problem) return problem;
      }
      return undefined;
    }
    default:
      return `${at}a ${typeof value} is not a JSON value`;
  }
}

/** Whether `value` is a JSON object (not an array, not null). */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Encodes a `DELTA` frame: the desired state's version and what differs.
 *
 * @example
 * ```ts
 * import { encodeDelta, parseDelta } from "@iot-manager/core/protocol";
 * const frame = encodeDelta(3, { locked: true });
 * console.log(parseDelta(frame.subarray(5))); // { version: 3, state: { locked: true } }
 * ```
 */
export function encodeDelta(version: number, state: JsonObject): Uint8Array {
  return encodeFrame(FrameType.DELTA, JSON.stringify({ version, state }));
}

/**
 * Reads a `DELTA` payload.
 *
 * @throws {ProtocolError} With reason `payload` when it is not `{"version": n, "state": {...}}`.
 */
export function parseDelta(payload: Uint8Array): { version: number; state: JsonObject } {
  const value = parseJson(payload, "DELTA");
  if (!isObject(value) || typeof value.version !== "number" || !isObject(value.state)) {
    throw new ProtocolError("payload", 'DELTA must be {"version": number, "state": object}');
  }
  return { version: value.version, state: value.state };
}

/**
 * Encodes a `REPORT` frame: a patch of the device's reported state.
 *
 * @example
 * ```ts
 * import { encodeReport } from "@iot-manager/core/protocol";
 * const frame = encodeReport({ locked: true });
 * console.log(new TextDecoder().decode(frame.subarray(5))); // {"locked":true}
 * ```
 */
export function encodeReport(patch: JsonObject): Uint8Array {
  return encodeFrame(FrameType.REPORT, JSON.stringify(patch));
}

/**
 * Reads a `REPORT` payload.
 *
 * @throws {ProtocolError} With reason `payload` when it is not a JSON object.
 */
export function parseReport(payload: Uint8Array): JsonObject {
  const value = parseJson(payload, "REPORT");
  if (!isObject(value)) throw new ProtocolError("payload", "REPORT must be a JSON object");
  const problem = jsonProblem(value, "", 0);
  if (problem) throw new ProtocolError("payload", `REPORT: ${problem}`);
  return value;
}

function parseJson(payload: Uint8Array, frame: string): unknown {
  let text: string;
  try {
    text = decodeUtf8(payload);
  } catch (error) {
    throw new ProtocolError("payload", `${frame} is not valid UTF-8`, { cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ProtocolError("payload", `${frame} is not JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
