/**
 * The broker to compare with: a Mosquitto process the bench starts on a free
 * loopback port, and a minimal MQTT 3.1.1 client fleet of its own (CONNECT,
 * SUBSCRIBE, PUBLISH at QoS 0, PINGREQ) built on the same lean socket
 * machinery as the device fleet.
 *
 * @module
 */

import { type Endpoint, Fleet, FleetSocket } from "./load.ts";
import { Daemon, findBinary } from "./wire.ts";

const encoder = new TextEncoder();

/** MQTT control packet types (the high nibble of the first byte). */
const PacketType = { CONNACK: 2, PUBLISH: 3, SUBACK: 9, PINGRESP: 13 } as const;

/** `PINGREQ`: the client's keep-alive. */
export const PINGREQ: Uint8Array = Uint8Array.of(0xc0, 0x00);

/** Encodes a packet's remaining length (MQTT's variable-length integer). */
function remainingLength(length: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return bytes;
}

function packet(first: number, body: readonly number[] | Uint8Array): Uint8Array {
  const length = remainingLength(body.length);
  const out = new Uint8Array(1 + length.length + body.length);
  out[0] = first;
  out.set(length, 1);
  out.set(body, 1 + length.length);
  return out;
}

function mqttString(text: string): number[] {
  const bytes = encoder.encode(text);
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

/** `CONNECT` with a clean session and the given keep-alive (0 turns it off). */
export function encodeConnect(clientId: string, keepAliveSeconds: number): Uint8Array {
  return packet(0x10, [
    ...mqttString("MQTT"),
    4, // protocol level: 3.1.1
    0x02, // clean session
    keepAliveSeconds >> 8,
    keepAliveSeconds & 0xff,
    ...mqttString(clientId),
  ]);
}

/** `SUBSCRIBE` to one topic at QoS 0. */
export function encodeSubscribe(packetId: number, topic: string): Uint8Array {
  return packet(0x82, [packetId >> 8, packetId & 0xff, ...mqttString(topic), 0]);
}

/** `PUBLISH` at QoS 0 (no packet id). */
export function encodePublish(topic: string, payload: Uint8Array): Uint8Array {
  const name = mqttString(topic);
  const body = new Uint8Array(name.length + payload.length);
  body.set(name);
  body.set(payload, name.length);
  return packet(0x30, body);
}

/** One MQTT client socket with its packet-cutting state. */
export class MqttSocket extends FleetSocket {
  packetType = 0;
  /** 0 while waiting for a packet's first byte, then 1 while reading its length. */
  headerSeen = 0;
  packetLength = 0;
  lengthMultiplier = 1;
  bytesLeft = 0;
  /** `PINGRESP`s received. */
  pongs = 0;
}

let nextFleetId = 1;

/** The topic every subscriber listens to and the publisher publishes on. */
export const TOPIC = "bench/all";

/** MQTT clients: subscribers to {@linkcode TOPIC}, or (with `subscribe: false`) publishers. */
export class MqttFleet extends Fleet<MqttSocket> {
  readonly #keepAlive: number;
  readonly #subscribe: boolean;
  readonly #subscribePacket = encodeSubscribe(1, TOPIC);
  #pinger: ReturnType<typeof setInterval> | undefined;
  /** Client ids are unique across fleets, so no connection takes over another's session. */
  readonly #id = nextFleetId++;

  constructor(endpoint: Endpoint, options: { keepAliveSeconds: number; subscribe: boolean }) {
    super(endpoint);
    this.#keepAlive = options.keepAliveSeconds;
    this.#subscribe = options.subscribe;
  }

  /** `PINGRESP`s received by every socket so far. */
  get pongs(): number {
    let pongs = 0;
    for (const socket of this.sockets) pongs += socket.pongs;
    return pongs;
  }

  /** Sends every socket a `PINGREQ` each `intervalMs` (one timer for the fleet). */
  startPinging(intervalMs: number): void {
    this.stopPinging();
    this.#pinger = setInterval(() => this.writeEach(PINGREQ), intervalMs);
  }

  /** Stops the pings. Idempotent. */
  stopPinging(): void {
    clearInterval(this.#pinger);
    this.#pinger = undefined;
  }

  override close(): Promise<void> {
    this.stopPinging();
    return super.close();
  }

  protected create(conn: Deno.Conn, index: number, buffer: Uint8Array): MqttSocket {
    return new MqttSocket(conn, index, buffer);
  }

  protected greet(socket: MqttSocket): void {
    const role = this.#subscribe ? "sub" : "pub";
    this.write(socket, encodeConnect(`bench-${this.#id}-${role}-${socket.index}`, this.#keepAlive));
  }

  protected onBytes(socket: MqttSocket, count: number): void {
    const buffer = socket.buffer;
    let offset = 0;
    while (offset < count) {
      if (socket.bytesLeft > 0) {
        const take = Math.min(socket.bytesLeft, count - offset);
        socket.bytesLeft -= take;
        offset += take;
        if (socket.bytesLeft === 0) this.#onPacket(socket, buffer[offset - 1]);
        continue;
      }
      const byte = buffer[offset++];
      if (socket.headerSeen === 0) {
        socket.packetType = byte >> 4;
        socket.headerSeen = 1;
        socket.packetLength = 0;
        socket.lengthMultiplier = 1;
        continue;
      }
      socket.packetLength += (byte & 0x7f) * socket.lengthMultiplier;
      socket.lengthMultiplier *= 128;
      if (byte & 0x80) continue;
      socket.headerSeen = 0;
      if (socket.packetLength === 0) this.#onPacket(socket, 0);
      else socket.bytesLeft = socket.packetLength;
    }
  }

  /** A packet ended; `lastByte` is its final byte (the return code of CONNACK and SUBACK). */
  #onPacket(socket: MqttSocket, lastByte: number): void {
    switch (socket.packetType) {
      case PacketType.PUBLISH:
        return this.delivered(socket, 1);
      case PacketType.PINGRESP:
        socket.pongs++;
        return;
      case PacketType.CONNACK:
        if (lastByte !== 0) {
          return socket.ready.reject(new Error(`CONNACK refused the client: code ${lastByte}`));
        }
        if (this.#subscribe) return this.write(socket, this.#subscribePacket);
        return socket.ready.resolve();
      case PacketType.SUBACK:
        if (lastByte === 0x80) return socket.ready.reject(new Error("SUBACK refused the topic"));
        return socket.ready.resolve();
    }
  }
}

const CANDIDATES = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"];

/** Where the `mosquitto` binary is, or `null`. */
export function findMosquitto(): string | null {
  return findBinary("mosquitto", CANDIDATES);
}

/**
 * Starts Mosquitto on 127.0.0.1 and a free port with a minimal generated
 * configuration (read from stdin, so no file is written).
 */
export async function startMosquitto(binary: string): Promise<Daemon> {
  const help = await new Deno.Command(binary, { args: ["-h"], stdout: "piped", stderr: "null" })
    .output();
  const version = /mosquitto version (\S+)/.exec(new TextDecoder().decode(help.stdout))?.[1] ??
    "unknown";
  return await Daemon.start(
    "mosquitto",
    version,
    () =>
      new Deno.Command(binary, {
        args: ["-c", "/dev/stdin"],
        stdin: "piped",
        stdout: "null",
        stderr: "inherit",
      }).spawn(),
    async (child, port) => {
      const config = [
        `listener ${port} 127.0.0.1`,
        "allow_anonymous true",
        "max_connections -1",
        // Our manager logs nothing per connection in the bench either.
        "log_dest none",
      ].join("\n") + "\n";
      const writer = child.stdin.getWriter();
      await writer.write(encoder.encode(config));
      await writer.close();
    },
  );
}
