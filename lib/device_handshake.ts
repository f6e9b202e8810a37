/**
 * The device's side of the handshake, in one place: answer `getinfo` with
 * `UUID##TYPE##JSON` (behind the mode-2 preamble), answer a `CHALLENGE` with a
 * `PROOF`, and read the manager's verdict: `WELCOME` with its settings, or
 * `END` with the reason it refused. The manager's side is lib/admission.ts.
 *
 * @module
 */

import { InvalidInfo, isInvalidInfoReason, ProtocolError } from "./errors.ts";
import {
  type DeviceInfo,
  encodeFrame,
  encodeHandshake,
  FrameType,
  type FrameTypeValue,
  GETINFO_BYTE,
  type ManagerSettings,
  parseEnd,
  parseWelcome,
  type ProtocolMode,
} from "./protocol/mod.ts";
import { withSlack } from "./keepalive.ts";

/**
 * The device's answer to a later `getinfo` (its info may have changed): the
 * `UUID##TYPE##JSON` text in mode 1, an `INFO` frame (no preamble) in mode 2.
 */
export function encodeInfoAnswer(info: DeviceInfo, mode: ProtocolMode): Uint8Array {
  const text = encodeHandshake(info, 1);
  return mode === 1 ? text : encodeFrame(FrameType.INFO, text);
}

/** Where a device's handshake stands. */
export type HandshakeState = "getinfo" | "welcome" | "open";

/** The manager's handshake frame, read: what the device does next. */
export type HandshakeStep =
  | { readonly kind: "welcome"; readonly settings: ManagerSettings }
  | { readonly kind: "challenge"; readonly challenge: Uint8Array }
  | { readonly kind: "refused"; readonly refusal: InvalidInfo }
  | { readonly kind: "end" };

/**
 * Answers the manager's opening `getinfo`, which must be the first byte it sends.
 *
 * @returns The answer to send, and the bytes that came after `getinfo`.
 * @throws {ProtocolError} When the first byte is anything else.
 */
export function answerGetinfo(
  chunk: Uint8Array,
  info: DeviceInfo,
  mode: ProtocolMode,
): { readonly answer: Uint8Array; readonly rest: Uint8Array } {
  if (chunk[0] !== GETINFO_BYTE) {
    throw new ProtocolError(
      "sequence",
      `expected getinfo (0x01) from the manager, got 0x${chunk[0].toString(16)}`,
    );
  }
  return { answer: encodeHandshake(info, mode), rest: chunk.subarray(1) };
}

/**
 * Reads a frame that arrives while the device waits for `WELCOME` (mode 2).
 * An `END` whose reason is an {@linkcode InvalidInfo} reason is a refusal.
 *
 * @throws {ProtocolError} On any other frame type.
 */
export function readHandshakeFrame(type: FrameTypeValue, payload: Uint8Array): HandshakeStep {
  switch (type) {
    case FrameType.WELCOME:
      return { kind: "welcome", settings: parseWelcome(payload) };
    case FrameType.CHALLENGE:
      return { kind: "challenge", challenge: payload };
    case FrameType.END: {
      const { reason, message } = parseEnd(payload);
      if (!reason || !isInvalidInfoReason(reason)) return { kind: "end" };
      return {
        kind: "refused",
        refusal: new InvalidInfo(reason, `the manager refused the handshake: ${message}`),
      };
    }
    default:
      throw new ProtocolError(
        "sequence",
        `expected WELCOME, got frame type 0x${type.toString(16)}`,
      );
  }
}

/**
 * Seconds of the manager's silence after which it counts as gone: the
 * `keepalive` option if given, else (mode 2) the manager's promise in
 * `WELCOME`, `heartbeatRate + heartbeatTimeout` with slack; `undefined` for no
 * watch (mode 1 without the option).
 */
export function keepaliveSeconds(
  option: number | undefined,
  settings: ManagerSettings | null,
): number | undefined {
  if (option !== undefined) return option;
  const { heartbeatRate, heartbeatTimeout } = settings ?? {};
  if (heartbeatRate === undefined || heartbeatTimeout === undefined) return undefined;
  return withSlack(heartbeatRate + heartbeatTimeout);
}
