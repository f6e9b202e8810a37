/**
 * Transports: the byte streams both ends of a connection read and write, over
 * TCP or TLS, with one promise kept everywhere: `close()` frees the socket and
 * its descriptor at once, whatever state the connection is in.
 *
 * Plain TCP uses `Deno.listen`/`Deno.connect` directly. TLS does not use
 * `Deno.listenTls`/`Deno.connectTls`: a Deno TLS connection whose TLS handshake
 * never completes cannot be closed from JavaScript (the runtime keeps the
 * socket until the handshake ends or the peer leaves, so a peer that connects
 * and stays silent holds a descriptor for ever). TLS here runs on `node:tls`
 * over a `node:net` socket the library owns, so a deadline can always destroy
 * the socket, during the TLS handshake too.
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";
import { ListenError } from "./errors.ts";

/**
 * One connection's byte stream; a `Deno.Conn` is one.
 *
 * @example
 * ```ts ignore
 * const transport: Transport = await Deno.connect({ hostname: "127.0.0.1", port: 8595 });
 * ```
 */
export interface Transport {
  /** The peer's address. */
  readonly remoteAddr: Deno.Addr;
  /**
   * Reads into `buffer`.
   *
   * @returns Bytes read, or `null` at the end of the stream.
   */
  read(buffer: Uint8Array): Promise<number | null>;
  /**
   * Writes some of `bytes`.
   *
   * @returns How many were written.
   */
  write(bytes: Uint8Array): Promise<number>;
  /** Shuts the write side down (the peer reads the end of the stream). */
  closeWrite(): Promise<void>;
  /** Closes the socket and frees its descriptor now. Throws if already closed. */
  close(): void;
}

/** Accepts transports; `Deno.Listener` without the parts the library does not use. */
export interface TransportListener {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /**
   * The next connection, as soon as TCP accepted it (before any TLS handshake).
   *
   * @throws {Deno.errors.BadResource} Once the listener is closed.
   */
  accept(): Promise<Transport>;
  /** Stops listening. Connections already accepted stay open. */
  close(): void;
}

/** PEM certificate chain and private key of a TLS server. */
export interface TlsServerFiles {
  /** Certificate chain, PEM. */
  readonly cert: string;
  /** Private key, PEM. */
  readonly key: string;
}

/**
 * Listens on `hostname:port`, with TLS when `tls` is given, sharing the port
 * with other processes when `reusePort` is set (then through `node:net`).
 *
 * @throws {ListenError} When the port cannot be opened (taken, not allowed, no such address).
 *
 * @example
 * ```ts ignore
 * const listener = await listenTransport({ hostname: "127.0.0.1", port: 0 });
 * const transport = await listener.accept();
 * ```
 */
export async function listenTransport(
  options: { hostname: string; port: number; tls?: TlsServerFiles; reusePort?: boolean },
): Promise<TransportListener> {
  if (!options.tls && !options.reusePort) {
    let listener: Deno.TcpListener;
    try {
      listener = Deno.listen({ hostname: options.hostname, port: options.port });
    } catch (error) {
      throw ListenError.from(error, options.hostname, options.port);
    }
    return {
      addr: listener.addr,
      accept: async () => {
        const conn = await listener.accept();
        conn.setNoDelay(true);
        return conn;
      },
      close: () => listener.close(),
    };
  }
  return await NodeListener.listen(options.hostname, options.port, options.tls, options.reusePort);
}

/**
 * Connects to `hostname:port`, with TLS when `tls` is given (trusting
 * `caCerts` when given, else the default roots), from `localAddress` when
 * given (through `node:net`, as TLS is: `Deno.connect` cannot choose it; the
 * bench's `--scale` load generators use it). Resolves once TCP is connected; the TLS
 * handshake completes with the first read or write, and `close()` ends it at
 * any point.
 *
 * @throws {Error} When the connection is refused or `signal` aborts first.
 *
 * @example
 * ```ts ignore
 * const transport = await connectTransport({ hostname: "127.0.0.1", port: 8595 });
 * ```
 */
export async function connectTransport(options: {
  hostname: string;
  port: number;
  tls?: { readonly caCerts?: readonly string[] };
  localAddress?: string;
  signal?: AbortSignal;
}): Promise<Transport> {
  const { hostname, port, signal, localAddress } = options;
  if (!options.tls && !localAddress) {
    const conn = await Deno.connect({ hostname, port, signal });
    conn.setNoDelay(true);
    return conn;
  }
  signal?.throwIfAborted();
  const raw = net.connect({ host: hostname, port, localAddress, noDelay: true });
  const socket = options.tls
    ? tls.connect({
      socket: raw,
      servername: net.isIP(hostname) ? undefined : hostname,
      ca: options.tls.caCerts ? [...options.tls.caCerts] : undefined,
    })
    : raw;
  const transport = new SocketTransport(socket, raw);
  const onAbort = () => transport.destroy();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      raw.once("connect", resolve);
      transport.failed.then(reject);
    });
  } catch (error) {
    transport.destroy();
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (signal?.aborted) throw signal.reason;
  return transport;
}

/**
 * A `node:net` server: TLS on `node:tls` over sockets the listener owns
 * (accepted as soon as TCP is), or, without a context, the plain sockets.
 */
class NodeListener implements TransportListener {
  readonly addr: Deno.NetAddr;
  readonly #server: net.Server;
  readonly #context: tls.SecureContext | null;
  readonly #ready: SocketTransport[] = [];
  #waiter: PromiseWithResolvers<Transport> | null = null;
  #closed = false;

  private constructor(
    server: net.Server,
    context: tls.SecureContext | null,
    addr: Deno.NetAddr,
  ) {
    this.#server = server;
    this.#context = context;
    this.addr = addr;
    server.on("connection", (raw: net.Socket) => this.#onConnection(raw));
  }

  static async listen(
    hostname: string,
    port: number,
    files: TlsServerFiles | undefined,
    reusePort = false,
  ): Promise<NodeListener> {
    const context = files ? tls.createSecureContext({ cert: files.cert, key: files.key }) : null;
    const server = net.createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error) => reject(ListenError.from(error, hostname, port, reusePort)));
      try {
        server.listen({ host: hostname, port, reusePort } as net.ListenOptions, resolve);
      } catch (error) {
        reject(ListenError.from(error, hostname, port, reusePort));
      }
    });
    const address = server.address() as net.AddressInfo;
    return new NodeListener(server, context, {
      transport: "tcp",
      hostname: address.address,
      port: address.port,
    });
  }

  accept(): Promise<Transport> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("listener closed"));
    const next = this.#ready.shift();
    if (next) return Promise.resolve(next);
    this.#waiter ??= Promise.withResolvers<Transport>();
    return this.#waiter.promise;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const transport of this.#ready.splice(0)) transport.destroy();
    this.#waiter?.reject(new Deno.errors.BadResource("listener closed"));
    this.#waiter = null;
  }

  #onConnection(raw: net.Socket): void {
    if (this.#closed) {
      raw.destroy();
      return;
    }
    const socket = this.#context
      ? new tls.TLSSocket(raw, { isServer: true, secureContext: this.#context })
      : raw;
    const transport = new SocketTransport(socket, raw);
    const waiter = this.#waiter;
    this.#waiter = null;
    if (waiter) waiter.resolve(transport);
    else this.#ready.push(transport);
  }
}

/**
 * A `node:tls` socket as a {@linkcode Transport}: reads pull from the socket
 * one chunk at a time (the socket is paused otherwise, so TCP pushes back on a
 * peer nobody reads), writes resolve once handed to the kernel.
 */
class SocketTransport implements Transport {
  readonly remoteAddr: Deno.NetAddr;
  readonly #socket: net.Socket;
  readonly #raw: net.Socket;
  readonly #failed = Promise.withResolvers<Error>();
  #chunk: Uint8Array | null = null;
  #offset = 0;
  #ended = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;
  #destroyed = false;

  constructor(socket: net.Socket, raw: net.Socket) {
    this.#socket = socket;
    this.#raw = raw;
    this.remoteAddr = {
      transport: "tcp",
      hostname: raw.remoteAddress ?? "",
      port: raw.remotePort ?? 0,
    };
    socket.pause();
    socket.on("data", (chunk: Uint8Array) => {
      socket.pause();
      this.#chunk = chunk;
      this.#offset = 0;
      this.#notify();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    const fail = (error: Error) => {
      this.#error ??= error;
      this.#failed.resolve(error);
      this.#notify();
    };
    socket.on("error", fail);
    raw.on("error", fail);
    socket.on("close", () => {
      if (this.#ended) this.#notify();
      else fail(new Deno.errors.ConnectionReset("the connection closed"));
    });
  }

  /** Resolves with the first error (a failed TLS handshake, a reset, a destroy). */
  get failed(): Promise<Error> {
    return this.#failed.promise;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunk === null) {
      if (this.#destroyed) throw new Deno.errors.BadResource("the connection is closed");
      if (this.#ended) return null;
      if (this.#error) throw this.#error;
      const woken = new Promise<void>((resolve) => this.#wake = resolve);
      this.#socket.resume();
      await woken;
    }
    const chunk = this.#chunk;
    const count = Math.min(buffer.length, chunk.length - this.#offset);
    buffer.set(chunk.subarray(this.#offset, this.#offset + count));
    this.#offset += count;
    if (this.#offset === chunk.length) this.#chunk = null;
    return count;
  }

  write(bytes: Uint8Array): Promise<number> {
    if (this.#destroyed) return Promise.reject(new Deno.errors.BadResource("closed"));
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error) => error ? reject(error) : resolve(bytes.length));
    });
  }

  closeWrite(): Promise<void> {
    if (this.#destroyed) return Promise.reject(new Deno.errors.BadResource("closed"));
    return new Promise((resolve) => {
      this.#socket.end(() => resolve());
      this.#failed.promise.then(() => resolve());
    });
  }

  close(): void {
    if (this.#destroyed) throw new Deno.errors.BadResource("the connection is already closed");
    this.destroy();
  }

  /** Destroys both sockets, freeing the descriptor; idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#socket.destroy();
    this.#raw.destroy();
    this.#failed.resolve(new Deno.errors.BadResource("the connection is closed"));
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
