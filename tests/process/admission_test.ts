/**
 * The admission deadline frees what it guards: wherever a connection is stuck
 * before admission (TCP accepted, TLS under way, the protocol handshake, the
 * authenticate hook), `handshakeTimeout` closes the manager's socket and frees
 * its descriptor, while the peer still holds its end open. Counted in
 * `/proc/self/fd` and `/proc/net/tcp`.
 */
import assert from "node:assert/strict";
import { Device, type Manager, TimeoutError } from "../../mod.ts";
import { encodeHandshake } from "../../lib/protocol/mod.ts";
import {
  establishedSockets,
  LogCapture,
  openDescriptors,
  RawDevice,
  startManager,
  tlsFiles,
  waitFor,
} from "../_helpers.ts";

const TLS = { cert: tlsFiles.cert, key: tlsFiles.key };
const PEERS = 20;

/** The first bytes of a TLS record carrying a ClientHello, cut short. */
const PARTIAL_CLIENT_HELLO = Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00);

interface Stall {
  readonly name: string;
  readonly tls: boolean;
  /** Opens one peer that gets stuck; returns what to close at the end. */
  readonly open: (manager: Manager) => Promise<{ close(): void }>;
  readonly authenticate?: () => Promise<boolean>;
}

const stalls: Stall[] = [
  {
    name: "TCP accepted on a TLS manager, nothing sent",
    tls: true,
    open: (manager) => Deno.connect({ hostname: "127.0.0.1", port: manager.port }),
  },
  {
    name: "a TLS ClientHello cut short",
    tls: true,
    open: async (manager) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: manager.port });
      await conn.write(PARTIAL_CLIENT_HELLO);
      return conn;
    },
  },
  {
    name: "TLS complete, no protocol answer",
    tls: true,
    open: async (manager) => {
      const device = await RawDevice.connect(manager.port, { tls: true });
      await device.readBytes(1); // getinfo: TLS is done
      return device;
    },
  },
  {
    name: "plain TCP, no protocol answer",
    tls: false,
    open: (manager) => Deno.connect({ hostname: "127.0.0.1", port: manager.port }),
  },
  {
    name: "an authenticate hook that never answers",
    tls: false,
    authenticate: () => new Promise<boolean>(() => {}),
    open: async (manager) => {
      const device = await RawDevice.connect(manager.port);
      await device.readBytes(1);
      await device.write(
        encodeHandshake({ uuid: crypto.randomUUID(), type: "light", data: {} }, 1),
      );
      return device;
    },
  },
];

for (const stall of stalls) {
  Deno.test(`admission deadline (${stall.name}): the manager's sockets and descriptors are freed`, async () => {
    await using logs = await LogCapture.start();
    await using manager = await startManager({
      tls: stall.tls ? TLS : undefined,
      handshakeTimeout: 1,
      authenticate: stall.authenticate,
    });
    const baseline = openDescriptors();
    const peers = await Promise.all(Array.from({ length: PEERS }, () => stall.open(manager)));
    try {
      await waitFor(() => establishedSockets(manager.port).local === PEERS, "accepted");
      await waitFor(() => manager.pendingHandshakes === PEERS, "all pending");
      // Past the deadline: the manager's ends are gone while the peers keep theirs open.
      await waitFor(() => establishedSockets(manager.port).local === 0, "manager's sockets closed");
      await waitFor(() => manager.pendingHandshakes === 0, "no handshake pending");
      await waitFor(
        () => openDescriptors() === baseline + PEERS,
        "only the peers' descriptors left",
      );
      await logs.waitFor({ reason: "timeout" });
      assert.equal(manager.size, 0);
    } finally {
      for (const peer of peers) {
        try {
          peer.close();
        } catch { /* closed */ }
      }
    }
    await waitFor(() => openDescriptors() === baseline, "back to the baseline");
  });
}

Deno.test("maxPendingHandshakes counts connections still in their TLS handshake", async () => {
  await using logs = await LogCapture.start();
  await using manager = await startManager({
    tls: TLS,
    handshakeTimeout: 5,
    maxPendingHandshakes: 5,
  });
  const peers = await Promise.all(
    Array.from({ length: 8 }, () => Deno.connect({ hostname: "127.0.0.1", port: manager.port })),
  );
  try {
    await waitFor(() => logs.matching({ reason: "limit" }).length === 3, "3 refused at accept");
    assert.equal(manager.pendingHandshakes, 5);
    await waitFor(() => establishedSockets(manager.port).local === 5, "5 kept");
  } finally {
    for (const peer of peers) peer.close();
  }
});

Deno.test("a TLS Device whose manager never completes the TLS handshake times out and frees its socket", async () => {
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (silent.addr as Deno.NetAddr).port;
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) accepted.push(conn);
  })();
  try {
    await assert.rejects(
      Device.connect({ port, type: "light", tls: { caCerts: [tlsFiles.ca] }, connectTimeout: 0.5 }),
      TimeoutError,
    );
    assert.equal(accepted.length, 1);
    // The device's end is closed: past its ClientHello, the silent server reads the end of the stream.
    const buffer = new Uint8Array(4096);
    let count: number | null = 0;
    while (count !== null) count = await accepted[0].read(buffer).catch(() => null);
    await waitFor(() => establishedSockets(port).remote === 0, "the device's socket closed");
  } finally {
    silent.close();
    await accepting;
    for (const conn of accepted) conn.close();
  }
});
