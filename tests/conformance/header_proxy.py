"""A pass-through HTTP proxy that adds Cloudflare Access service-token headers to every request.

The MCP conformance suite (`conformance server --url`) cannot send extra headers, and a portal
answers 401 without `CF-Access-Client-Id` / `CF-Access-Client-Secret`. This proxy sits between
the two: it forwards each request unchanged (method, path, query, body, and the client's own
`Host` and `Origin`, so the suite's DNS-rebinding scenario still reaches the portal as sent) to
the upstream origin, adds the two headers, and streams the answer back (SSE included).

    python header_proxy.py LISTEN_PORT UPSTREAM_ORIGIN   # client id and secret from the env:
    CF_ACCESS_CLIENT_ID=... CF_ACCESS_CLIENT_SECRET=... python header_proxy.py 9000 http://127.0.0.1:8080
"""

from __future__ import annotations

import os
import sys

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "content-length",
}


def app(upstream: str, added: dict[str, str]) -> Starlette:
    client = httpx2.AsyncClient(base_url=upstream, timeout=httpx2.Timeout(30.0, read=None))

    async def forward(request: Request) -> StreamingResponse:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        headers += list(added.items())
        outgoing = client.build_request(
            request.method,
            request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            headers=headers,
            content=await request.body(),
        )
        answer = await client.send(outgoing, stream=True)
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP},
            background=BackgroundTask(answer.aclose),
        )

    methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)])


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]
    added = {
        "CF-Access-Client-Id": os.environ["CF_ACCESS_CLIENT_ID"],
        "CF-Access-Client-Secret": os.environ["CF_ACCESS_CLIENT_SECRET"],
    }
    uvicorn.run(app(upstream, added), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
