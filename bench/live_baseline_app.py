"""The bare broadcast: the baseline of bench/bench_live_fanout.py.

    ATLASLINK_DATABASE_URL=postgresql://... uvicorn bench.live_baseline_app:app

The smallest server doing what live updates do on PostgreSQL: one LISTEN connection, and each
notification written to every open stream as it arrives. No authentication, no visibility
check, no per-stream database work, no middleware, no heartbeat or re-check. It is never part
of the product.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

CHANNEL = "atlaslink_bench_bare"
clients: set[asyncio.Queue[str]] = set()


async def listen() -> None:
    url = os.environ["ATLASLINK_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        async for n in conn.notifies():
            frame = f'event: bare\ndata: {{"request_id": 0, "event_id": {n.payload}}}\n\n'
            for q in list(clients):
                q.put_nowait(frame)


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    task = asyncio.create_task(listen())
    yield
    task.cancel()


async def sse(_request: Request) -> Response:
    q: asyncio.Queue[str] = asyncio.Queue()
    clients.add(q)

    async def body() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while True:
                yield await q.get()
        finally:
            clients.discard(q)

    return StreamingResponse(body(), media_type="text/event-stream")


async def ping(_request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/sse", sse), Route("/ping", ping)], lifespan=lifespan)
