"""The command line: check-config, configuration errors, refusing unsafe binds."""
import os
import shutil
import socket
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

    def test_libcurl_and_libpq_are_loaded_only_by_the_features_that_use_them(self):
        # Opened on first use (src/core/shared_library.hpp): on the embedded defaults neither is in
        # the process, nor the 30 libraries they pull in; ClickHouse analytics loads libcurl.
        def mapped(*args):
            srv = harness.Server(*args).start()
            try:
                with open(f"/proc/{srv.proc.pid}/maps") as f:
                    return f.read()
            finally:
                srv.stop()

        maps = mapped()
        self.assertIn("libsqlite3", maps)
        self.assertNotIn("libcurl", maps)
        self.assertNotIn("libpq", maps)
        self.assertNotIn("libgssapi", maps)
        # The analytics sink makes its curl handle when built, reachable ClickHouse or not.
        maps = mapped("--set", "analytics.enabled=true", "--set", "analytics.url=http://127.0.0.1:1")
        self.assertIn("libcurl.so.4", maps)
        self.assertNotIn("libpq", maps)

    def without_library(self, srv, soname):
        """Runs `srv` in a mount namespace where `soname` is an empty file, as on a machine without
        the package: dlopen fails there and nowhere else."""
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skipTest("needs root and unshare to hide a library")
        path = os.path.realpath(os.path.join("/usr/lib/x86_64-linux-gnu", soname))
        self.assertTrue(os.path.exists(path), path)
        srv.args = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    f'mount --bind /dev/null "{path}" && exec "$@"', "sh", *srv.args]
        return srv

    def test_without_libcurl_analytics_is_degraded_and_says_why(self):
        srv = self.without_library(harness.Server("--set", "analytics.enabled=true",
                                                  "--set", "analytics.url=http://127.0.0.1:1"), "libcurl.so.4")
        srv.start()
        try:
            status, ready = srv.get("/health/ready")
            self.assertEqual(status, 200, ready)
            degraded = {d["name"]: d for d in ready["degraded"]}
            self.assertIn("analytics", degraded, ready)
            self.assertIn("libcurl.so.4 cannot be loaded", degraded["analytics"]["reason"])
            # Chat does not need it.
            auth = {"Authorization": f"Bearer {wsclient.dev_token(srv.port, 'nocurl')}"}
            status, t, _ = srv.request("POST", "/api/threads", {}, headers=auth)
            self.assertEqual(status, 201, t)
        finally:
            srv.stop()

    def test_without_libpq_the_postgres_store_does_not_start_and_says_why(self):
        srv = self.without_library(harness.Server("--set", "store.backend=postgres",
                                                  "--set", "store.url=postgresql://127.0.0.1:1/none"), "libpq.so.5")
        srv.start(wait_ready=False)
        self.assertNotEqual(srv.wait_exit(), 0)
        self.assertIn("the PostgreSQL store needs libpq: libpq.so.5 cannot be loaded", srv.logs())

    def test_tells_systemd_when_ready_alive_and_stopping(self):
        # The notify protocol of a Type=notify unit with WatchdogSec=, spoken as systemd would hear it.
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=harness.TMP_ROOT) as d:
            path = os.path.join(d, "notify")
            manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            manager.bind(path)
            manager.settimeout(20)
            srv = harness.Server(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
            srv.start()
            try:
                said = []
                while said.count("WATCHDOG=1") < 2 or "READY=1" not in said:
                    said.append(manager.recv(256).decode())
                self.assertIn("READY=1", said)
            finally:
                srv.stop()
            while "STOPPING=1" not in said:
                said.append(manager.recv(256).decode())
            manager.close()

    def test_version(self):
        r = harness.run_cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.strip(), r"^\d+\.\d+\.\d+$")


if __name__ == "__main__":
    harness.main()
