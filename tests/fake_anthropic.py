"""A fake Anthropic Messages API server for tests (standard library only), streaming the documented
event sequence: `event: <type>` and `data: {...}` pairs of message_start, content_block_start,
ping, content_block_delta (text_delta, input_json_delta), content_block_stop, message_delta,
message_stop, and error.

The last user text picks the behaviour: "stream" (three text deltas), "tool" (a text block and a
calculator tool_use streamed as input_json_delta pieces, then an answer using the tool_result),
"long" (stopped at max_tokens), "overloaded" (an error event mid-stream), "fail529" (HTTP 529),
"garbage" (a malformed event). Every request is recorded in `requests`.
Usage: every call reports input_tokens 10 (+ 5 read from the cache) and output_tokens 7.
"""
import json
from http.server import BaseHTTPRequestHandler

from fake_openai import FakeServer

INPUT_TOKENS, CACHE_READ, OUTPUT_TOKENS = 10, 5, 7


def start(msg_id="msg_1"):
    return ("message_start", {"type": "message_start", "message": {
        "id": msg_id, "type": "message", "role": "assistant", "model": "fake", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "cache_read_input_tokens": CACHE_READ, "output_tokens": 1}}})


def text_block(index, pieces):
    events = [("content_block_start", {"type": "content_block_start", "index": index,
                                       "content_block": {"type": "text", "text": ""}}),
              ("ping", {"type": "ping"})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                        "delta": {"type": "text_delta", "text": p}}) for p in pieces]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def tool_block(index, tool_id, name, json_pieces):
    events = [("content_block_start", {"type": "content_block_start", "index": index,
                                       "content_block": {"type": "tool_use", "id": tool_id, "name": name,
                                                         "input": {}}})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                        "delta": {"type": "input_json_delta", "partial_json": p}})
               for p in json_pieces]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def end(stop_reason):
    return [("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                               "usage": {"output_tokens": OUTPUT_TOKENS}}),
            ("message_stop", {"type": "message_stop"})]


def last_user_text(messages):
    for m in reversed(messages):
        if m["role"] == "user" and isinstance(m["content"], str):
            return m["content"]
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def sse(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, data in events:
            payload = data if isinstance(data, str) else json.dumps(data)
            self.wfile.write(f"event: {name}\ndata: {payload}\n\n".encode())
            self.wfile.flush()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.path != "/v1/messages":
            self.send_error(404)
            return
        messages = body["messages"]
        prompt = last_user_text(messages)
        if prompt == "stream":
            self.sse([start()] + text_block(0, ["Hello", " from", " Claude"]) + end("end_turn"))
        elif prompt == "tool":
            results = [b for m in messages if m["role"] == "user" and isinstance(m["content"], list)
                       for b in m["content"] if b.get("type") == "tool_result"]
            if not results:
                self.sse([start()] + text_block(0, ["Let me compute."]) +
                         tool_block(1, "toolu_1", "calculator", ['{"op": "mul",', ' "a": 6, "b"', ': 7}']) +
                         end("tool_use"))
            else:
                result = json.loads(results[-1]["content"])
                answer = f"The answer is {result['value']:g}" if "value" in result else f"No: {result['error']}"
                self.sse([start("msg_2")] + text_block(0, [answer]) + end("end_turn"))
        elif prompt == "long":
            self.sse([start()] + text_block(0, ["This answer is cut"]) + end("max_tokens"))
        elif prompt == "overloaded":
            self.sse([start()] + text_block(0, ["Hel"]) +
                     [("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})])
        elif prompt == "fail529":
            payload = json.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                             "message": "Overloaded"}}).encode()
            self.send_response(529)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        elif prompt == "garbage":
            self.sse([start(), ("content_block_delta", "{not json")])
        else:
            self.sse([start()] + text_block(0, ["ok"]) + end("end_turn"))


class FakeAnthropic(FakeServer):
    def __init__(self):
        super().__init__(Handler)
