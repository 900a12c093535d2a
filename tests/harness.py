"""Starts the real agentwire binary on a free loopback port and talks to it as a client would.

Standard library only (plus Debian's python3-websockets for the WebSocket tests), so the
tests run under /usr/bin/python3 on a fresh Debian 12 machine.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.path.abspath(os.environ.get("AW_BIN", os.path.join(os.path.dirname(__file__), "..", "build", "agentwire")))
TMP_ROOT = os.environ.get("AW_TEST_TMP", tempfile.gettempdir())


def terminate(proc, timeout):
    """SIGTERM, then SIGKILL if the process is still there after `timeout` seconds."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _LogCopier:
    """Copies a process's output to a file as it comes, so logs() sees it at once."""

    def __init__(self, path):
        self.file = open(path, "ab")
        self.thread = None
        self.closed = False

    def follow(self, pipe):
        import threading

        def copy():
            for line in iter(pipe.readline, b""):
                self.file.write(line)
                self.file.flush()
            pipe.close()
        self.thread = threading.Thread(target=copy, daemon=True)
        self.thread.start()

    def close(self):
        if self.closed:
            return
        if self.thread:
            self.thread.join(timeout=30)
        self.file.close()
        self.closed = True


class Server:
    """One agentwire process with its own data directory."""

    def __init__(self, *args, data_dir=None, env=None, cwd=None):
        os.makedirs(TMP_ROOT, exist_ok=True)
        self.dir = data_dir or tempfile.mkdtemp(prefix="aw-", dir=TMP_ROOT)
        self.port_file = os.path.join(self.dir, "port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log_path = os.path.join(self.dir, "server.log")
        self.args = [BIN, "serve", "--port", "0", "--port-file", self.port_file,
                     "--set", "store.path=" + os.path.join(self.dir, "agentwire.db"), *args]
        self.env = dict(os.environ, **(env or {}))
        self.cwd = cwd
        self.proc = None
        self.port = None

    def start(self, wait_ready=True, timeout=20):
        """Starts the process and waits for its port file (and readiness, with wait_ready).
        With wait_ready=False a process that exits before listening is not an error here: a test
        that expects a failed start checks wait_exit() and the log (how fast it fails is up to
        the machine, so it must not decide the outcome)."""
        # Through a pipe, copied to the log file by a thread of ours: the server's own file limits
        # (a test may cap its file size to cause write errors) never cost us its log.
        self.log = _LogCopier(self.log_path)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.cwd)
        self.log.follow(self.proc.stdout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                if not wait_ready:
                    return self
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.005)
        else:
            raise AssertionError("server did not write its port file\n" + self.logs())
        if wait_ready:
            self.wait_ready(timeout=deadline - time.time())
        return self

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                status, _ = self.get("/health/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise AssertionError("server never became ready\n" + self.logs())

    def get(self, path, headers=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        if conn is None:
            c.close()
        ctype = r.getheader("Content-Type", "")
        parsed = json.loads(body) if body and "json" in ctype else body.decode("utf-8", "replace")
        return r.status, parsed

    def request(self, method, path, body=None, headers=None, raw=None):
        """`body` is sent as JSON; `raw` (a str) as it is, for bodies that are not JSON."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = raw.encode() if raw is not None else json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json", **(headers or {})}
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw) if raw else None, dict(r.getheaders())
        except ValueError:
            return r.status, raw.decode("utf-8", "replace"), dict(r.getheaders())

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()

    # What a sanitizer or the C++ runtime writes when the process dies of a bug: a test that saw
    # nothing wrong from outside still fails, with the report.
    CRASH_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer", "runtime error:",
                   "terminate called")

    def stop(self):
        terminate(self.proc, 15)
        if self.proc and not self.log.closed:
            self.log.close()
        crash = [m for m in self.CRASH_MARKS if m in self.logs()]
        if crash:
            raise AssertionError(f"the server reported {crash[0]!r}:\n{self.logs()[-6000:]}")

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def pid(self):
        return self.proc.pid

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


def wait_for(pred, timeout=30, what="condition", interval=0.02):
    """Polls `pred` until it returns something truthy, which is returned. Tests wait on
    conditions like this one, never on a fixed sleep: a slower or faster machine changes how long
    the wait takes, not its outcome."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


async def wait_for_async(pred, timeout=30, what="condition"):
    """wait_for from a coroutine: the blocking polls run in a thread so clients keep going."""
    import asyncio
    return await asyncio.to_thread(wait_for, pred, timeout, what)


def run_cli(*args, env=None, timeout=30):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


class Blackhole:
    """A TCP listener that accepts connections and never answers: a dependency that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts")


class ClickHouse:
    """A private Debian clickhouse-server (18.16) on loopback ports chosen at run time, with its
    config and data under `dir`. stop()/start() keep the ports and the data, so a test can cause
    an outage and end it. Use as a context manager or call stop(); nothing is left running."""

    def __init__(self, dir=None):
        os.makedirs(TMP_ROOT, exist_ok=True)
        self.dir = dir or tempfile.mkdtemp(prefix="aw-ch-", dir=TMP_ROOT)
        self.http_port = free_port()
        self.tcp_port = free_port()
        self.proc = None
        subprocess.run([os.path.join(SCRIPTS, "clickhouse-config"), self.dir, str(self.http_port),
                        str(self.tcp_port)], check=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout=30):
        self.out = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen(["/usr/sbin/clickhouse-server", f"--config-file={self.dir}/config.xml"],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"clickhouse-server exited with {self.proc.returncode}; see {self.dir}/log")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=2)
                c.request("GET", "/ping")
                if c.getresponse().status == 200:
                    c.close()
                    return self
                c.close()
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("clickhouse-server did not answer /ping")

    def stop(self):
        terminate(self.proc, 30)
        if self.proc:
            self.out.close()
        self.proc = None

    def kill(self):
        """An outage as it really happens: SIGKILL, no goodbye on open connections. (A SIGTERM
        lets clickhouse-server 18.16 keep serving a client that keeps inserting for many seconds.)"""
        self.proc.kill()
        self.proc.wait()
        self.out.close()
        self.proc = None

    def pause(self):
        """A hung server: SIGSTOP. Connections stay open and requests get no answer."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def query(self, sql):
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        c.request("POST", "/", body=sql.encode())
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        if r.status != 200:
            raise AssertionError(f"ClickHouse answered {r.status}: {body}")
        return body

    def rows(self, sql):
        """Rows of a query as lists of strings (TabSeparated)."""
        text = self.query(sql + " FORMAT TabSeparated")
        return [line.split("\t") for line in text.splitlines() if line]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Redis:
    """A private Debian redis-server on a loopback port chosen at run time. kill() (SIGKILL), pause()
    (SIGSTOP: a hung server) and resume(); start() again after kill() keeps the port."""

    def __init__(self):
        os.makedirs(TMP_ROOT, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="aw-redis-", dir=TMP_ROOT)
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, timeout=20, what="redis-server answering PING")
        return self

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc:
            self.resume()
            terminate(self.proc, 10)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Postgres:
    """A private Debian PostgreSQL 15 cluster on a loopback port chosen at run time, for tests that
    cause its outages (the shared one of scripts/test-services serves the others). crash() stops it
    the way a crash does (immediate: no checkpoint, recovery on the next start); start() again keeps
    the data and the port."""

    BIN = "/usr/lib/postgresql/15/bin"

    def __init__(self):
        os.makedirs(TMP_ROOT, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="aw-pg-", dir=TMP_ROOT)
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        os.makedirs(self.sock)
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        self._as_postgres([f"{self.BIN}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                           "--locale=C.UTF-8", "-N"])
        self.running = False

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, cmd):
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, capture_output=True)

    def start(self):
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.sock} "
                "-c fsync=off -c max_connections=100")
        self._as_postgres([f"{self.BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-w",
                           "-t", "60", "start", "-o", opts])
        self.running = True
        return self

    def crash(self):
        self._as_postgres([f"{self.BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        self.running = False

    def _processes(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in children] + [postmaster]

    def pause(self):
        """A hung database: SIGSTOP to the postmaster and every backend. Connections stay open and
        queries get no answer."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def resume(self):
        for pid in reversed(self._processes()):
            os.kill(pid, signal.SIGCONT)

    def stop(self):
        if self.running:
            self._as_postgres([f"{self.BIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"])
            self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)


def metric_samples(text, name):
    """{frozenset(labels.items()): value} of one metric family in Prometheus text."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, value = line.rsplit(" ", 1)
        if "{" in head:
            metric, labels = head.split("{", 1)
            pairs = [p.split("=", 1) for p in labels.rstrip("}").split(",") if p]
            labels = {k: v.strip('"') for k, v in pairs}
        else:
            metric, labels = head, {}
        if metric == name:
            out[frozenset(labels.items())] = float(value)
    return out


def metric(srv, name, **labels):
    """One sample of a metric from the server's /metrics (0.0 when it is not there)."""
    _, text = srv.get("/metrics")
    return metric_samples(text, name).get(frozenset(labels.items()), 0.0)


def raw_upgrade(port, path="/ws", headers=None):
    """Sends a WebSocket upgrade request by hand and returns (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **(headers or {})}
    c.request("GET", path, headers=h)
    r = c.getresponse()
    body = r.read() if r.status != 101 else b""
    c.close()
    return r.status, dict(r.getheaders()), body


def main():
    unittest.main(verbosity=2)
