"""WebSocket client helpers over Debian's python3-websockets (10.4), plus a raw-socket client
for the cases a well-behaved library will not produce (never reading, never answering pings)."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import time
import urllib.request

import websockets


def dev_token(port, user):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/dev-token?user={user}", timeout=10) as r:
        return json.load(r)["token"]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(secret, claims, alg="HS256"):
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    if alg == "none":
        return f"{header}.{payload}."
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def dev_secret(server):
    with open(os.path.join(server.dir, "dev-secret")) as f:
        return f.readline().strip()


class Client:
    """One connection; keeps every frame it received."""

    def __init__(self, ws):
        self.ws = ws
        self.frames = []
        self.established = None

    @classmethod
    async def connect(cls, port, token, path="/ws", **kw):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}{path}",
                                      extra_headers={"Authorization": f"Bearer {token}"},
                                      max_size=None, **kw)
        c = cls(ws)
        first = await c.recv()
        assert first["type"] == "connection_established", first
        c.established = first["data"]
        return c

    async def send(self, type_, data=None, id_=None):
        frame = {"type": type_, "data": data or {}}
        if id_ is not None:
            frame["id"] = id_
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout=10):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = json.loads(raw)
        self.frames.append(frame)
        return frame

    async def recv_until(self, pred, timeout=20):
        deadline = time.time() + timeout
        while True:
            f = await self.recv(timeout=max(0.01, deadline - time.time()))
            if pred(f):
                return f

    async def first(self, pred, timeout=20):
        """The first frame matching pred: one received already (e.g. while reading a request's reply),
        else the next one to arrive."""
        return next((f for f in self.frames if pred(f)), None) or await self.recv_until(pred, timeout)

    async def request(self, type_, data=None, id_="r", want=None, timeout=10):
        """Sends a frame and returns the reply that carries its id (an error or `want`)."""
        await self.send(type_, data, id_)
        return await self.recv_until(lambda f: f.get("id") == id_ and (want is None or f["type"] in (want, "error")),
                                     timeout)

    def events(self):
        return [f for f in self.frames if "seq" in f]

    async def close(self):
        await self.ws.close()


def completed_run(frames, run_id):
    return any(f["type"] in ("agent_completed", "agent_error", "agent_stopped") and f.get("run_id") == run_id
               for f in frames)


class RawWs:
    """A hand-rolled client: does the handshake, then reads and answers only when told to."""

    def __init__(self, port, token, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n")
        self.sock.sendall(req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("closed during handshake")
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 101"), buf

    def send_text(self, text):
        """Sends one masked text frame (clients must mask)."""
        payload = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_frame(self, opcode, payload=b"", fin=True, masked=True, rsv=0):
        """Sends one frame exactly as told, including what a client must not send."""
        header = bytes([(0x80 if fin else 0) | rsv | opcode])
        n = len(payload)
        bit = 0x80 if masked else 0
        if n < 126:
            header += bytes([bit | n])
        elif n < 65536:
            header += bytes([bit | 126]) + n.to_bytes(2, "big")
        else:
            header += bytes([bit | 127]) + n.to_bytes(8, "big")
        if masked:
            mask = os.urandom(4)
            payload = mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + payload)

    @staticmethod
    def frames(data):
        """The complete frames of a server byte stream: [(opcode, payload)]."""
        out, i = [], 0
        while i + 2 <= len(data):
            op, ln, j = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
            if ln == 126:
                ln = int.from_bytes(data[j:j + 2], "big"); j += 2
            elif ln == 127:
                ln = int.from_bytes(data[j:j + 8], "big"); j += 8
            if j + ln > len(data):
                break
            out.append((op, data[j:j + ln]))
            i = j + ln
        return out

    def read_until(self, pred, timeout=10):
        """Reads until pred(frames so far) holds or the server closes; returns (frames, eof)."""
        self.sock.settimeout(timeout)
        data = b""
        while True:
            frames = self.frames(data)
            if pred(frames):
                return frames, False
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                return self.frames(data), True
            data += chunk

    def read_all(self, timeout=5):
        """Reads until EOF or timeout; returns (bytes, eof)."""
        self.sock.settimeout(timeout)
        data = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data, True
                data += chunk
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True

    @staticmethod
    def close_code_of(frames):
        """The status code of the last close frame (opcode 8) among parsed frames, or None."""
        codes = [int.from_bytes(p[:2], "big") for op, p in frames if op == 8 and len(p) >= 2]
        return codes[-1] if codes else None

    @classmethod
    def close_code(cls, data):
        """The status code of the last close frame (opcode 8) in a server byte stream, or None."""
        return cls.close_code_of(cls.frames(data))

    def close(self):
        self.sock.close()
