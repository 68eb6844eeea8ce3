"""Real MCP peers for the end-to-end suite: upstream servers to put behind a portal, and clients.

Upstreams, each a real process on a free port, started per test and killed at teardown:
  - `everything_http`: `@modelcontextprotocol/server-everything` in `streamableHttp` mode (`/mcp`);
  - `everything_sse`: the same in `sse` mode (legacy HTTP+SSE: `GET /sse`, `POST /message`);
  - `pyserver`: `tests/e2e/upstream/pyserver.py`, on the official MCP Python SDK (`/mcp`).

Clients: `mcp_client(url, headers)`, the official MCP Python SDK's `Client` over streamable
HTTP with extra HTTP headers; `node_peers`, the paths of Node 22, the MCP Inspector, the
conformance suite and `mcp-remote`.

The Node peers come from `tests/peers`; `scripts/test` installs them and sets:
  PORTICO_TEST_SERVER_EVERYTHING  the `mcp-server-everything` bin
  PORTICO_NODE22                  a Node 22 binary (the one every Node peer runs on)
  PORTICO_MCP_INSPECTOR           the `mcp-inspector` bin script
  PORTICO_MCP_CONFORMANCE         the `conformance` bin script
  PORTICO_MCP_REMOTE              the `mcp-remote` bin script
The tests that need them fail when one is absent, unless PORTICO_SKIP_PEERS=1 (`skips.py`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

import skips

UPSTREAM_START_TIMEOUT = 30.0
PYSERVER = Path(__file__).parent / "upstream" / "pyserver.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """One upstream MCP server process listening on 127.0.0.1:`port`."""

    def __init__(self, name: str, argv: list[str], port: int, path: str, log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.path = path
        self.log_path = log_dir / f"{name}-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, PORT=str(self.port)),
            )
        deadline = time.monotonic() + UPSTREAM_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} at start:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not listen in {UPSTREAM_START_TIMEOUT} s:\n{self.log_tail()}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass(frozen=True)
class NodePeers:
    node22: str
    server_everything: str
    inspector: str
    conformance: str
    mcp_remote: str


_ENV = {
    "node22": "PORTICO_NODE22",
    "server_everything": "PORTICO_TEST_SERVER_EVERYTHING",
    "inspector": "PORTICO_MCP_INSPECTOR",
    "conformance": "PORTICO_MCP_CONFORMANCE",
    "mcp_remote": "PORTICO_MCP_REMOTE",
}


@pytest.fixture(scope="session")
def node_peers() -> NodePeers:
    """The Node peers `scripts/test` installed; the test fails without them unless
    PORTICO_SKIP_PEERS=1."""
    values = {key: os.environ.get(var) or None for key, var in _ENV.items()}
    missing = [_ENV[key] for key, path in values.items() if path is None]
    if missing:
        skips.skip_or_fail(
            "PORTICO_SKIP_PEERS",
            f"the Node MCP peers are not installed ({', '.join(missing)} not set): run "
            "scripts/test, which installs tests/peers and sets them",
        )
    for key, path in values.items():
        if not os.path.exists(path):
            raise RuntimeError(f"{_ENV[key]} `{path}` does not exist")
    return NodePeers(**values)


def _everything(node_peers: NodePeers, mode: str, path: str, log_dir: Path):
    argv = [node_peers.node22, node_peers.server_everything, mode]
    upstream = Upstream(f"server-everything-{mode}", argv, _free_port(), path, log_dir)
    upstream.start()
    return upstream


@pytest.fixture
def everything_http(node_peers, tmp_path_factory):
    """server-everything over streamable HTTP: `upstream.url` ends in `/mcp`."""
    upstream = _everything(node_peers, "streamableHttp", "/mcp", tmp_path_factory.mktemp("upstream"))
    yield upstream
    upstream.kill()


@pytest.fixture
def everything_sse(node_peers, tmp_path_factory):
    """server-everything over the legacy HTTP+SSE transport: `upstream.url` ends in `/sse`."""
    upstream = _everything(node_peers, "sse", "/sse", tmp_path_factory.mktemp("upstream"))
    yield upstream
    upstream.kill()


def start_pyserver(log_dir: Path, port: int | None = None) -> Upstream:
    upstream = Upstream(
        "pyserver", [sys.executable, str(PYSERVER), str(port or _free_port())], 0, "/mcp", log_dir
    )
    upstream.port = int(upstream.argv[-1])
    upstream.start()
    return upstream


@pytest.fixture
def pyserver(tmp_path_factory):
    """The Python SDK upstream: `upstream.url` ends in `/mcp`."""
    upstream = start_pyserver(tmp_path_factory.mktemp("upstream"))
    yield upstream
    upstream.kill()


@asynccontextmanager
async def mcp_client(
    url: str,
    headers: dict[str, str] | None = None,
    *,
    mode: str = "legacy",
    **client_options,
) -> AsyncIterator[Client]:
    """An MCP client session (official Python SDK) over streamable HTTP, sending `headers` on
    every request.

    `mode="legacy"` (the default here) is the initialize handshake of protocol 2025-11-25, with a
    session and server-to-client notifications; `mode="auto"` first tries the 2026-07-28
    stateless revision (`server/discover`) and falls back to it. The SDK's response cache is off,
    so every list reaches the server, and SSE events have no size limit (the SDK's default, 1 MiB,
    would refuse large tool results).
    """
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with httpx2.AsyncClient(headers=headers or {}, timeout=timeout) as http:
        transport = streamable_http_client(url, http_client=http, max_sse_event_size=None)
        async with Client(transport, mode=mode, cache=None, **client_options) as client:
            yield client
