"""The Debian package (cmake/package.cmake, deploy/debian/), built from this build and installed on this
machine, as an operator would: lintian finds no error; dpkg -i creates the agentwire user and
/var/lib/agentwire; the unit passes systemd-analyze verify; the unit's ExecStart, run as the unit's user
in its working directory with the installed configuration (edited: another port), serves a chat; a
package of a higher version upgrades it keeping the data and the edited conffile; remove keeps the data
and the configuration, purge deletes them.

It changes the machine (a package, a system user), so it runs only as root (or with sudo that asks no
password) and only when no agentwire package is installed already; it leaves the package purged."""
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from harness import wait_for  # noqa: E402
from wsclient import Client  # noqa: E402

BUILD = os.path.dirname(os.path.abspath(harness.BIN))
CONFFILE = "/etc/agentwire/agentwire.toml"
UNIT = "/lib/systemd/system/agentwire.service"
STATE = "/var/lib/agentwire"


def sudo():
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def installed_version():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", "agentwire"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.startswith("install ok installed"):
        return None
    return r.stdout.split()[-1]


def sanitized_build():
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        cache = f.read()
    return any(f"{o}:BOOL=ON" in cache for o in ("AGENTWIRE_SANITIZE", "AGENTWIRE_TSAN"))


SUDO = sudo()


@unittest.skipIf(SUDO is None, "installs a package: needs root or sudo without a password")
@unittest.skipIf(shutil.which("lintian") is None or shutil.which("dpkg-shlibdeps") is None,
                 "lintian and dpkg-dev are not installed: run scripts/install-deps test")
@unittest.skipIf(sanitized_build(), "the package is made from the release build (make test), not a sanitizer's")
class PackageTest(unittest.IsolatedAsyncioTestCase):
    def run_root(self, *cmd, check=True):
        r = subprocess.run([*SUDO, *cmd], capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            self.fail(f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r

    def build_package(self, version=None):
        out = tempfile.mkdtemp(prefix="aw-deb-", dir=harness.TMP_ROOT)
        cmd = ["cpack", "--config", os.path.join(BUILD, "CPackConfig.cmake"), "-B", out]
        if version:
            cmd += ["-D", f"CPACK_PACKAGE_VERSION={version}"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        self.assertEqual(len(debs), 1, debs)
        return os.path.join(out, debs[0])

    def start_installed(self):
        """The unit's ExecStart, as its User, in its WorkingDirectory (what systemd would do, without
        systemd: this machine may not run it)."""
        with open(UNIT) as f:
            unit = f.read()
        exec_start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1).split()
        user = re.search(r"^User=(.*)$", unit, re.M).group(1)
        workdir = re.search(r"^WorkingDirectory=(.*)$", unit, re.M).group(1)
        log = open(os.path.join(self.tmp, "installed.log"), "ab")
        # setpriv execs the command as the user (no process in between, as systemd does): SIGTERM reaches it.
        proc = subprocess.Popen([*SUDO, "setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--",
                                 *exec_start], cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_server, proc)

        def ready():
            assert proc.poll() is None, f"the installed server exited:\n{self.server_log()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/ready", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(ready, timeout=30, what="the installed server ready")
        return proc

    def stop_server(self, proc):
        if proc.poll() is None:
            # The server drains and exits 0.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def server_log(self):
        with open(os.path.join(self.tmp, "installed.log"), errors="replace") as f:
            return f.read()

    async def chat(self, user, content):
        c = await Client.connect(self.port, wsclient.dev_token(self.port, user))
        ack = await c.request("user_message", {"content": content}, id_="m", want="ack")
        self.assertEqual(ack["type"], "ack", ack)
        done = await c.recv_until(lambda f: f.get("run_id") == ack["data"]["run_id"] and f["type"] == "agent_completed",
                                  timeout=20)
        await c.close()
        return done

    async def test_build_lint_install_run_upgrade_remove_purge(self):
        if installed_version() is not None:
            self.skipTest("an agentwire package is installed on this machine: not touching it")
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="aw-pkg-", dir=harness.TMP_ROOT)
        self.addCleanup(lambda: self.run_root("dpkg", "--purge", "agentwire", check=False))

        deb = self.build_package()
        self.assertTrue(os.path.basename(deb).startswith("agentwire_") and deb.endswith("_amd64.deb"), deb)
        info = subprocess.run(["dpkg-deb", "--field", deb, "Depends"], capture_output=True, text=True).stdout
        self.assertIn("libsqlite3-0", info, "dependencies come from the linked libraries (dpkg-shlibdeps)")
        self.assertIn("adduser", info)
        recommends = subprocess.run(["dpkg-deb", "--field", deb, "Recommends"], capture_output=True, text=True).stdout
        self.assertIn("libcurl4", recommends, "opened at need, not linked: named by hand")
        self.assertIn("libpq5", recommends)
        self.assertNotIn("libcurl", info)
        lint = subprocess.run(["lintian", "--fail-on", "error", deb], capture_output=True, text=True, timeout=300)
        self.assertEqual(lint.returncode, 0, f"lintian found errors:\n{lint.stdout}{lint.stderr}")
        self.assertNotRegex(lint.stdout, r"(?m)^E: ", lint.stdout)

        # Install: the user, the state directory, the configuration readable by the service only.
        self.run_root("dpkg", "-i", deb)
        self.assertIsNotNone(installed_version())
        pw = subprocess.run(["getent", "passwd", "agentwire"], capture_output=True, text=True).stdout
        self.assertTrue(pw.startswith("agentwire:"), pw)
        st = os.stat(STATE)
        self.assertEqual(oct(st.st_mode & 0o777), "0o750")
        self.assertEqual(subprocess.run(["stat", "-c", "%U:%G %a", CONFFILE], capture_output=True,
                                        text=True).stdout.strip(), "root:agentwire 640")
        self.assertTrue(os.path.exists("/usr/share/man/man1/agentwire.1.gz"))
        man = subprocess.run(["man", "-l", "/usr/share/man/man1/agentwire.1.gz"], capture_output=True, text=True,
                             env=dict(os.environ, MANWIDTH="100"))
        if man.returncode == 0:  # man-db may be absent on a minimal machine: the file is checked above
            self.assertIn("agentwire backup", man.stdout)
        verify = self.run_root("systemd-analyze", "verify", UNIT, check=False)
        self.assertEqual(verify.returncode, 0, f"systemd-analyze verify:\n{verify.stdout}{verify.stderr}")

        # The operator edits the conffile (a port of this run), starts it, chats.
        self.port = harness.free_port()
        with open(CONFFILE) as f:
            conf = f.read()
        self.assertIn('path = "/var/lib/agentwire/agentwire.db"', conf)
        edited = re.sub(r"(?m)^port = 8080 ", f"port = {self.port} ", conf)
        self.assertNotEqual(edited, conf)
        with open(os.path.join(self.tmp, "edited.toml"), "w") as f:
            f.write(edited)
        self.run_root("cp", os.path.join(self.tmp, "edited.toml"), CONFFILE)
        server = self.start_installed()
        first = await self.chat("packaged", "before the upgrade")
        self.stop_server(server)
        self.assertEqual(server.returncode, 0, self.server_log())
        self.assertEqual(subprocess.run(["stat", "-c", "%U", f"{STATE}/agentwire.db"], capture_output=True,
                                        text=True).stdout.strip(), "agentwire")

        # Upgrade to a higher version: the edited conffile and the data are kept.
        deb2 = self.build_package("0.99.0")
        self.run_root("dpkg", "-i", deb2)
        self.assertEqual(installed_version(), "0.99.0")
        with open(CONFFILE) as f:
            self.assertEqual(f.read(), edited, "the edited conffile is kept")
        server = self.start_installed()
        c = await Client.connect(self.port, wsclient.dev_token(self.port, "packaged"))
        h = await c.request("get_thread_history", {"thread_id": first["thread_id"]}, id_="h", want="thread_history")
        self.assertEqual(h["type"], "thread_history", h)
        self.assertEqual([m["content"] for m in h["data"]["messages"] if m["role"] == "user"], ["before the upgrade"])
        await c.close()
        await self.chat("packaged", "after the upgrade")
        self.stop_server(server)

        # Remove: the binary goes; the data and the configuration stay. Purge: both go.
        self.run_root("dpkg", "--remove", "agentwire")
        self.assertFalse(os.path.exists("/usr/bin/agentwire"))
        self.assertTrue(os.path.exists(f"{STATE}/agentwire.db"))
        self.assertTrue(os.path.exists(CONFFILE))
        self.run_root("dpkg", "--purge", "agentwire")
        self.assertFalse(os.path.exists(STATE))
        self.assertFalse(os.path.exists(CONFFILE))
        self.assertIsNone(installed_version())


if __name__ == "__main__":
    unittest.main(verbosity=2)
