"""Fixtures of the end-to-end suite: a real `portico serve` and the official Cloudflare SDK.

Each test gets its own Portico process on a free port with a fresh data directory, a chosen
admin token and account id, and a `cloudflare.Cloudflare` client pointed at it through
`base_url`. Every test runs twice: on the embedded SQLite log and on PostgreSQL (a fresh
database per test, created on the server `PORTICO_TEST_POSTGRES_URL` names).

Environment:
  PORTICO_BIN                 path of the `portico` binary (built by cargo beforehand)
  PORTICO_TEST_POSTGRES_URL   a PostgreSQL server whose user may create databases
  PORTICO_SKIP_POSTGRES=1     run the SQLite half only
  PORTICO_SKIP_PEERS=1        skip the tests that need the Node MCP peers (see mcp_peers.py)
                              or the browser (PORTICO_CHROMIUM, see browser.py)

No test passes without running: without PostgreSQL or the peers the tests that need them fail,
unless the variable above says to skip them, and any other skip or xfail is turned into a
failure (`skips.py`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cloudflare
import pytest

import skips
# The real MCP peers (upstream servers, the MCP client, the Node tools): fixtures of this suite.
from mcp_peers import everything_http, everything_sse, node_peers, pyserver  # noqa: F401
# The real browser (Debian's Chromium, driven by Playwright): a fixture of this suite.
from browser import chromium  # noqa: F401

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def _binary() -> str:
    path = os.environ.get("PORTICO_BIN")
    if not path:
        pytest.exit(
            "PORTICO_BIN is not set: build with `cargo build -p portico --bin portico` "
            "and point PORTICO_BIN at target/debug/portico (scripts/test does both)",
            returncode=2,
        )
    if not os.access(path, os.X_OK):
        pytest.exit(f"PORTICO_BIN `{path}` is not an executable file", returncode=2)
    return path


def random_token() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(40))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """Creates and drops throwaway databases on the server of `PORTICO_TEST_POSTGRES_URL`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.psql = shutil.which("psql") or _find_psql()
        if self.psql is None:
            pytest.exit("psql is not installed; it creates the test databases", returncode=2)
        self.created: list[str] = []

    def _run(self, sql: str) -> None:
        subprocess.run(
            [self.psql, "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-q", "-d", self.url, "-c", sql],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def create_database(self) -> str:
        name = f"portico_e2e_{secrets.token_hex(6)}"
        self._run(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))

    def drop_all(self) -> None:
        for name in self.created:
            try:
                self._run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except subprocess.CalledProcessError:
                pass


def _thread_stacks(pid: int) -> str:
    """Every thread's stack of process `pid` (gdb, attached for a moment), or why not."""
    gdb = shutil.which("gdb")
    if gdb is None:
        return "(no gdb to show the threads' stacks)"
    try:
        return subprocess.run(
            [gdb, "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt"],
            capture_output=True, text=True, timeout=120,
        ).stdout
    except (subprocess.SubprocessError, OSError) as error:
        return f"(gdb could not show the threads' stacks: {error})"


def _find_psql() -> str | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))
    return str(candidates[-1]) if candidates else None


class Portico:
    """One `portico serve` process and the settings it runs with."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.binary = _binary()
        self.data_dir = data_dir
        self.database_url = database_url
        self.account_id = secrets.token_hex(16)
        self.admin_token = random_token()
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.stdout: list[str] = []
        self.stderr_path = data_dir.parent / f"portico-{self.port}.log"
        self.clients: list[cloudflare.Cloudflare] = []
        # Extra arguments of `portico serve` (say, `--allow-private-upstreams`).
        self.serve_args: list[str] = []
        # Extra environment of `portico serve`.
        self.env: dict[str, str] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    def _global_args(self) -> list[str]:
        args = [self.binary, "--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args

    def sibling(self, data_dir: Path) -> "Portico":
        """Another instance on this one's database (PostgreSQL): the same account, admin token,
        arguments, environment and master key, its own data directory. Not started."""
        other = Portico(data_dir, self.database_url)
        other.account_id, other.admin_token = self.account_id, self.admin_token
        other.serve_args, other.env = list(self.serve_args), dict(self.env)
        data_dir.mkdir(parents=True)
        shutil.copy(self.data_dir / "master.key", data_dir / "master.key")
        return other

    def start(self) -> None:
        assert self.process is None, "already running"
        # Code mode runs on QuickJS unless a test picks workerd (`--codemode-engine workerd`):
        # a pool of workerd processes for every test's Portico would cost time and memory for
        # nothing.
        env = dict(
            os.environ,
            PORTICO_ADMIN_TOKEN=self.admin_token,
            RUST_LOG="warn",
            PORTICO_CODEMODE_ENGINE="quickjs",
            **self.env,
        )
        self.stdout = []
        stderr = open(self.stderr_path, "a")
        self.process = subprocess.Popen(
            self._global_args()
            + ["serve", "--listen", f"127.0.0.1:{self.port}", "--account-id", self.account_id]
            + self.serve_args,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
        stderr.close()
        reader = threading.Thread(target=self._read_stdout, args=(self.process,), daemon=True)
        reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"portico exited with {self.process.returncode} at start:\n{self.log_tail()}"
                )
            if self._healthy():
                return
            time.sleep(0.05)
        raise RuntimeError(f"portico did not become ready in {START_TIMEOUT} s:\n{self.log_tail()}")

    def _read_stdout(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.stdout.append(line.rstrip("\n"))

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def stop(self) -> int:
        """SIGTERM, then wait: returns the exit status."""
        assert self.process is not None, "not running"
        # Close the clients' idle keep-alive connections first: the server's graceful shutdown
        # waits for open connections until their keep-alive expires.
        for client in self.clients:
            client.close()
        self.clients = []
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            # Where it is stuck, for the report: every thread's stack, when gdb is there.
            stacks = _thread_stacks(process.pid)
            process.kill()
            process.wait()
            raise RuntimeError(
                f"portico did not stop within {STOP_TIMEOUT} s of SIGTERM\n"
                f"{stacks}\n{self.log_tail()}"
            ) from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def create_token(self, name: str, scope: str) -> str:
        """`portico token create`; returns the secret it prints once."""
        out = subprocess.run(
            self._global_args() + ["token", "create", "--name", name, "--scope", scope],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, RUST_LOG="warn"),
        ).stdout
        prefix = "Token (shown only now): "
        for line in out.splitlines():
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise RuntimeError(f"`portico token create` printed no token:\n{out}")

    def client(self, token: str | None = None) -> cloudflare.Cloudflare:
        # Only the base URL differs from talking to Cloudflare: the SDK keeps its defaults
        # (retries included).
        client = cloudflare.Cloudflare(api_token=token or self.admin_token, base_url=self.base_url)
        self.clients.append(client)
        return client

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            text = ""
        return "\n".join(self.stdout[-lines:] + text.splitlines()[-lines:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip no `PORTICO_SKIP_*` variable asked for, or an xfail, is a failure."""
    return _fail_unexpected((yield))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at collection."""
    return _fail_unexpected((yield))


def _fail_unexpected(report):
    why = skips.unexpected(report)
    if why is not None:
        report.outcome = "failed"
        report.longrepr = why
        if hasattr(report, "wasxfail"):
            del report.wasxfail
    return report


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "serve_args(*args): extra arguments of the test's `portico serve` (MCP tests)"
    )


@pytest.fixture(scope="session")
def postgres():
    url = os.environ.get("PORTICO_TEST_POSTGRES_URL")
    if not url:
        yield None
        return
    pg = Postgres(url)
    yield pg
    pg.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, postgres) -> str | None:
    """The database URL of one test's Portico: `None` for SQLite in the data directory."""
    if request.param == "sqlite":
        return None
    return postgres_database(postgres)


def postgres_database(postgres: Postgres | None) -> str:
    """A fresh database on the test PostgreSQL; the test is skipped if PORTICO_SKIP_POSTGRES=1
    and fails if there is no PostgreSQL."""
    if postgres is None:
        skips.skip_or_fail(
            "PORTICO_SKIP_POSTGRES",
            "PORTICO_TEST_POSTGRES_URL is not set: run scripts/test, which starts PostgreSQL",
        )
    if skips.skipping("PORTICO_SKIP_POSTGRES"):
        pytest.skip("PORTICO_SKIP_POSTGRES=1: the PostgreSQL half is skipped")
    return postgres.create_database()


@pytest.fixture
def portico(backend, tmp_path_factory):
    """A running Portico with fresh storage; stopped (and checked to exit 0) after the test."""
    data_dir = tmp_path_factory.mktemp("portico") / "data"
    server = Portico(data_dir, backend)
    server.start()
    yield server
    try:
        if server.process is not None:
            code = server.stop()
            assert code == 0, f"portico exited with {code}:\n{server.log_tail()}"
    finally:
        server.kill()


@pytest.fixture
def client(portico) -> cloudflare.Cloudflare:
    return portico.client()


@pytest.fixture
def account_id(portico) -> str:
    return portico.account_id


@pytest.fixture
def servers(client):
    return client.zero_trust.access.ai_controls.mcp.servers


@pytest.fixture
def portals(client):
    return client.zero_trust.access.ai_controls.mcp.portals


SYNC_FIELDS = {"status", "error", "error_details", "last_synced", "last_successful_sync"}


def without_sync(value):
    """`value` (an API object as a dict) without the fields a background sync changes: creating
    or updating a server starts one, and it may land between two reads."""
    if isinstance(value, dict):
        return {k: without_sync(v) for k, v in value.items() if k not in SYNC_FIELDS}
    if isinstance(value, list):
        return [without_sync(v) for v in value]
    return value
