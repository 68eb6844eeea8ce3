"""A real browser for the end-to-end suite: Debian's Chromium, driven by Playwright.

`scripts/test` installs Debian's `chromium` and sets `PORTICO_CHROMIUM` to it; Playwright comes
from PyPI (tests/e2e/requirements.txt, whose wheel carries Playwright's driver) and launches that
binary: no browser is downloaded. The tests that need it fail without `PORTICO_CHROMIUM` unless
PORTICO_SKIP_PEERS=1 (`skips.py`).

  - `chromium`: the fixture giving the browser binary;
  - `browser(chromium, ...)`: a fresh browser context (no cookies), JavaScript on or off;
  - `sign_in(page, portico, email)`: fills the sign-in page and then the PIN page with the
    one-time PIN Portico wrote to its log (no SMTP server configured);
  - `Callback`: a real HTTP listener on 127.0.0.1, the redirect URI of an OAuth client the test
    plays, which records every request the browser is sent to.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

import skips

PIN_TIMEOUT = 10.0


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary `scripts/test` installed (Debian's `chromium`)."""
    path = os.environ.get("PORTICO_CHROMIUM") or None
    if path is None:
        skips.skip_or_fail(
            "PORTICO_SKIP_PEERS",
            "no browser (PORTICO_CHROMIUM not set): run scripts/test, which installs Debian's "
            "`chromium` and sets it",
        )
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"PORTICO_CHROMIUM `{path}` is not an executable file")
    return path


@asynccontextmanager
async def browser(
    chromium: str, *, java_script: bool = True, hosts: dict[str, str] | None = None
) -> AsyncIterator[BrowserContext]:
    """A headless Chromium and one fresh context of it. `hosts` maps host names to addresses
    (a portal's own hostname to 127.0.0.1, say)."""
    args = []
    if hosts:
        rules = ", ".join(f"MAP {name} {address}" for name, address in hosts.items())
        args.append(f"--host-resolver-rules={rules}")
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            context = await instance.new_context(java_script_enabled=java_script)
            context.set_default_timeout(30_000)
            yield context
        finally:
            await instance.close()


def pins(portico, email: str) -> list[str]:
    """The one-time PINs Portico wrote to its log for `email`, oldest first."""
    log = portico.stderr_path.read_text(errors="replace")
    return re.findall(rf"to={re.escape(email)}.*?code=(\d{{6}})", log)


async def pin_after(portico, email: str, seen: int) -> str:
    """The PIN for `email` written after the first `seen` ones."""
    deadline = time.monotonic() + PIN_TIMEOUT
    while time.monotonic() < deadline:
        found = pins(portico, email)
        if len(found) > seen:
            return found[-1]
        await anyio.sleep(0.05)
    raise AssertionError(f"no PIN for {email} in Portico's log:\n{portico.log_tail()}")


async def sign_in(page: Page, portico, email: str) -> None:
    """On the sign-in page: asks for a PIN, reads it from Portico's log and enters it, as a
    person would. Returns once the PIN form is submitted and the next page has loaded."""
    await page.get_by_role("heading", name=re.compile("^Sign in to ")).wait_for()
    seen = len(pins(portico, email))
    await page.get_by_label("Email").fill(email)
    await page.get_by_role("button", name="Send code").click()
    await page.get_by_role("heading", name="Check your email").wait_for()
    assert email in await page.locator("main").inner_text()
    await page.get_by_label("Code").fill(await pin_after(portico, email, seen))
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in").click()


class Callback:
    """A real HTTP listener standing for an OAuth client's redirect URI: it answers every GET
    with a small page and keeps the query of each request to `/callback`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.queries: list[dict[str, str]] = []
        received = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                # Not the browser's own requests (`/favicon.ico`).
                if url.path == "/callback":
                    received.append({k: v[0] for k, v in parse_qs(url.query).items()})
                body = b"<!doctype html><title>Client</title><h1>Back at the client</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.server = Server((host, 0), Handler)
        self.host = f"[{host}]" if ":" in host else host
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}/callback"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
