/**
 * Device authentication. The manager's `authenticate` option is a hook that
 * sees each handshake (who the device says it is, where it connects from and,
 * in mode 2, its answer to a fresh challenge) and accepts or refuses it.
 * {@linkcode hmacAuthenticator} is a ready hook: each device holds a secret and
 * proves it with an HMAC of a nonce the manager picks for that connection, so
 * a recorded proof is useless on any other connection.
 *
 * @module
 */

import type { DeviceInfo, ProtocolMode } from "./protocol/mod.ts";

/** Size of the nonce in a `CHALLENGE` frame, in bytes. */
export const CHALLENGE_SIZE = 32;

/** What an `authenticate` hook is asked to judge. */
export interface AuthRequest {
  /** Who the device says it is. */
  readonly info: DeviceInfo;
  /** Where it connects from. */
  readonly address: Deno.NetAddr;
  /** Its protocol mode; mode-1 devices cannot answer a challenge. */
  readonly mode: ProtocolMode;
  /** True when a device with this UUID is connected now and would be replaced. */
  readonly replacing: boolean;
  /** The nonce the manager sent (mode 2 only). */
  readonly challenge?: Uint8Array;
  /** The device's `PROOF` (mode 2 only). */
  readonly proof?: Uint8Array;
}

/**
 * The verdict: `true` accepts; `false` or a string (the reason, logged and sent
 * to a mode-2 device) refuses.
 */
export type AuthVerdict = boolean | string;

/** The `authenticate` hook of {@linkcode ManagerOptions}. */
export type Authenticate = (request: AuthRequest) => AuthVerdict | Promise<AuthVerdict>;

/** Where {@linkcode hmacAuthenticator} finds a device's secret. */
export type SecretLookup = (
  uuid: string,
  type: string,
) => string | Uint8Array | undefined | Promise<string | Uint8Array | undefined>;

const encoder = new TextEncoder();

async function hmacKey(secret: string | Uint8Array): Promise<CryptoKey> {
  const raw = typeof secret === "string" ? encoder.encode(secret) : secret;
  return await crypto.subtle.importKey(
    "raw",
    raw as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

function signedBytes(challenge: Uint8Array, uuid: string): Uint8Array<ArrayBuffer> {
  const id = encoder.encode(uuid.toLowerCase());
  const data = new Uint8Array(challenge.length + id.length);
  data.set(challenge);
  data.set(id, challenge.length);
  return data;
}

/**
 * Computes a device's answer to a `CHALLENGE`: HMAC-SHA256 keyed with the
 * device's secret over the nonce followed by the device's UUID (lower case,
 * UTF-8). Devices in other languages compute the same (see docs/PROTOCOL.md).
 *
 * @param secret The device's secret.
 * @param challenge The nonce from the `CHALLENGE` frame.
 * @param uuid The device's UUID.
 * @returns The 32-byte proof to send in a `PROOF` frame.
 *
 * @example
 * ```ts
 * import { computeProof } from "@iot-manager/core";
 * const proof = await computeProof("s3cret", new Uint8Array(32), crypto.randomUUID());
 * console.log(proof.length); // 32
 * ```
 */
export async function computeProof(
  secret: string | Uint8Array,
  challenge: Uint8Array,
  uuid: string,
): Promise<Uint8Array> {
  const key = await hmacKey(secret);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, signedBytes(challenge, uuid)));
}

/**
 * A ready `authenticate` hook: per-device secrets checked with an HMAC of the
 * manager's per-connection nonce. Refuses devices without a secret, mode-1
 * devices (they cannot answer a challenge) and wrong or missing proofs.
 *
 * @param secretFor Looks up a device's secret; `undefined` refuses the device.
 * @returns The hook to pass as `authenticate`.
 *
 * @example
 * ```ts
 * import { hmacAuthenticator, Manager } from "@iot-manager/core";
 * const secrets = new Map([["1862cfe1-5dab-4d8e-a946-50d6728f830f", "s3cret"]]);
 * await using manager = await Manager.listen({
 *   validTypes: ["light"],
 *   port: 0,
 *   authenticate: hmacAuthenticator((uuid) => secrets.get(uuid)),
 * });
 * ```
 */
export function hmacAuthenticator(secretFor: SecretLookup): Authenticate {
  return async (request) => {
    if (request.mode !== 2 || !request.challenge) {
      return "protocol mode 1 cannot answer the authentication challenge";
    }
    if (!request.proof || request.proof.length === 0) return "no proof of the device secret";
    const secret = await secretFor(request.info.uuid, request.info.type);
    if (secret === undefined) return "no secret is known for this device";
    const key = await hmacKey(secret);
    const valid = await crypto.subtle.verify(
      "HMAC",
      key,
      request.proof as Uint8Array<ArrayBuffer>,
      signedBytes(request.challenge, request.info.uuid),
    );
    return valid || "wrong proof of the device secret";
  };
}
