#!/usr/bin/env python3
"""A light that connects to an iot-manager, written from docs/PROTOCOL.md alone.

One file, standard library only, and written to run unchanged on MicroPython
(no f-strings, no typing, no argparse): copy it to a board, set DEFAULTS below
and call main([]).
"""

import binascii
import json
import socket
import struct
import sys
import time

try:
    from errno import ETIMEDOUT
except ImportError:
    ETIMEDOUT = 110

USAGE = """usage: python_device.py [options]

  --host HOST      manager address (default 127.0.0.1)
  --port PORT      manager port (default 8595)
  --uuid UUID      this device's UUID (default: a random version-4 UUID)
  --type TYPE      device type, one of the manager's validTypes (default light)
  --mode 1|2       protocol mode: 1 is the original text protocol, 2 is framed (default 2)
  --data JSON      extra fields for the handshake's JSON object, e.g. '{"room":"hall"}'
  --tls            connect with TLS
  --cafile FILE    CA certificate that signed the manager's (with --tls)
  --secret SECRET  answer the manager's authentication challenge (mode 2)
  --keepalive SECONDS
                   silence after which the manager counts as gone, once
                   connected; 0 turns it off (default: off in mode 1; in mode 2
                   what WELCOME promises, see below)
  --no-reconnect   exit when the connection ends instead of reconnecting
  --verbose        also print heartbeats, replies and (mode 2) each read

Commands it obeys: on, off, toggle, status, brightness 0-100; each is answered
with the light's state as JSON, anything else with {"error": ...}. A message
starting with "echo " is sent back unchanged, whatever bytes follow; a blank
message is not answered.

Output, one line each: "connected <uuid> mode <n>", "message: <text>",
"end: <why> (<reason>)", "refused: <why> (<reason>)", "disconnected: <why>",
"reconnecting in <s> s". <reason> is the manager's machine-readable code from
its END frame (mode 2), e.g. heartbeat, replaced, kicked, type, auth. A refusal
that another attempt would not change (any reason but timeout, auth or conflict) stops
the device with exit status 3 instead of reconnecting.

A manager that stops talking without closing (stopped, hung, or cut off by the
network) counts as gone once it has sent nothing for longer than it promised:
in mode 2, WELCOME's heartbeatRate + heartbeatTimeout plus 10% (and at least
1 s) of slack, as a live manager pings every heartbeatRate and drops a device
after heartbeatTimeout; or --keepalive SECONDS. Mode 1 has no WELCOME: pass
--keepalive above the manager's heartbeatRate + heartbeatTimeout (60 + 15 by
default). During the handshake the limit is 30 s. The device then prints, e.g.,
"disconnected: the manager sent nothing for 3.0 s (it promised a heartbeat
every 1 s)" and reconnects. Bytes that arrived while the device itself was
stalled are read before that verdict."""

DEFAULTS = {
    "host": "127.0.0.1",
    "port": 8595,
    "uuid": None,
    "type": "light",
    "mode": 2,
    "data": "{}",
    "tls": False,
    "cafile": None,
    "secret": None,
    "keepalive": None,
    "reconnect": True,
    "verbose": False,
}

# Mode 1: single control bytes from the manager.
GETINFO_BYTE = 1
HEARTBEAT_BYTE = 2
MODE1_END = b"end\n"
MODE1_BEAT = b"beat"

# Mode 2: frames of type (1 byte), length (uint32, big-endian), payload.
PREAMBLE = b"\x00IM\x02"
GETINFO = 0x01
HEARTBEAT = 0x02
BEAT = 0x03
END = 0x04
INFO = 0x05
WELCOME = 0x06
CHALLENGE = 0x07
PROOF = 0x08
FEATURES = 0x09
DATA = 0x10
MESSAGE = 0x11  # feature "ack": 4-byte id, then the message; answer ACK with the id
ACK = 0x12
DELTA = 0x13  # feature "state": {"version": n, "state": {...}}, desired minus reported
REPORT = 0x14  # feature "state": a JSON object merged into the reported state
HEADER_SIZE = 5
MAX_FRAME_SIZE = 1 << 20

READ_SIZE = 4096
RETRY_MIN = 0.25
RETRY_MAX = 30.0
CONNECT_TIMEOUT = 10
HANDSHAKE_SILENCE = 30  # the manager's own handshakeTimeout is 15 s by default


def say(line):
    try:
        print(line)
    except UnicodeError:
        print(line.encode("utf-8"))
    try:
        sys.stdout.flush()
    except AttributeError:
        pass  # MicroPython's stdout may not buffer at all


def clock():
    """A clock that only moves forward: seconds in CPython, milliseconds in MicroPython."""
    if hasattr(time, "monotonic"):
        return time.monotonic()
    return time.ticks_ms()


def seconds_since(start):
    if hasattr(time, "monotonic"):
        return time.monotonic() - start
    return time.ticks_diff(time.ticks_ms(), start) / 1000


def timed_out(error):
    """Whether an OSError is a read or write that ran out of time."""
    if hasattr(socket, "timeout"):
        return isinstance(error, socket.timeout)
    return error.args[:1] == (ETIMEDOUT,)  # MicroPython has no socket.timeout


def random_bytes(count):
    try:
        import os

        return os.urandom(count)
    except (ImportError, AttributeError):
        import random

        return bytes([random.getrandbits(8) for _ in range(count)])


def uuid4():
    raw = bytearray(random_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    h = binascii.hexlify(raw).decode()
    return "-".join((h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]))


def shown(payload):
    """A message as one printable line: its text, or its size and first bytes in hex."""
    try:
        text = payload.decode("utf-8")
    except UnicodeError:
        text = None
    if text is not None:
        for char in text:
            if ord(char) < 32 or ord(char) == 127:
                text = None
                break
    if text is None:
        head = binascii.hexlify(payload[:32]).decode()
        return "<%d bytes: %s%s>" % (len(payload), head, "..." if len(payload) > 32 else "")
    if len(text) > 512:
        return "%s... (%d bytes)" % (text[:512], len(payload))
    return text


def hmac_sha256(key, message):
    """HMAC-SHA256 from hashlib alone (MicroPython has no hmac module)."""
    import hashlib

    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes([b ^ 0x36 for b in key]) + message).digest()
    return hashlib.sha256(bytes([b ^ 0x5C for b in key]) + inner).digest()


def frame(kind, payload=b""):
    return struct.pack(">BI", kind, len(payload)) + payload


class FrameReader:
    """Cuts a mode-2 byte stream into frames, whatever the split into reads."""

    def __init__(self):
        self.pending = b""

    def feed(self, chunk):
        data = self.pending + chunk if self.pending else chunk
        frames = []
        offset = 0
        while len(data) - offset >= HEADER_SIZE:
            kind, length = struct.unpack_from(">BI", data, offset)
            if length > MAX_FRAME_SIZE:
                raise ValueError("frame of %d bytes is over our limit" % length)
            end = offset + HEADER_SIZE + length
            if len(data) < end:
                break
            frames.append((kind, data[offset + HEADER_SIZE : end]))
            offset = end
        self.pending = data[offset:]
        return frames


class Light:
    """The device's behaviour: every command is answered with the state as JSON."""

    def __init__(self):
        self.on = False
        self.brightness = 100

    def state(self):
        return {"on": self.on, "brightness": self.brightness}

    def apply(self, desired):
        """Takes the desired values it understands; the rest stays as reported."""
        if isinstance(desired.get("on"), bool):
            self.on = desired["on"]
        level = desired.get("brightness")
        if type(level) is int and 0 <= level <= 100:
            self.brightness = level

    def handle(self, payload):
        if payload[:5] == b"echo ":
            return payload  # binary-safe: sent back byte for byte
        try:
            words = payload.decode("utf-8").split()
        except UnicodeError:
            return self.error("a command must be UTF-8 text")
        if not words:
            return self.error("empty command")
        command = words[0].lower()
        if command == "on" and len(words) == 1:
            self.on = True
        elif command == "off" and len(words) == 1:
            self.on = False
        elif command == "toggle" and len(words) == 1:
            self.on = not self.on
        elif command == "status" and len(words) == 1:
            pass
        elif command == "brightness" and len(words) == 2:
            try:
                level = int(words[1])
            except ValueError:
                level = -1
            if level < 0 or level > 100:
                return self.error("brightness takes a whole number from 0 to 100")
            self.brightness = level
        else:
            return self.error("unknown command: %s" % " ".join(words)[:64])
        return json.dumps(self.state()).encode()

    def error(self, message):
        return json.dumps({"error": message}).encode()


class Device:
    """One device: connects, speaks mode 1 or 2, and reconnects after a drop."""

    def __init__(self, config):
        self.config = config
        self.mode = config["mode"]
        self.uuid = config["uuid"] or uuid4()
        self.extra = config["extra"]
        self.light = Light()
        self.sock = None
        self.raw = None  # the TCP socket under TLS, for a TLS object without settimeout
        self.accepted = False
        self.silence = None  # seconds without a byte after which the manager counts as gone
        self.promise = None  # where that limit came from, for the message
        self.heard = None  # clock() when the manager last sent something

    def verbose(self, line):
        if self.config["verbose"]:
            say(line)

    def info_text(self):
        data = {}
        data.update(self.extra)
        data.update(self.light.state())
        return ("%s##%s##%s" % (self.uuid, self.config["type"], json.dumps(data))).encode()

    def run(self):
        """Runs until stopped; returns the exit status when not reconnecting."""
        delay = RETRY_MIN
        while True:
            self.accepted = False
            try:
                self.session()
                why = "the connection closed"
            except Silent as silence:
                why = str(silence)
            except Refused as refusal:
                self.close()
                say("disconnected: refused (%s)" % refusal.reason)
                if refusal.reason not in TRANSIENT_REFUSALS:
                    return 3  # the same answer would be refused again
                why = None
            except OSError as error:
                why = "connection failed: %s" % (error,)
            except ValueError as error:
                why = "protocol error: %s" % (error,)
            self.close()  # not in a finally: on Ctrl-C, goodbye() still needs the socket
            if why is not None:
                say("disconnected: %s" % why)
            if not self.config["reconnect"]:
                return 0 if self.accepted else 1
            if self.accepted:
                delay = RETRY_MIN
            # Jitter, so a fleet dropped at once does not come back at once.
            wait = delay * (0.5 + random_bytes(1)[0] / 510)
            say("reconnecting in %.2f s" % wait)
            time.sleep(wait)
            delay = min(delay * 2, RETRY_MAX)

    def session(self):
        """One connection, until it ends; sets self.accepted once the manager kept us."""
        self.heard = clock()
        self.sock = self.connect()
        self.expect_within(HANDSHAKE_SILENCE, "during the handshake")
        # The manager speaks first, in both modes: the single byte 0x01 (not a frame).
        first = self.recv()
        if not first:
            return
        if first[:1] != bytes([GETINFO_BYTE]):
            raise ValueError("expected getinfo (0x01), got %r" % (first[:8],))
        if self.mode == 1:
            self.send(self.info_text())
            # Mode 1 has no acknowledgement: a rejected answer just gets the socket closed.
            say("connected %s mode 1" % self.uuid)
            self.keep_watch()
            self.mode1_loop()
        else:
            self.send(PREAMBLE + frame(INFO, self.info_text()))
            self.mode2_loop()

    def connect(self):
        host, port = self.config["host"], self.config["port"]
        family, kind, proto, _, address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(address)
            sock.settimeout(HANDSHAKE_SILENCE)  # bounds the TLS handshake too
            self.raw = sock
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (AttributeError, OSError):
                pass  # not every port has it; it only saves latency
            if self.config["tls"]:
                sock = wrap_tls(sock, host, self.config["cafile"])
        except BaseException:
            sock.close()
            raise
        return sock

    def expect_within(self, seconds, promise):
        """From now on, a manager silent for `seconds` (None: forever) counts as gone."""
        self.silence = seconds
        self.promise = promise
        if seconds is not None:
            self.verbose("silence limit: %.1f s (%s)" % (seconds, promise))
        target = self.sock if hasattr(self.sock, "settimeout") else self.raw
        target.settimeout(seconds)

    def recv(self):
        # A read that times out has found nothing waiting, even bytes that arrived while this
        # process was stalled: the verdict rests on evidence, not on our own lateness.
        try:
            if hasattr(self.sock, "recv"):
                data = self.sock.recv(READ_SIZE)
            else:
                data = self.sock.read(READ_SIZE)  # MicroPython's TLS sockets
        except OSError as error:
            if self.silence is None or not timed_out(error):
                raise
            silent = seconds_since(self.heard)
            raise Silent("the manager sent nothing for %.1f s (%s)" % (silent, self.promise))
        self.heard = clock()
        return data

    def send(self, data):
        started = clock()
        try:
            if hasattr(self.sock, "sendall"):
                self.sock.sendall(data)
                return
            view = memoryview(data)
            while len(view) > 0:
                written = self.sock.write(view)
                view = view[written if written is not None else len(view) :]
        except OSError as error:
            if self.silence is None or not timed_out(error):
                raise
            waited = seconds_since(started)
            raise Silent("the manager read nothing for %.1f s (%s)" % (waited, self.promise))

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
            self.raw = None

    def goodbye(self):
        """Leaves politely (mode 2 sends END) when the program is stopped."""
        if self.sock is not None and self.mode == 2:
            try:
                self.send(frame(END, b"device shutting down"))
            except OSError:
                pass
        self.close()

    def mode1_loop(self):
        while True:
            data = self.recv()
            if not data:
                return
            self.accepted = True  # the manager only talks to devices it kept
            # No message boundaries: control bytes may arrive glued to a message.
            message = data.replace(bytes([GETINFO_BYTE]), b"").replace(bytes([HEARTBEAT_BYTE]), b"")
            self.verbose("read: %d bytes, %d control bytes" % (len(data), len(data) - len(message)))
            for _ in range(data.count(bytes([HEARTBEAT_BYTE]))):
                self.verbose("heartbeat")
                self.send(MODE1_BEAT)
            if bytes([GETINFO_BYTE]) in data:
                self.verbose("getinfo")
                self.send(self.info_text())
            if message == MODE1_END:
                say("end: the manager is closing the connection")
                return
            if message:
                self.on_message(message)

    def mode2_loop(self):
        reader = FrameReader()
        while True:
            data = self.recv()
            if not data:
                return
            frames = reader.feed(data)
            messages = len([f for f in frames if f[0] == DATA])
            counts = (len(data), len(frames), messages)
            self.verbose("read: %d bytes, %d frames, %d messages" % counts)
            for kind, payload in frames:
                if not self.accepted and kind not in (WELCOME, CHALLENGE, END):
                    raise ValueError("expected WELCOME, got frame type 0x%02x" % kind)
                if kind == CHALLENGE and not self.accepted:
                    self.answer_challenge(payload)
                elif kind == WELCOME:
                    self.accepted = True
                    self.verbose("welcome: %s" % payload.decode())
                    self.announce_features(payload)
                    say("connected %s mode 2" % self.uuid)
                    self.keep_watch(payload)
                elif kind == HEARTBEAT:
                    self.verbose("heartbeat")
                    self.send(frame(BEAT))
                elif kind == GETINFO:
                    self.verbose("getinfo")
                    self.send(frame(INFO, self.info_text()))  # no preamble this time
                elif kind == END:
                    reason, why = parse_end(payload)
                    if not self.accepted:
                        say("refused: %s (%s)" % (why, reason or "no reason given"))
                        raise Refused(reason)
                    say("end: %s (%s)" % (why or "no reason given", reason or "no reason given"))
                    return
                elif kind == DATA:
                    self.on_message(payload)
                elif kind == DELTA:
                    self.on_delta(payload)
                elif kind == MESSAGE and len(payload) >= 4:
                    # Acknowledged on receipt: the id goes back as it came.
                    self.send(frame(ACK, payload[:4]))
                    self.on_message(payload[4:])
                else:
                    self.send(frame(END, b"unexpected frame type"))
                    raise ValueError("unexpected frame type 0x%02x" % kind)

    def announce_features(self, welcome):
        """Before any other frame: which of the features WELCOME offers this device uses."""
        try:
            offered = json.loads(welcome.decode()).get("features") or []
        except (ValueError, AttributeError):
            offered = []
        used = [name for name in ("ack", "state") if name in offered]
        if used:
            self.send(frame(FEATURES, json.dumps({"features": used}).encode()))

    def keep_watch(self, welcome=None):
        """Once connected: --keepalive if given, else what WELCOME promised, else no limit."""
        keepalive = self.config["keepalive"]
        if keepalive is not None:
            self.expect_within(keepalive or None, "--keepalive %g" % keepalive)
            return
        rate, timeout = None, None  # mode 1 has no WELCOME, so no promise
        if welcome is not None:
            try:
                settings = json.loads(welcome.decode())
                rate, timeout = settings["heartbeatRate"], settings["heartbeatTimeout"]
            except (ValueError, KeyError, TypeError):
                pass  # no usable promise: nothing to hold the manager to
        if type(rate) not in (int, float) or type(timeout) not in (int, float) or rate <= 0:
            self.expect_within(None, None)
            return
        # A live manager pings every heartbeatRate and drops us after heartbeatTimeout; the
        # slack absorbs its timers running late.
        promised = rate + max(timeout, 0)
        promise = "it promised a heartbeat every %g s" % rate
        self.expect_within(promised + max(1.0, promised / 10), promise)

    def answer_challenge(self, nonce):
        secret = self.config["secret"]
        if secret is None:
            self.send(frame(END, b"no secret configured"))
            raise ValueError("the manager asks for authentication: pass --secret")
        self.verbose("challenge")
        # The proof: HMAC-SHA256 keyed with the secret over the nonce and our UUID in lower case.
        message = nonce + self.uuid.lower().encode()
        self.send(frame(PROOF, hmac_sha256(secret.encode(), message)))

    def on_delta(self, payload):
        """Desired state differs from ours: apply what we understand, report the result."""
        try:
            delta = json.loads(payload.decode())["state"]
        except (ValueError, KeyError, TypeError, UnicodeError):
            raise ValueError("malformed DELTA frame: %r" % shown(payload))
        say("delta: %s" % json.dumps(delta, sort_keys=True))
        self.light.apply(delta)
        self.send(frame(REPORT, json.dumps(self.light.state()).encode()))

    def on_message(self, payload):
        say("message: %s" % shown(payload))
        if not payload.strip():
            return  # blank: nothing to answer
        reply = self.light.handle(payload)
        self.verbose("reply: %s" % shown(reply))
        self.send(reply if self.mode == 1 else frame(DATA, reply))


class Silent(Exception):
    """The manager sent nothing for longer than it promised; the message says how long."""


class Refused(Exception):
    """The manager refused the handshake; reason is its code (END's "reason: message")."""

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


# Refusals another attempt may pass; the others stop the device.
TRANSIENT_REFUSALS = ("timeout", "auth", "conflict")
REASON_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"


def parse_end(payload):
    """Splits an END payload "reason: message" into (reason, message); reason is None if absent."""
    text = shown(payload)
    head, sep, rest = text.partition(": ")
    if sep and head and head[0].isalpha() and all(c in REASON_CHARS for c in head):
        return head, rest
    return None, text


def wrap_tls(sock, host, cafile):
    import ssl

    if hasattr(ssl, "create_default_context"):  # CPython: verify against cafile or the system
        context = ssl.create_default_context(cafile=cafile)
        return context.wrap_socket(sock, server_hostname=host)
    return ssl.wrap_socket(sock, server_hostname=host)  # MicroPython: does not verify


def parse_args(argv):
    config = dict(DEFAULTS)
    flags = {
        "--tls": ("tls", True),
        "--no-reconnect": ("reconnect", False),
        "--verbose": ("verbose", True),
    }
    options = (
        "--host",
        "--port",
        "--uuid",
        "--type",
        "--mode",
        "--data",
        "--cafile",
        "--secret",
        "--keepalive",
    )
    i = 0
    while i < len(argv):
        arg = argv[i]
        value = None
        if arg.startswith("--") and "=" in arg:
            arg, value = arg.split("=", 1)
        if arg in ("-h", "--help"):
            say(USAGE)
            raise SystemExit(0)
        if arg in flags and value is None:
            config[flags[arg][0]] = flags[arg][1]
        elif arg in options:
            if value is None:
                i += 1
                if i == len(argv):
                    usage_error("%s needs a value" % arg)
                value = argv[i]
            config[arg[2:]] = value
        else:
            usage_error("unknown option %s" % arg)
        i += 1
    try:
        config["port"] = int(config["port"])
        config["mode"] = int(config["mode"])
    except ValueError:
        usage_error("--port and --mode take numbers")
    if config["keepalive"] is not None:
        try:
            config["keepalive"] = float(config["keepalive"])
        except ValueError:
            config["keepalive"] = -1.0
        if not 0 <= config["keepalive"] < 1e9:
            usage_error("--keepalive takes a number of seconds (0 turns it off)")
    if config["mode"] not in (1, 2):
        usage_error("--mode is 1 or 2")
    if config["uuid"] is not None and len(config["uuid"]) != 36:
        usage_error("--uuid takes the 36-character form")
    try:
        config["extra"] = json.loads(config["data"])
    except ValueError:
        config["extra"] = None
    if not isinstance(config["extra"], dict):
        usage_error("--data takes a JSON object")
    return config


def usage_error(message):
    sys.stderr.write("error: %s\n\n%s\n" % (message, USAGE))
    raise SystemExit(2)


def stop_on_sigterm():
    try:
        import signal
    except ImportError:
        return  # MicroPython: Ctrl-C is the way out

    def stop(signum, stack):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def main(argv):
    device = Device(parse_args(argv))
    stop_on_sigterm()
    try:
        return device.run()
    except KeyboardInterrupt:
        device.goodbye()
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
