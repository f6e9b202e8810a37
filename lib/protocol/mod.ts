/**
 * The wire protocol as pure functions: no sockets, no timers. The manager and
 * the device side both build on these, and so can anyone writing a device or
 * a tool at the wire level (`@iot-manager/core/protocol`); `docs/PROTOCOL.md`
 * describes the same bytes for people writing devices in other languages.
 *
 * - `mode1.ts`: the seed's protocol: command bytes, `beat`, no boundaries.
 * - `frames.ts`: mode 2's frames, how they are cut from a stream, `END`'s reason.
 * - `handshake_text.ts`: the answer `UUID##TYPE##JSON`, parsed and encoded.
 * - `handshake_reader.ts`: reading an answer as it arrives, in linear time.
 * - `welcome.ts`: mode 2's `WELCOME`, the settings a manager announces.
 * - `delivery.ts`: acknowledged delivery (`MESSAGE`, `ACK`) and how features are negotiated.
 * - `state.ts`: desired and reported state (`DELTA`, `REPORT`), merge patches and deltas.
 * - `types.ts`: the protocol mode and a device's identity.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder, FrameType } from "@iot-manager/core/protocol";
 * const decoder = new FrameDecoder(1024);
 * decoder.push(encodeFrame(FrameType.DATA, "on"), (type, payload) => console.log(type, payload));
 * ```
 *
 * @module
 */

export {
  BEAT_TEXT,
  END_TEXT,
  GETINFO_BYTE,
  HEARTBEAT_BYTE,
  Mode1Reader,
  partialBeatAtEnd,
  splitManagerChunk,
  splitMode1Chunk,
} from "./mode1.ts";
export {
  encodeEnd,
  encodeFrame,
  encodeMessage,
  FRAME_HEADER_SIZE,
  FrameDecoder,
  type FrameHandler,
  type FrameReceiver,
  FrameType,
  type FrameTypeValue,
  isFrameType,
  MODE2_PREAMBLE,
  parseEnd,
  readFrameAt,
} from "./frames.ts";
export {
  decodeUtf8,
  encodeHandshake,
  parseHandshake,
  preview,
  scanHandshakeText,
  type TextScan,
} from "./handshake_text.ts";
export {
  HandshakeReader,
  type HandshakeReaderOptions,
  type HandshakeScan,
  readHandshake,
} from "./handshake_reader.ts";
export { encodeWelcome, type ManagerSettings, parseWelcome } from "./welcome.ts";
export {
  ACK_ID_SIZE,
  encodeAck,
  encodeAckedHeader,
  encodeAckedMessage,
  encodeFeatures,
  type Feature,
  FEATURES,
  knownFeatures,
  parseAck,
  parseAckedMessage,
  parseFeatures,
} from "./delivery.ts";
export {
  encodeDelta,
  encodeReport,
  isObject,
  jsonEqual,
  type JsonObject,
  type JsonValue,
  MAX_STATE_DEPTH,
  mergePatch,
  parseDelta,
  parseReport,
  stateDelta,
  stateProblem,
} from "./state.ts";
export type { DeviceInfo, ProtocolMode } from "./types.ts";
// What these functions throw, so wire-level code needs no second entry point.
export {
  InvalidInfo,
  type InvalidInfoReason,
  ProtocolError,
  type ProtocolErrorReason,
} from "../errors.ts";
