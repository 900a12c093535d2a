"""docs/openapi.yaml against the running server: the document it serves at /api/openapi.json is the
committed one, and real responses of every documented JSON route (successes and errors, reached the
way a client reaches them) have a documented status and validate against the documented schema."""
import os
import re
import sys
import unittest

import yaml
from jsonschema import Draft202012Validator, RefResolver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import wsclient  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
with open(os.path.join(ROOT, "docs", "openapi.yaml")) as f:
    DOC = yaml.safe_load(f)


def resolve(node):
    """Follows a local $ref ("#/components/responses/X") to what it names."""
    while isinstance(node, dict) and "$ref" in node:
        target = DOC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def template_of(path):
    """The documented path template a concrete path matches ("/api/runs/r1" -> "/api/runs/{run_id}")."""
    path = path.split("?")[0]
    for template in DOC["paths"]:
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    return None


class OpenApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server("--set", "agents.approval_required_tools=word_count",
                                 "--set", "ws.max_messages_per_second=1000").start()
        cls.checked = set()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        """Makes a real request; checks its status and JSON body against the document; returns both."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        status, parsed, hdrs = self.srv.request(method, path, body, h, raw=raw)
        ctype = hdrs.get("Content-Type", "")
        template = template_of(path)
        self.assertIsNotNone(template, f"{path} is not in docs/openapi.yaml")
        op = DOC["paths"][template].get(method.lower())
        self.assertIsNotNone(op, f"{method} {template} is not in docs/openapi.yaml")
        responses = op["responses"]
        key = str(status) if str(status) in responses else ("default" if "default" in responses else None)
        self.assertIsNotNone(key, f"{method} {template} answered {status}, which is not documented: {parsed}")
        content = resolve(responses[key]).get("content", {})
        if "json" in ctype:
            self.assertIn("application/json", content, f"{method} {template} {status}: JSON not documented")
            schema = content["application/json"]["schema"]
            validator = Draft202012Validator(schema, resolver=RefResolver.from_schema(DOC))
            errors = sorted(validator.iter_errors(parsed), key=str)
            self.assertEqual([], [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors],
                             f"{method} {path} {status} does not match the document: {parsed}")
        self.checked.add((method, template, key))
        return status, parsed

    def test_the_served_document_is_the_committed_one(self):
        status, served = self.call("GET", "/api/openapi.json")
        self.assertEqual(status, 200)
        self.assertEqual(served, DOC)
        self.assertEqual(DOC["openapi"][:3], "3.1")

    def test_real_responses_match_the_document(self):
        port = self.srv.port
        status, dev = self.call("GET", "/auth/dev-token?user=olga")
        self.assertEqual(status, 200)
        token = dev["token"]
        other = wsclient.dev_token(port, "pavel")

        status, agents = self.call("GET", "/api/agents", token=token)
        self.assertEqual(status, 200)
        self.assertEqual(agents["default"], "echo")
        self.assertEqual(self.call("GET", "/api/agents", token=None)[0], 401)

        # Threads and messages, and their errors.
        self.assertEqual(self.call("GET", "/api/threads", token=None)[0], 401)
        self.assertEqual(self.call("GET", "/api/threads", token="forged.token.x")[0], 401)
        status, created = self.call("POST", "/api/threads", {"title": "openapi"}, token)
        self.assertEqual(status, 201)
        thread = created["thread_id"]
        self.assertEqual(self.call("POST", "/api/threads", raw="{not json", token=token)[0], 400)
        self.assertEqual(self.call("POST", "/api/threads", {"title": 7}, token)[0], 400)
        status, body = self.call("POST", "/api/threads", {"agent": "nobody"}, token)
        self.assertEqual(body["error"]["code"], "unknown_agent")
        status, page = self.call("GET", "/api/threads?limit=1", token=token)
        self.assertEqual(status, 200)
        status, accepted = self.call("POST", f"/api/threads/{thread}/messages", {"content": "plain"}, token)
        self.assertEqual(status, 202)
        self.assertEqual(self.call("POST", f"/api/threads/{thread}/messages", {}, token)[0], 400)
        self.assertEqual(self.call("POST", f"/api/threads/{thread}/messages", {"content": "x"}, other)[0], 403)
        self.assertEqual(self.call("POST", "/api/threads/nope/messages", {"content": "x"}, token)[0], 404)
        # The first run waits for its approval: a message that must not queue behind it is refused.
        self.assertEqual(self.call("POST", f"/api/threads/{thread}/messages",
                                   {"content": "busy?", "on_busy": "reject"}, token)[0], 409)
        self.assertEqual(self.call("GET", f"/api/threads/{thread}/messages", token=token)[0], 200)
        self.assertEqual(self.call("GET", f"/api/threads/{thread}/messages", token=other)[0], 403)
        self.assertEqual(self.call("GET", f"/api/threads/{thread}/runs", token=token)[0], 200)
        self.assertEqual(self.call("GET", "/api/threads/nope/runs", token=token)[0], 404)
        # Renaming and deleting; the thread's run is in progress, so it is not deleted.
        self.assertEqual(self.call("PATCH", f"/api/threads/{thread}", {"title": "renamed"}, token)[0], 200)
        self.assertEqual(self.call("PATCH", f"/api/threads/{thread}", {}, token)[0], 400)
        self.assertEqual(self.call("PATCH", f"/api/threads/{thread}", {"title": "x"}, other)[0], 403)
        self.assertEqual(self.call("PATCH", "/api/threads/nope", {"title": "x"}, token)[0], 404)
        self.assertEqual(self.call("DELETE", f"/api/threads/{thread}", token=token)[0], 409)
        self.assertEqual(self.call("DELETE", f"/api/threads/{thread}", token=other)[0], 403)
        status, spare = self.call("POST", "/api/threads", {"title": "spare"}, token)
        self.assertEqual(self.call("DELETE", f"/api/threads/{spare['thread_id']}", token=token)[0], 200)
        self.assertEqual(self.call("DELETE", f"/api/threads/{spare['thread_id']}", token=token)[0], 404)

        # Runs and approvals: the echo agent's word_count call waits for an answer.
        run = accepted["run_id"]
        status, _ = self.call("GET", f"/api/runs/{run}", token=token)
        self.assertEqual(status, 200)
        self.assertEqual(self.call("GET", "/api/runs/nope", token=token)[0], 404)
        for _ in range(400):
            status, pending = self.call("GET", "/api/approvals", token=token)
            if pending["approvals"]:
                break
            harness.time.sleep(0.01)  # polls the condition: the run has parked
        self.assertEqual(status, 200)
        self.assertTrue(pending["approvals"], "the run parked on its approval")
        approval = pending["approvals"][0]["approval_id"]
        self.assertEqual(self.call("POST", f"/api/approvals/{approval}", {"decision": "maybe"}, token)[0], 400)
        self.assertEqual(self.call("POST", f"/api/approvals/{approval}", {"decision": "approve"}, other)[0], 404)
        self.assertEqual(self.call("POST", f"/api/approvals/{approval}", {"decision": "approve"}, token)[0], 200)
        self.assertEqual(self.call("POST", f"/api/approvals/{approval}", {"decision": "deny"}, token)[0], 409)
        self.assertEqual(self.call("GET", f"/api/runs/{run}", token=token)[0], 200)

        # A method a route does not have: 405 with Allow (info.description says so for every path).
        status, body, headers = self.srv.request("DELETE", "/api/threads", None, {"Authorization": f"Bearer {token}"})
        self.assertEqual((status, body["error"]["code"]), (405, "method_not_allowed"))
        self.assertIn("POST", headers.get("Allow", ""))

        # Operators' routes.
        for path in ("/health", "/health/live", "/health/ready", "/health/startup", "/health/alerts",
                     "/health/selfcheck", "/health/trends"):
            self.assertEqual(self.call("GET", path)[0], 200, path)

    def test_every_route_of_the_server_is_documented(self):
        # Routes that are not JSON: documented too, with their content type.
        for method, path, ctype in (("GET", "/metrics", "text/plain"), ("GET", "/", "text/html"),
                                    ("GET", "/status", "text/html"), ("GET", "/web/agentwire.js", "text/javascript"),
                                    ("GET", "/api/events", "text/event-stream"), ("POST", "/agui", "text/event-stream"),
                                    ("GET", "/agui/runs/r1", "text/event-stream"), ("GET", "/ws", None)):
            template = template_of(path)
            self.assertIsNotNone(template, path)
            op = DOC["paths"][template].get(method.lower())
            self.assertIsNotNone(op, f"{method} {path}")
            if ctype:
                documented = [c for r in op["responses"].values() for c in resolve(r).get("content", {})]
                self.assertTrue(any(c.startswith(ctype) for c in documented), f"{method} {path}: {documented}")
        for template, item in DOC["paths"].items():
            for method, op in item.items():
                if method in ("get", "post", "put", "patch", "delete"):
                    self.assertIn("operationId", op, f"{method} {template}")
                    self.assertIn("responses", op, f"{method} {template}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
