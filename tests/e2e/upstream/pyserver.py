"""A real upstream MCP server for the end-to-end suite, written with the official MCP Python SDK.

Streamable HTTP at `http://127.0.0.1:<port>/mcp`, the port from the first argument or `PORT`:

    python tests/e2e/upstream/pyserver.py 8123

Tools: `echo(text)`, `add(a, b)` (with an output schema, so its results carry
structuredContent), `fail(message)` (a result with isError true), `large(size)` (a text of
exactly `size` bytes), `sleep(seconds)`, `progress(steps)` (progress notifications before the
result), `whoami()` (the `Authorization` and `X-Api-Key` headers it was called with),
`delete_note(id)` (annotated destructiveHint true) and `crash()` (kills this process
mid-call and carries no annotations, so MCP's defaults make it destructive). `echo`, `add`,
`fail`, `large`, `sleep` and `progress` are annotated readOnlyHint true, destructiveHint false.
A prompt `greet(name)`, a static resource `py://notes/1` and a template `py://notes/{id}`.
"""

from __future__ import annotations

import json
import os
import sys

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)

NOTES = {"1": "The first note.", "2": "The second note.", "3": "The third note."}

server = MCPServer(name="portico-test-pyserver", version="1.0.0", log_level="WARNING")


@server.tool(description="Returns the text it is given", annotations=READ_ONLY)
def echo(text: str) -> str:
    return text


class Sum(BaseModel):
    sum: int


@server.tool(description="Adds two integers", annotations=READ_ONLY)
def add(a: int, b: int) -> Sum:
    return Sum(sum=a + b)


@server.tool(description="Always fails: a result with isError true", annotations=READ_ONLY)
def fail(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


@server.tool(description="Returns a text of exactly `size` bytes", annotations=READ_ONLY)
def large(size: int) -> str:
    return ("0123456789abcdef" * (size // 16 + 1))[:size]


@server.tool(description="Sleeps, then answers", annotations=READ_ONLY)
async def sleep(seconds: float) -> str:
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool(description="Sends `steps` progress notifications, then answers", annotations=READ_ONLY)
async def progress(steps: int, ctx: Context) -> str:
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step} of {steps}")
        await anyio.sleep(0.01)
    return f"done {steps}"


@server.tool(
    description="Deletes a note",
    annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True),
)
def delete_note(id: str) -> str:
    return "deleted" if NOTES.pop(id, None) is not None else "no such note"


@server.tool(description="The credentials this request arrived with (for the credential tests)", annotations=READ_ONLY)
def whoami(ctx: Context) -> str:
    request = ctx.request_context.request
    headers = getattr(request, "headers", None) or {}
    return json.dumps({"authorization": headers.get("authorization"), "x-api-key": headers.get("x-api-key")})


@server.tool(description="Kills the server process in the middle of the call")
def crash() -> str:
    sys.stderr.write("pyserver: crash() called, exiting\n")
    sys.stderr.flush()
    os._exit(17)


@server.prompt(description="Greets someone")
def greet(name: str) -> str:
    return f"Say hello to {name}."


@server.resource("py://notes/1", name="first-note", mime_type="text/plain")
def first_note() -> str:
    return NOTES.get("1", "")


@server.resource("py://notes/{id}", name="note", mime_type="text/plain")
def note(id: str) -> str:
    return NOTES.get(id, f"no note {id}")


def main() -> None:
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])
    server.run("streamable-http", host="127.0.0.1", port=port, streamable_http_path="/mcp")


if __name__ == "__main__":
    main()
