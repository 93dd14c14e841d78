"""Fixtures that run the real pyfcgi binary with the fixture apps of ``apps/`` and speak FastCGI to it.

The binary is ``$PYFCGI_BIN`` (default ``target/debug/pyfcgi`` in the repository); a missing binary stops the whole
run with an error. Each server gets its own copy of the fixture apps (so apps may be edited and record files
written without touching the repository), a Unix socket in a short private directory, a clean environment (no
WSGI_*/PYFCGI_*/PYTHONPATH from the caller), and its log captured from stderr (and the --log-file, if any). A server
is ready when it logs ``serving FastCGI``; it is stopped with SIGTERM and must exit with status 0.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import pytest

from fcgi_client import Connection, Response, cgi_params

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPS = HERE / "apps"
BIN = Path(os.environ.get("PYFCGI_BIN") or REPO / "target" / "debug" / "pyfcgi").resolve()

# Settings the caller's environment must not leak into the server under test.
_SCRUB = re.compile(r"^(WSGI_|PYFCGI_|PYTHON|SCRIPT_NAME$|AllowPathInfoForScriptMappings$|VIRTUAL_ENV$|"
                    r"DJANGO_SETTINGS_MODULE$|FCGI_|RUST_LOG$)", re.IGNORECASE)


def pytest_configure(config):
    if not BIN.is_file() or not os.access(BIN, os.X_OK):
        raise pytest.UsageError(f"pyfcgi binary not found at {BIN}: build it (cargo build) or set PYFCGI_BIN")


def web_config(settings: dict, location: Optional[dict] = None) -> str:
    """A web.config with these appSettings (and, if given, more inside a <location> block)."""
    from xml.sax.saxutils import quoteattr

    def adds(d):
        return "".join(f"    <add key={quoteattr(k)} value={quoteattr(v)} />\n" for k, v in d.items())

    text = f"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n  <appSettings>\n{adds(settings)}  </appSettings>\n"
    if location:
        text += f"  <location path=\".\">\n  <appSettings>\n{adds(location)}  </appSettings>\n  </location>\n"
    return text + "</configuration>\n"


def clean_env(extra: Optional[dict] = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not _SCRUB.match(k)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


class Server:
    """One running pyfcgi."""

    validated = False

    def __init__(self, app: Optional[str] = None, app_root: Optional[Path] = None, args=(), env=None,
                 cwd: Optional[Path] = None, log_file: Optional[Path] = None, expect_ready: bool = True,
                 use_app_root_flag: bool = True, files: Optional[dict] = None,
                 watch_log: Optional[Path] = None, transport: str = "unix"):
        self.dir = Path(tempfile.mkdtemp(prefix="pf", dir="/tmp"))
        self.root = app_root if app_root is not None else self.dir / "app"
        if app_root is None:
            shutil.copytree(APPS, self.root, ignore=shutil.ignore_patterns("__pycache__"))
        for rel, content in (files or {}).items():
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content.replace("{ROOT}", str(self.root)), "utf-8")  # {ROOT}: the app root
        self.records = self.dir / "records"
        self.records.mkdir()
        self.socket = str(self.dir / "s.sock")
        self.stderr_path = self.dir / "stderr.log"
        self.log_file = log_file or watch_log  # read together with stderr by log()
        stdin = subprocess.DEVNULL
        listener = None
        if transport == "unix":
            cmd = [str(BIN), "--bind", f"unix:{self.socket}"]
        elif transport == "tcp":
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            self.socket = probe.getsockname()
            probe.close()
            cmd = [str(BIN), "--bind", f"127.0.0.1:{self.socket[1]}"]
        elif transport == "fd0":
            # The spawn model of lighttpd, mod_fcgid and IIS: the listening socket is the child's stdin.
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(self.socket)
            listener.listen(16)
            stdin = listener.fileno()
            cmd = [str(BIN)]
        else:
            raise ValueError(transport)
        if app:
            cmd += ["--app", app]
        if use_app_root_flag:
            cmd += ["--app-root", str(self.root)]
        if log_file:
            cmd += ["--log-file", str(log_file)]
        cmd += list(args)
        self.cmd = cmd
        env = clean_env({"PYFCGI_TEST_RECORDS": str(self.records), **(env or {})})
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                     env=env, cwd=str(cwd or self.dir))
        if listener is not None:
            listener.close()
        self.stopped = False
        if expect_ready:
            self.wait_log("serving FastCGI", timeout=20)

    # ---- log ----

    def log(self) -> str:
        text = self.stderr_path.read_text("utf-8", "replace")
        if self.log_file and Path(self.log_file).is_file():
            text += Path(self.log_file).read_text("utf-8", "replace")
        return text

    def mark(self) -> int:
        return len(self.log())

    def log_since(self, mark: int) -> str:
        return self.log()[mark:]

    def wait_log(self, needle: str, timeout: float = 10.0, since: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()[since:]
            if needle in text:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"pyfcgi exited ({self.proc.returncode}) before logging {needle!r}:\n{text}")
            time.sleep(0.02)
        raise AssertionError(f"pyfcgi did not log {needle!r} within {timeout}s:\n{self.log()[since:]}")

    def access_lines(self, since: int = 0) -> list[str]:
        return [line for line in self.log()[since:].splitlines() if "pyfcgi::access" in line]

    def wait_access_lines(self, needle: str, count: int = 1, since: int = 0, timeout: float = 5.0) -> list[str]:
        """The access lines after ``since`` that contain ``needle``, once there are ``count`` of them: access
        lines are written in batches, a few milliseconds after the response (and an earlier test's may still
        arrive after ``since``)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.access_lines(since) if needle in line]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.01)

    # ---- records written by the fixture apps ----

    def record(self, name: str) -> list[str]:
        path = self.records / name
        return path.read_text("utf-8").splitlines() if path.exists() else []

    def wait_record(self, name: str, predicate, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            lines = self.record(name)
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"record {name} never satisfied the condition: {lines!r}")
            time.sleep(0.02)

    # ---- requests ----

    def connect(self, timeout: float = 15.0) -> Connection:
        return Connection(self.socket, timeout=timeout)

    def request(self, path="/", route: Optional[str] = None, body: bytes = b"", iis: Optional[dict] = None,
                record_size: int = 8192, allow_incomplete: bool = False, headers: Optional[dict] = None,
                timeout: float = 15.0, **kw) -> Response:
        """One request on a fresh connection. ``route`` selects a route of the bridge app (X-Route header)."""
        headers = dict(headers or {})
        if route:
            headers["X-Route"] = route
        if body and "body_len" not in kw:
            kw["body_len"] = len(body)
        if iis is True:
            iis = self.iis_params()
        params = cgi_params(path, headers=headers, iis=iis, **kw)
        with self.connect(timeout) as conn:
            return conn.request(params, body, record_size=record_size, allow_incomplete=allow_incomplete)

    def iis_params(self, **extra) -> dict:
        return {"APPL_PHYSICAL_PATH": str(self.root) + "/", "APPL_MD_PATH": "/LM/W3SVC/1/ROOT", **extra}

    def assert_serving(self) -> None:
        """A normal request after a failure must still succeed."""
        resp = self.request("/", route="hello") if self.has_bridge() else self.request("/")
        assert resp.ended and resp.status == 200, (resp, self.log()[-3000:])
        assert self.proc.poll() is None

    def has_bridge(self) -> bool:
        return any(a.startswith("bridge") for a in self.cmd)

    # ---- life ----

    def stop(self, timeout: float = 15.0) -> int:
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"pyfcgi did not stop within {timeout}s of SIGTERM:\n{self.log()[-3000:]}")
        finally:
            self._stderr.close()
        return rc

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class Servers:
    """Starts servers for one test or module and stops them all at the end, asserting a clean exit."""

    def __init__(self):
        self.started: list[Server] = []

    def __call__(self, *args, **kw) -> Server:
        server = Server(*args, **kw)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        failures = []
        for server in self.started:
            rc = server.stop()
            if rc != 0:
                failures.append(f"{server.cmd}: exit status {rc}\n{server.log()[-3000:]}")
            else:
                server.cleanup()
        if failures:
            raise AssertionError("pyfcgi did not exit cleanly:\n" + "\n".join(failures))


@pytest.fixture
def servers():
    s = Servers()
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def module_servers():
    s = Servers()
    yield s
    s.stop_all()


@pytest.fixture(scope="module")
def bridge(module_servers) -> Server:
    """The bridge fixture app (apps/bridge.py, routed by the X-Route header), plain."""
    return module_servers("bridge:app")


@pytest.fixture(scope="module")
def validated_bridge(module_servers) -> Server:
    """The same routes, each wrapped in wsgiref.validate.validator; violations are recorded."""
    server = module_servers("bridge:validated_app")
    server.validated = True
    return server


@pytest.fixture(params=["plain", "validated"])
def any_bridge(request):
    """Runs a test against the plain bridge and against the validator-wrapped one; for the latter, asserts that
    the test caused no wsgiref.validate warning or assertion failure."""
    if request.param == "plain":
        yield request.getfixturevalue("bridge")
        return
    server = request.getfixturevalue("validated_bridge")
    mark = server.mark()
    before = len(server.record("validate"))
    yield server
    time.sleep(0.05)  # let an unraisable from a garbage-collected iterator reach the record
    violations = server.record("validate")[before:]
    log = server.log_since(mark)
    assert not violations, f"wsgiref.validate reported: {violations}"
    assert "AssertionError" not in log and "WSGIWarning" not in log, log


class Nginx:
    """A real nginx on a free loopback port in front of one pyfcgi (its Unix socket), with kept upstream
    connections (``keepalive`` + ``fastcgi_keep_conn on``) as the examples configure it."""

    def __init__(self, backend: Server):
        self.dir = Path(tempfile.mkdtemp(prefix="ngx", dir="/tmp"))
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.error_log = self.dir / "error.log"
        temp = "".join(f"  {kind}_temp_path {self.dir}/{kind};\n" for kind in
                       ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (self.dir / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
user root;  # the socket is the tests' (mode 660); under root nginx's workers would otherwise be nobody
pid {self.dir}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 64; }}
http {{
  access_log off;
{temp}
  upstream pyfcgi {{ server unix:{backend.socket}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_NAME "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_pass pyfcgi;
      fastcgi_keep_conn on;
    }}
  }}
}}
""")
        self.proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(self.dir), "-c",
                                      str(self.dir / "nginx.conf")], stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "stderr.log", "wb"))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("nginx did not start:\n" + (self.dir / "stderr.log").read_text())
                time.sleep(0.05)

    def errors(self) -> str:
        return self.error_log.read_text("utf-8", "replace") if self.error_log.exists() else ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def nginx_in_front():
    """Starts nginx in front of a given server: ``nginx_in_front(server)``; stopped after the test."""
    started = []

    def start(backend: Server) -> Nginx:
        front = Nginx(backend)
        started.append(front)
        return front

    yield start
    for front in started:
        front.stop()
