"""The WebSocket framing agentwire speaks after the upgrade (src/net/ws_codec.cpp), tried with a
hand-rolled client that sends what a library would not: fragments with control frames between
them, unmasked and reserved frames, bad UTF-8, oversized headers, the close handshake, and a
client that never answers pings. Every violation closes that connection with its RFC 6455 code;
the process and the other connections go on."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import RawWs  # noqa: E402

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def json_frames(frames):
    return [json.loads(p) for op, p in frames if op == TEXT]


close_code = RawWs.close_code_of


class FramingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server("--set", "ws.max_message_bytes=4096", "--set", "ws.idle_timeout_ms=600").start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def connect(self, user="framer"):
        ws = RawWs(self.srv.port, wsclient.dev_token(self.srv.port, user))
        frames, _ = ws.read_until(lambda f: any(j["type"] == "connection_established" for j in json_frames(f)))
        self.assertTrue(json_frames(frames), "connection_established first")
        return ws

    def assert_closed_with(self, ws, code):
        frames, eof = ws.read_until(lambda f: close_code(f) is not None)
        self.assertEqual(close_code(frames), code, frames)
        _, eof = ws.read_until(lambda f: False)  # then the server closes the TCP connection
        self.assertTrue(eof)
        ws.close()
        # The process and everyone else go on.
        other = self.connect("bystander")
        other.send_text(json.dumps({"type": "ping", "id": "alive"}))
        frames, _ = other.read_until(lambda f: any(j.get("id") == "alive" for j in json_frames(f)))
        self.assertIn("pong", [j["type"] for j in json_frames(frames)])
        other.close()

    def test_a_fragmented_message_with_a_ping_between_its_fragments_is_one_message(self):
        ws = self.connect()
        body = json.dumps({"type": "ping", "id": "frag"}).encode()
        ws.send_frame(TEXT, body[:5], fin=False)
        ws.send_frame(PING, b"between")
        ws.send_frame(CONT, body[5:12], fin=False)
        ws.send_frame(CONT, body[12:], fin=True)
        frames, eof = ws.read_until(lambda f: any(j.get("id") == "frag" for j in json_frames(f)))
        self.assertFalse(eof)
        self.assertIn((PONG, b"between"), frames, "the ping is answered with its payload")
        self.assertEqual([j["type"] for j in json_frames(frames) if j.get("id") == "frag"], ["pong"])
        ws.close()

    def test_a_binary_message_gets_an_error_frame_and_the_connection_stays(self):
        ws = self.connect()
        ws.send_frame(BINARY, b"\x00\x01")
        ws.send_text(json.dumps({"type": "ping", "id": "after"}))
        frames, eof = ws.read_until(lambda f: any(j.get("id") == "after" for j in json_frames(f)))
        errors = [j for j in json_frames(frames) if j["type"] == "error"]
        self.assertEqual(errors[0]["data"]["code"], "invalid_json")
        self.assertFalse(eof)
        ws.close()

    def test_an_unmasked_frame_closes_with_1002(self):
        ws = self.connect()
        ws.send_frame(TEXT, b'{"type":"ping"}', masked=False)
        self.assert_closed_with(ws, 1002)

    def test_reserved_bits_and_opcodes_close_with_1002(self):
        ws = self.connect()
        ws.send_frame(TEXT, b'{"type":"ping"}', rsv=0x40)  # RSV1: no extension was negotiated
        self.assert_closed_with(ws, 1002)
        ws = self.connect()
        ws.send_frame(0x3, b"x")
        self.assert_closed_with(ws, 1002)

    def test_a_continuation_without_a_first_fragment_closes_with_1002(self):
        ws = self.connect()
        ws.send_frame(CONT, b"orphan")
        self.assert_closed_with(ws, 1002)

    def test_text_that_is_not_utf8_closes_with_1007(self):
        ws = self.connect()
        ws.send_frame(TEXT, b'{"type":"ping","id":"\xc0\xaf"}')
        self.assert_closed_with(ws, 1007)

    def test_a_frame_over_the_limit_closes_with_1009_from_its_header(self):
        ws = self.connect()
        # Only the header of a 1 MB frame: the server must not wait for (or buffer) the payload.
        ws.sock.sendall(bytes([0x81, 0x80 | 127]) + (1 << 20).to_bytes(8, "big") + os.urandom(4))
        self.assert_closed_with(ws, 1009)

    def test_fragments_over_the_limit_together_close_with_1009(self):
        ws = self.connect()
        ws.send_frame(TEXT, b"x" * 3000, fin=False)
        ws.send_frame(CONT, b"x" * 3000, fin=True)
        self.assert_closed_with(ws, 1009)

    def test_the_client_closes_and_the_server_answers_with_its_code(self):
        ws = self.connect()
        ws.send_frame(CLOSE, (1000).to_bytes(2, "big") + b"bye")
        frames, _ = ws.read_until(lambda f: close_code(f) is not None)
        self.assertEqual(close_code(frames), 1000)
        _, eof = ws.read_until(lambda f: False)
        self.assertTrue(eof, "the server closes the TCP connection after the handshake")
        ws.close()

    def test_a_close_frame_with_a_reserved_code_closes_with_1002(self):
        ws = self.connect()
        ws.send_frame(CLOSE, (1005).to_bytes(2, "big"))
        self.assert_closed_with(ws, 1002)

    def test_an_idle_client_gets_a_ping_and_is_closed_when_it_never_answers(self):
        ws = self.connect()
        # ws.idle_timeout_ms=600: a ping after about half of it; no answer, closed by the end.
        frames, eof = ws.read_until(lambda f: False, timeout=10)
        self.assertIn(PING, [op for op, _ in frames])
        self.assertTrue(eof, "closed at the idle timeout")
        ws.close()

    def test_a_client_that_answers_pings_stays_connected(self):
        ws = self.connect()
        pings = 0
        while pings < 3:  # three keep-alive rounds, well past the idle timeout
            frames, eof = ws.read_until(lambda f: any(op == PING for op, _ in f))
            self.assertFalse(eof, "closed although the client answered every ping")
            for op, p in frames:
                if op == PING:
                    ws.send_frame(PONG, p)
                    pings += 1
        ws.send_text(json.dumps({"type": "ping", "id": "still"}))
        frames, eof = ws.read_until(lambda f: any(j.get("id") == "still" for j in json_frames(f)))
        self.assertFalse(eof)
        ws.close()


if __name__ == "__main__":
    harness.main()
