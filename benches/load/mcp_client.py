#!/usr/bin/env python3
"""A minimal MCP streamable-HTTP client for the load harness (standard library only).

    mcp_client.py sessions URL COUNT [--header 'Name: value' ...]
        Opens COUNT sessions (initialize + notifications/initialized) and prints each
        Mcp-Session-Id on a line of its own (an empty line for a stateless server).
    mcp_client.py list URL SESSION ITERATIONS [--header ...]
        Walks every page of tools/list ITERATIONS times on one keep-alive connection and prints
        the tool count, pages per walk, and p50/p99 of one whole walk and of one page, in ms.
    mcp_client.py calls URL SESSIONS SECONDS TOOL ARGUMENTS_JSON [--header ...]
        Opens SESSIONS sessions, each on its own connection and thread, as the official SDKs
        do (initialize, notifications/initialized, then requests with Mcp-Session-Id and
        MCP-Protocol-Version), and repeats `tools/call` of TOOL on each for SECONDS; prints one
        JSON line: calls, errors (JSON-RPC errors and results with isError), req_s, p50_ms,
        p99_ms, and cpu_ms_per_call (this process's CPU time while calling / calls).
The URL keeps its query string (`...?codemode=search_and_execute`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse

VERSION = "2025-11-25"
ACCEPT = "application/json, text/event-stream"


class Client:
    def __init__(self, url: str, headers: list[str]) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        self.extra = dict(h.split(": ", 1) for h in headers)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def post(self, body: dict, session: str | None) -> tuple[dict | None, str | None]:
        headers = {"Content-Type": "application/json", "Accept": ACCEPT, **self.extra}
        if body.get("method") != "initialize":
            headers["MCP-Protocol-Version"] = VERSION
        if session:
            headers["Mcp-Session-Id"] = session
        self.conn.request("POST", self.path, json.dumps(body), headers)
        answer = self.conn.getresponse()
        raw = answer.read().decode()
        if answer.status >= 300:
            raise RuntimeError(f"{body.get('method')}: HTTP {answer.status}: {raw[:300]}")
        message = None
        if answer.getheader("Content-Type", "").startswith("text/event-stream"):
            for line in raw.splitlines():
                if line.startswith("data:") and line[5:].strip():
                    candidate = json.loads(line[5:])
                    if "id" in candidate:
                        message = candidate
        elif raw.strip():
            message = json.loads(raw)
        if message is not None and "error" in message:
            raise RuntimeError(f"{body.get('method')}: {message['error']}")
        return message, answer.getheader("Mcp-Session-Id")

    def open_session(self) -> str:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": VERSION,
                "capabilities": {},
                "clientInfo": {"name": "portico-load", "version": "0"},
            },
        }
        _, session = self.post(init, None)
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
        return session or ""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def calls(url: str, headers: list[str], sessions: int, seconds: float, tool: str, arguments: dict) -> None:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    # A session that fails to open breaks the barrier instead of hanging the others.
    ready = threading.Barrier(sessions + 1, timeout=60)
    deadline = [0.0]

    def run() -> None:
        client = Client(url, headers)
        session = client.open_session() or None
        mine, failed, i = [], 0, 0
        ready.wait()
        while time.monotonic() < deadline[0]:
            i += 1
            body = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments}}  # fmt: skip
            started = time.perf_counter()
            try:
                message, _ = client.post(body, session)
                ok = message is not None and "result" in message and not message["result"].get("isError")
            except RuntimeError:
                ok = False
            mine.append((time.perf_counter() - started) * 1000)
            failed += not ok
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=run) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + seconds
    ready.wait()
    cpu_started = time.process_time()
    for thread in threads:
        thread.join()
    cpu = time.process_time() - cpu_started
    print(json.dumps({
        "calls": len(latencies), "errors": errors[0], "req_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50), 3), "p99_ms": round(percentile(latencies, 99), 3),
        "cpu_ms_per_call": round(cpu * 1000 / max(len(latencies), 1), 4),
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["sessions", "list", "calls"])
    parser.add_argument("url")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--header", action="append", default=[])
    options = parser.parse_args()
    if options.command == "calls":
        sessions, seconds, tool, arguments = options.args
        calls(options.url, options.header, int(sessions), float(seconds), tool, json.loads(arguments))
        return
    client = Client(options.url, options.header)
    if options.command == "sessions":
        for _ in range(int(options.args[0])):
            print(client.open_session(), flush=True)
        return
    session, iterations = options.args[0] or None, int(options.args[1])
    walks, pages_ms, tools = [], [], 0
    for i in range(iterations):
        cursor, count, pages, started = None, 0, 0, time.perf_counter()
        while True:
            params = {"cursor": cursor} if cursor else {}
            page_started = time.perf_counter()
            message, _ = client.post(
                {"jsonrpc": "2.0", "id": i, "method": "tools/list", "params": params}, session
            )
            pages_ms.append((time.perf_counter() - page_started) * 1000)
            result = message["result"]
            count += len(result["tools"])
            pages += 1
            cursor = result.get("nextCursor")
            if not cursor:
                break
        walks.append((time.perf_counter() - started) * 1000)
        tools = count
    print(
        f"tools={tools} pages={pages} walk_p50_ms={percentile(walks, 50):.2f} "
        f"walk_p99_ms={percentile(walks, 99):.2f} page_p50_ms={percentile(pages_ms, 50):.2f} "
        f"page_p99_ms={percentile(pages_ms, 99):.2f}"
    )


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError) as error:
        sys.exit(f"mcp_client.py: {error}")
