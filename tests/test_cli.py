"""The command line: check-config, configuration errors, refusing unsafe binds."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402


class CliTest(unittest.TestCase):
    def test_check_config_prints_effective_config_with_secrets_masked(self):
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write('[server]\nport = 9100\n[auth]\nsecret = "hunter2"\n')
        r = harness.run_cli("check-config", "--config", f.name, env={"AGENTWIRE_SERVER_THREADS": "3"})
        os.unlink(f.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("port = 9100", r.stdout)
        self.assertIn("threads = 3", r.stdout)
        self.assertNotIn("hunter2", r.stdout)
        self.assertIn('secret = "********"', r.stdout)

    def test_unknown_key_is_an_error_naming_it(self):
        r = harness.run_cli("check-config", "--set", "server.prot=1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("'server.prot'", r.stderr)
        r = harness.run_cli("check-config", env={"AGENTWIRE_NOPE": "1"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("AGENTWIRE_NOPE", r.stderr)

    def test_bad_value_is_an_error_naming_it(self):
        r = harness.run_cli("serve", "--port", "70000")
        self.assertEqual(r.returncode, 2)
        self.assertIn("'server.port'", r.stderr)

    def test_non_loopback_without_secret_refuses_to_start(self):
        r = harness.run_cli("serve", "--host", "0.0.0.0", "--port", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("auth.secret", r.stderr)

    def test_an_in_memory_store_writes_no_file(self):
        # store.path=:memory: (tests, benchmarks): no lock file, no startup history, no dev secret
        # on disk, in the working directory or anywhere else the server was told about.
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=harness.TMP_ROOT) as cwd:
            srv = harness.Server("--set", "store.path=:memory:", cwd=cwd)
            srv.start()
            try:
                auth = {"Authorization": f"Bearer {wsclient.dev_token(srv.port, 'mem')}"}
                status, t, _ = srv.request("POST", "/api/threads", {}, headers=auth)
                self.assertEqual(status, 201, t)
                status, body, _ = srv.request("POST", f"/api/threads/{t['thread_id']}/messages",
                                              {"content": "kept in memory"}, headers=auth)
                self.assertEqual(status, 202, body)
                harness.wait_for(lambda: len(srv.request("GET", f"/api/threads/{t['thread_id']}/messages",
                                                         headers=auth)[1]["messages"]) == 2,
                                 what="the agent's answer")
            finally:
                srv.stop()
            self.assertEqual(os.listdir(cwd), [])
            # The harness's directory holds only what the harness put there (port file, log).
            self.assertEqual(sorted(os.listdir(srv.dir)), ["port", "server.log"])
            self.assertIn("development secret kept in memory", srv.logs())

    def test_version(self):
        r = harness.run_cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.strip(), r"^\d+\.\d+\.\d+$")


if __name__ == "__main__":
    harness.main()
