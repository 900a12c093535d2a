"""A fake OpenAI-compatible Chat Completions server for tests (standard library only).

The last user message picks the behaviour: "stream" (four streamed tokens), "tool" (a streamed
calculator tool call, then an answer using its result, or saying its error), "fail500", "stall" (one chunk, then
silence), "garbage" (a malformed SSE chunk), "tokens N" (N tokens at 150 tokens/s), "call NAME ARGS" (a call of the
function NAME with the JSON ARGS, then an answer quoting the tool's result), "long" (cut off: finish_reason
"length"). Every request is recorded in `requests`. A request with stream_options.include_usage gets a last
chunk with usage (PROMPT_TOKENS, COMPLETION_TOKENS) and no choices, as OpenAI sends it.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROMPT_TOKENS, COMPLETION_TOKENS = 20, 4


def chunk(delta, finish=None):
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def sse(self, events, pause=0.0):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.include_usage and events and events[-1] == "[DONE]":
            events = events[:-1] + [{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake",
                                     "choices": [], "usage": {"prompt_tokens": PROMPT_TOKENS,
                                                              "completion_tokens": COMPLETION_TOKENS,
                                                              "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}},
                                    "[DONE]"]
        for e in events:
            data = e if isinstance(e, str) else json.dumps(e)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()
            time.sleep(pause)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        messages = body["messages"]
        prompt = [m for m in messages if m["role"] == "user"][-1]["content"]
        if prompt == "stream":
            self.sse([chunk({"role": "assistant", "content": ""})] +
                     [chunk({"content": t}) for t in ["Hello", " from", " the", " model"]] +
                     [chunk({}, "stop"), "[DONE]"], pause=0.01)
        elif prompt == "tool":
            results = [m for m in messages if m["role"] == "tool"]
            if not results:
                self.sse([
                    chunk({"role": "assistant", "tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function",
                         "function": {"name": "calculator", "arguments": ""}}]}),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"op\":\"mul\","}}]}),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"a\":6,\"b\":7}"}}]}),
                    chunk({}, "tool_calls"), "[DONE]"])
            else:
                result = json.loads(results[-1]["content"])
                answer = f"The answer is {result['value']:g}" if "value" in result else f"No answer: {result['error']}"
                self.sse([chunk({"content": answer}), chunk({}, "stop"), "[DONE]"])
        elif prompt.startswith("call "):
            # "call FUNCTION {json args}": one tool call, then an answer quoting the tool's result.
            results = [m for m in messages if m["role"] == "tool"]
            if not results:
                _, name, args = prompt.split(" ", 2)
                self.sse([chunk({"role": "assistant", "tool_calls": [
                    {"index": 0, "id": "call_x", "type": "function", "function": {"name": name, "arguments": args}}]}),
                    chunk({}, "tool_calls"), "[DONE]"])
            else:
                self.sse([chunk({"content": "tool said: " + results[-1]["content"]}), chunk({}, "stop"), "[DONE]"])
        elif prompt == "fail500":
            payload = json.dumps({"error": {"message": "model overloaded"}}).encode()
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        elif prompt == "stall":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(f"data: {json.dumps(chunk({'content': 'Hel'}))}\n\n".encode())
            self.wfile.flush()
            time.sleep(8)
        elif prompt.startswith("tokens "):
            # "tokens N": N one-word tokens at 150 tokens/s, as a model streams (bench/rollup-figures.py).
            n = int(prompt.split()[1])
            self.sse([chunk({"content": f" w{i}"}) for i in range(n)] + [chunk({}, "stop"), "[DONE]"],
                     pause=1 / 150)
        elif prompt == "long":
            self.sse([chunk({"content": "This answer is cut"}), chunk({}, "length"), "[DONE]"])
        elif prompt == "garbage":
            self.sse(["{this is not json"])
        else:
            self.sse([chunk({"content": "ok"}), "[DONE]"])


class FakeServer:
    """A ThreadingHTTPServer on a free loopback port serving `handler` on a thread of its own; every request
    is recorded in `requests` (the handler appends it)."""

    def __init__(self, handler):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.requests = []
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def requests(self):
        return self.server.requests

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeOpenAI(FakeServer):
    def __init__(self):
        super().__init__(Handler)


if __name__ == "__main__":
    # For tests in other languages (the browser tests): prints the port, serves until stdin closes.
    import sys
    fake = FakeOpenAI()
    print(fake.port, flush=True)
    sys.stdin.read()
    fake.close()
