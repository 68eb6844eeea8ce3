"""`portico serve --demo`: one command gives a new user a working portal."""

from __future__ import annotations

import re
import subprocess
import time

import anyio

from conftest import _binary, free_port
from mcp_peers import mcp_client

START_TIMEOUT = 30.0


def _serve_demo(data_dir, port):
    process = subprocess.Popen(
        [_binary(), "--data-dir", str(data_dir), "serve", "--listen", f"127.0.0.1:{port}", "--demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + START_TIMEOUT
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "--method tools/list" in line:
            break
    text = "".join(lines)
    url = re.search(r"Demo portal ready: (\S+)", text)
    client_id = re.search(r"CF-Access-Client-Id: (\S+)", text)
    secret = re.search(r"CF-Access-Client-Secret: (\S+)", text)
    assert url and client_id and secret, text
    return process, url.group(1), {"CF-Access-Client-Id": client_id.group(1), "CF-Access-Client-Secret": secret.group(1)}


def _stop(process):
    process.terminate()
    process.wait(timeout=30)


def test_the_demo_portal_works_and_survives_a_restart(tmp_path):
    port = free_port()
    process, url, headers = _serve_demo(tmp_path / "data", port)
    try:

        async def check():
            async with mcp_client(url, headers) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert {"demo_echo", "demo_add", "demo_now", "demo_word_count", "demo_roll_dice"} <= names
                result = await client.call_tool("demo_add", {"a": 2, "b": 40})
                assert result.structured_content == {"sum": 42}

        anyio.run(check)
    finally:
        _stop(process)

    # A second start keeps the data, rotates the demo token's secret (printed again), and works.
    process, url_again, headers_again = _serve_demo(tmp_path / "data", port)
    try:
        assert url_again == url
        assert headers_again["CF-Access-Client-Id"] == headers["CF-Access-Client-Id"]
        assert headers_again["CF-Access-Client-Secret"] != headers["CF-Access-Client-Secret"]

        async def check_again():
            async with mcp_client(url, headers_again) as client:
                result = await client.call_tool("demo_echo", {"message": "again"})
                assert result.content[0].text == "again"

        anyio.run(check_again)
    finally:
        _stop(process)
