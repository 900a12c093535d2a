"""MCP tool servers through the real binary, against the reference server we did not write
(@modelcontextprotocol/server-everything from npm, on the stdio transport): an LLM agent driven by
the fake OpenAI server calls its tools as `everything__<tool>` and the events name them
`everything.<tool>`; a tool that needs approval waits for the person; the server killed mid-call
(the call fails, the run goes on, the server comes back); a call past its timeout; a server
missing at start (degraded, chat still works)."""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402
from harness import wait_for  # noqa: E402
from wsclient import Client  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EVERYTHING = os.path.join(HERE, "e2e", "node_modules", "@modelcontextprotocol", "server-everything", "dist",
                          "index.js")
FILESYSTEM = os.path.join(HERE, "e2e", "node_modules", "@modelcontextprotocol", "server-filesystem", "dist",
                          "index.js")
DYNAMIC = os.path.join(HERE, "e2e", "mcp_dynamic_server.mjs")
TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


def config(dir_, call_timeout_ms=20000):
    path = os.path.join(dir_, "mcp.toml")
    files = os.path.join(dir_, "files")
    os.makedirs(files, exist_ok=True)
    with open(os.path.join(files, "notes.txt"), "w") as f:
        f.write("remember the milk\n")
    with open(path, "w") as f:
        f.write(f"""
[[agents.mcp_servers]]
name = "files"
command = "node"
args = [{json.dumps(FILESYSTEM)}, {json.dumps(files)}]
approval_required = ["write_file"]

[[agents.mcp_servers]]
name = "dynamic"
command = "node"
args = [{json.dumps(DYNAMIC)}]

[[agents.mcp_servers]]
name = "everything"
command = "node"
args = [{json.dumps(EVERYTHING)}, "stdio"]
tools = ["echo", "get-sum", "get-structured-content", "trigger-long-running-operation"]
approval_required = ["get-sum"]
call_timeout_ms = {call_timeout_ms}

[[agents.mcp_servers]]
name = "missing"
command = "/nonexistent/mcp-server"
""")
    return path


def mcp_pids(server_pid):
    """The node processes of server-everything started by this agentwire process."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if ppid == server_pid and b"server-everything" in cmd:
            pids.append(int(entry))
    return pids


def component(srv, name):
    _, body = srv.get("/health")
    return next(c for c in body["components"] if c["name"] == name)


@unittest.skipUnless(os.path.exists(EVERYTHING), "npm package @modelcontextprotocol/server-everything not installed "
                                                  "(scripts/install-deps test)")
class McpTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeOpenAI()
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        cls.srv = cls.start_server(20000)

    @classmethod
    def start_server(cls, call_timeout_ms):
        import tempfile
        dir_ = tempfile.mkdtemp(prefix="aw-mcp-", dir=harness.TMP_ROOT)
        path = config(dir_, call_timeout_ms)
        srv = harness.Server("--config", path, "--set",
                             f"agents.llm_base_url=http://127.0.0.1:{cls.fake.port}/v1",
                             "--set", "agents.llm_idle_timeout_ms=20000", "--log-level", "debug").start()
        srv.config_path = path
        return srv

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.fake.close()

    async def run_llm(self, srv, prompt, user="mia", on_event=None):
        c = await Client.connect(srv.port, wsclient.dev_token(srv.port, user))
        ack = await c.request("user_message", {"content": prompt, "agent": "llm"}, id_="m", want="ack")
        self.assertEqual(ack["type"], "ack", ack)
        run_id = ack["data"]["run_id"]
        while True:
            f = await c.recv(timeout=60)
            if on_event and f.get("run_id") == run_id:
                await on_event(c, f)
            if f.get("run_id") == run_id and f["type"] in TERMINAL:
                break
        await c.close()
        return [f for f in c.events() if f.get("run_id") == run_id]

    async def test_a_model_calls_an_mcp_tool_and_answers_with_its_result(self):
        events = await self.run_llm(self.srv, 'call everything__echo {"message": "hi there"}')
        executing = next(e for e in events if e["type"] == "tool_executing")
        completed = next(e for e in events if e["type"] == "tool_completed")
        self.assertEqual((executing["data"]["tool_name"], executing["data"]["args"]),
                         ("everything.echo", {"message": "hi there"}))
        self.assertEqual(completed["data"]["result"]["text"], "Echo: hi there")
        self.assertEqual(events[-1]["type"], "agent_completed")
        self.assertIn("Echo: hi there", events[-1]["data"]["content"])
        # The model was offered the allowed tools by their function names, with their schemas.
        offered = {t["function"]["name"]: t["function"] for t in self.fake.requests[-1]["body"]["tools"]}
        self.assertIn("everything__echo", offered)
        self.assertNotIn("everything__get-env", offered, "not in the server's allowlist")
        self.assertEqual(offered["everything__echo"]["parameters"]["properties"]["message"]["type"], "string")
        structured = await self.run_llm(self.srv, 'call everything__get-structured-content {"location": "Chicago"}')
        result = next(e for e in structured if e["type"] == "tool_completed")["data"]["result"]
        self.assertIn("temperature", json.dumps(result["structured"]))

    async def test_files_are_listed_and_read_through_the_filesystem_server_and_a_write_waits_for_approval(self):
        events = await self.run_llm(self.srv, 'call files__list_directory {"path": ' +
                                    json.dumps(self.files_dir()) + '}')
        listed = next(e for e in events if e["type"] == "tool_completed")["data"]["result"]
        self.assertIn("[FILE] notes.txt", listed["text"])
        path = os.path.join(self.files_dir(), "notes.txt")
        events = await self.run_llm(self.srv, 'call files__read_text_file {"path": ' + json.dumps(path) + '}')
        self.assertEqual(next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["text"],
                         "remember the milk\n")
        # Outside its directory: the server's own error, given to the model, and the run completes.
        events = await self.run_llm(self.srv, 'call files__read_text_file {"path": "/etc/passwd"}')
        self.assertIn("error", next(e for e in events if e["type"] == "tool_completed")["data"]["result"])
        self.assertEqual(events[-1]["type"], "agent_completed")

        written = os.path.join(self.files_dir(), "new.txt")
        asked = []

        async def deny_then_nothing(c, f):
            if f["type"] == "tool_approval_requested":
                asked.append(f)
                self.assertFalse(os.path.exists(written), "nothing is written before the answer")
                await c.send("approve_tool", {"approval_id": f["data"]["approval_id"], "decision": "deny"}, "a")

        events = await self.run_llm(self.srv, 'call files__write_file {"path": ' + json.dumps(written) +
                                    ', "content": "x"}', on_event=deny_then_nothing)
        self.assertEqual(asked[0]["data"]["tool_name"], "files.write_file")
        self.assertFalse(os.path.exists(written), "denied: not written")

        async def approve(c, f):
            if f["type"] == "tool_approval_requested":
                await c.send("approve_tool", {"approval_id": f["data"]["approval_id"], "decision": "approve"}, "a")

        await self.run_llm(self.srv, 'call files__write_file {"path": ' + json.dumps(written) + ', "content": "x"}',
                           on_event=approve)
        with open(written) as f:
            self.assertEqual(f.read(), "x")

    def files_dir(self):
        return os.path.join(os.path.dirname(self.srv.config_path), "files")

    async def test_tools_that_the_server_adds_or_removes_while_running_follow(self):
        def offered():
            token = wsclient.dev_token(self.srv.port, "lister")
            _, body, _ = self.srv.request("GET", "/api/agents", headers={"Authorization": f"Bearer {token}"})
            return next(a for a in body["agents"] if a["name"] == "llm")["tools"]

        self.assertNotIn("dynamic.weather", offered())
        events = await self.run_llm(self.srv, 'call dynamic__add_tool {"name": "weather"}')
        self.assertEqual(next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["text"],
                         "added weather")
        # notifications/tools/list_changed: the new tool joins without a restart.
        wait_for(lambda: "dynamic.weather" in offered(), what="the added tool offered")
        events = await self.run_llm(self.srv, "call dynamic__weather {}")
        self.assertEqual(next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["text"],
                         "I am weather")
        await self.run_llm(self.srv, 'call dynamic__remove_tool {"name": "weather"}')
        wait_for(lambda: component(self.srv, "mcp_dynamic")["details"]["tools"] == 2, what="the removal listed")
        events = await self.run_llm(self.srv, "call dynamic__weather {}")
        self.assertIn("no longer offers 'weather'",
                      next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["error"])
        self.assertEqual(component(self.srv, "mcp_dynamic")["state"], "healthy")

    async def test_calls_are_measured_per_tool(self):
        await self.run_llm(self.srv, 'call everything__echo {"message": "count me"}')
        _, text = self.srv.get("/metrics")
        calls = harness.metric_samples(text, "agentwire_mcp_tool_calls_total")
        self.assertGreaterEqual(calls[frozenset({("server", "everything"), ("tool", "echo")})], 1)
        up = harness.metric_samples(text, "agentwire_mcp_server_up")
        self.assertEqual(up[frozenset({("server", "everything")})], 1)
        self.assertEqual(up[frozenset({("server", "missing")})], 0)
        durations = harness.metric_samples(text, "agentwire_mcp_tool_call_duration_seconds_count")
        self.assertGreaterEqual(durations[frozenset({("server", "everything"), ("tool", "echo")})], 1)
        self.assertIn(frozenset({("server", "everything"), ("tool", "echo")}),
                      harness.metric_samples(text, "agentwire_mcp_tool_errors_total"))

    async def test_health_shows_each_server_and_a_missing_one_only_degrades(self):
        ok = component(self.srv, "mcp_everything")
        self.assertEqual(ok["state"], "healthy", ok)
        self.assertEqual(ok["details"]["tools"], 4)
        self.assertTrue(ok["details"]["protocol_version"])
        missing = component(self.srv, "mcp_missing")
        self.assertEqual((missing["state"], missing["critical"]), ("degraded", False), missing)
        self.assertIn("/nonexistent/mcp-server", missing["details"]["last_error"])
        self.assertEqual(self.srv.get("/health/ready")[0], 200, "an optional tool server does not hold readiness")
        events = await self.run_llm(self.srv, "stream")
        self.assertEqual(events[-1]["type"], "agent_completed", "chat works without it")

    async def test_a_tool_that_needs_approval_waits_for_the_person(self):
        async def approve(c, f):
            if f["type"] == "tool_approval_requested":
                self.assertEqual(f["data"]["tool_name"], "everything.get-sum")
                await c.send("approve_tool", {"approval_id": f["data"]["approval_id"], "decision": "approve"}, "a")

        events = await self.run_llm(self.srv, 'call everything__get-sum {"a": 2, "b": 3}', on_event=approve)
        completed = next(e for e in events if e["type"] == "tool_completed")
        self.assertIn("5", completed["data"]["result"]["text"])
        self.assertEqual(events[-1]["type"], "agent_completed")

    async def test_the_server_killed_mid_call_fails_the_call_the_run_goes_on_and_the_server_comes_back(self):
        killed = []

        async def kill(c, f):
            if f["type"] == "tool_executing" and not killed:
                pids = mcp_pids(self.srv.proc.pid)
                self.assertEqual(len(pids), 1, pids)
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        restarts = component(self.srv, "mcp_everything")["details"]["restarts"]
        events = await self.run_llm(
            self.srv, 'call everything__trigger-long-running-operation {"duration": 30, "steps": 3}', on_event=kill)
        completed = next(e for e in events if e["type"] == "tool_completed")
        self.assertIn("ended during the call", completed["data"]["result"]["error"])
        self.assertEqual(events[-1]["type"], "agent_completed", "the model got the error and answered")
        wait_for(lambda: component(self.srv, "mcp_everything")["details"]["restarts"] > restarts
                 and component(self.srv, "mcp_everything")["state"] == "healthy", what="the server restarted")
        events = await self.run_llm(self.srv, 'call everything__echo {"message": "back"}')
        self.assertEqual(next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["text"],
                         "Echo: back")

    async def test_a_call_past_its_timeout_fails_and_the_run_goes_on(self):
        srv = self.start_server(300)
        try:
            events = await self.run_llm(
                srv, 'call everything__trigger-long-running-operation {"duration": 20, "steps": 2}')
            completed = next(e for e in events if e["type"] == "tool_completed")
            self.assertIn("no answer within 300 ms", completed["data"]["result"]["error"])
            self.assertEqual(events[-1]["type"], "agent_completed")
            # The server was told to stop (notifications/cancelled) and still answers the next call.
            events = await self.run_llm(srv, 'call everything__echo {"message": "still here"}')
            self.assertEqual(next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["text"],
                             "Echo: still here")
        finally:
            srv.stop()


class HttpEverything:
    """server-everything in its Streamable HTTP mode on a free loopback port."""

    def __init__(self, port=None):
        self.port = port or harness.free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="aw-everything-", suffix=".log", dir=harness.TMP_ROOT,
                                               delete=False).name
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["node", EVERYTHING, "streamableHttp"],
                                         env=dict(os.environ, PORT=str(self.port)), stdout=out,
                                         stderr=subprocess.STDOUT)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                assert self.proc.poll() is None, "server-everything (HTTP) exited"
                return False
        try:
            wait_for(listening, what="server-everything listening")
        except BaseException:
            self.kill()
            raise

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/mcp"

    def kill(self):
        self.proc.kill()
        self.proc.wait()


@unittest.skipUnless(os.path.exists(EVERYTHING), "npm package @modelcontextprotocol/server-everything not installed")
class McpHttpTest(unittest.IsolatedAsyncioTestCase):
    """The Streamable HTTP transport against server-everything's own HTTP mode (JSON and SSE answers, a
    session id, the server killed and started again)."""

    async def test_calls_over_http_and_the_server_restarted_is_reconnected(self):
        import tempfile
        fake = FakeOpenAI()
        self.addCleanup(fake.close)
        http = HttpEverything()
        self.addCleanup(lambda: http.kill())  # the one running at the end (it is replaced below)
        dir_ = tempfile.mkdtemp(prefix="aw-mcp-http-", dir=harness.TMP_ROOT)
        path = os.path.join(dir_, "http.toml")
        with open(path, "w") as f:
            f.write(f'[[agents.mcp_servers]]\nname = "web"\nurl = "{http.url}"\n'
                    'headers = { "X-Test" = "yes" }\ncall_timeout_ms = 20000\n')
        srv = harness.Server("--config", path, "--set", f"agents.llm_base_url=http://127.0.0.1:{fake.port}/v1",
                             "--set", "agents.llm_idle_timeout_ms=20000", "--log-level", "debug")
        self.addCleanup(srv.stop)
        srv.start()
        run_llm = McpTest.run_llm
        self.assertEqual(component(srv, "mcp_web")["state"], "healthy")
        events = await run_llm(self, srv, 'call web__echo {"message": "over http"}')
        self.assertEqual(next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["text"],
                         "Echo: over http")
        # A call whose answer is an SSE stream (progress notifications, then the result).
        events = await run_llm(self, srv, 'call web__trigger-long-running-operation {"duration": 1, "steps": 2}')
        result = next(e for e in events if e["type"] == "tool_completed")["data"]["result"]
        self.assertIn("completed", result["text"].lower(), result)

        # The server killed: a call fails at once (not at its timeout), the component degrades, chat goes
        # on; started again on the same port, a new session is made and calls work.
        http.kill()
        events = await run_llm(self, srv, 'call web__echo {"message": "anyone?"}')
        self.assertIn("error", next(e for e in events if e["type"] == "tool_completed")["data"]["result"])
        self.assertEqual(events[-1]["type"], "agent_completed")
        wait_for(lambda: component(srv, "mcp_web")["state"] == "degraded", what="degraded")
        http = HttpEverything(http.port)
        wait_for(lambda: component(srv, "mcp_web")["state"] == "healthy", timeout=60, what="reconnected")
        events = await run_llm(self, srv, 'call web__echo {"message": "back"}')
        self.assertEqual(next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["text"],
                         "Echo: back")


    async def test_a_call_past_its_timeout_over_http_fails_alone_and_the_session_stays(self):
        import tempfile
        fake = FakeOpenAI()
        self.addCleanup(fake.close)
        http = HttpEverything()
        self.addCleanup(http.kill)
        dir_ = tempfile.mkdtemp(prefix="aw-mcp-http-", dir=harness.TMP_ROOT)
        path = os.path.join(dir_, "http.toml")
        with open(path, "w") as f:
            f.write(f'[[agents.mcp_servers]]\nname = "web"\nurl = "{http.url}"\ncall_timeout_ms = 500\n')
        srv = harness.Server("--config", path, "--set", f"agents.llm_base_url=http://127.0.0.1:{fake.port}/v1",
                             "--set", "agents.llm_idle_timeout_ms=20000")
        self.addCleanup(srv.stop)
        srv.start()
        events = await McpTest.run_llm(self, srv,
                                       'call web__trigger-long-running-operation {"duration": 20, "steps": 2}')
        self.assertIn("no answer within 500 ms",
                      next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["error"])
        # The cancellation was POSTed before the next request, and the same session answers it.
        events = await McpTest.run_llm(self, srv, 'call web__echo {"message": "still here"}')
        self.assertEqual(next(e for e in events if e["type"] == "tool_completed")["data"]["result"]["text"],
                         "Echo: still here")
        details = component(srv, "mcp_web")
        self.assertEqual((details["state"], details["details"]["restarts"]), ("healthy", 0), details)
        # Stopping, agentwire ends its session with a DELETE, as MCP asks of a client done with one.
        srv.stop()

        def log():
            with open(http.log, errors="replace") as f:
                return f.read()
        wait_for(lambda: "Received session termination request" in log(), timeout=10,
                 what="the session's DELETE")


if __name__ == "__main__":
    unittest.main(verbosity=2)
