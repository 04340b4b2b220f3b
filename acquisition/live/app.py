"""The live page's web application (Starlette): the page, its static files, the page content
as JSON (`/api/view`) and as server-sent events once a period (`/api/events`)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cryodaq.acquisition.live.hub import LiveHub, Selection
from cryodaq.acquisition.live.watcher import UnknownChannel
from cryodaq.acquisition.pipelines.look import LOOK_CSS

STATIC = Path(__file__).resolve().parent / "static"
#: How often an event stream checks for new content (s).
POLL_S = 0.1
_subscribers = itertools.count()


def selection(request: Request) -> Selection:
    """The page's selection from the query: `channel` (pulses, and the spectrum of one channel)
    and `spectrum` (`sum`, the default, or `channel`)."""
    try:
        channel: int | None = int(request.query_params.get("channel", ""))
    except ValueError:  # none, or not a whole number (`--5`, `²` pass isdigit, not int)
        channel = None
    return channel, request.query_params.get("spectrum", "sum") != "channel"


def create_app(hub: LiveHub) -> Starlette:
    """The application serving `hub`'s run."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def look(request: Request) -> Response:
        return FileResponse(LOOK_CSS, headers={"Cache-Control": "no-cache"})

    async def view(request: Request) -> Response:
        try:
            payload = await asyncio.to_thread(hub.now, selection(request))
        except UnknownChannel as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return Response(payload, media_type="application/json")

    async def events(request: Request) -> Response:
        chosen, subscriber = selection(request), next(_subscribers)
        try:
            hub.watcher.check_channel(chosen[0])
        except UnknownChannel as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

        async def stream() -> AsyncIterator[str]:
            hub.subscribe(chosen, subscriber)
            try:
                yield "retry: 2000\n\n"
                seen = -1
                while True:
                    version, payload = hub.latest(chosen, subscriber)
                    if payload is None and hub.final:
                        await asyncio.to_thread(hub.ended_view, chosen)
                        continue
                    if payload is not None and version != seen:
                        seen = version
                        yield f"data: {payload}\n\n"
                    if hub.final and seen == hub.version:
                        yield "event: end\ndata: {}\n\n"
                        return
                    await asyncio.sleep(POLL_S)
            finally:
                hub.unsubscribe(chosen, subscriber)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/view", view),
            Route("/api/events", events),
            # the look shared with the run report (`cryodaq.acquisition.pipelines.look`)
            Route(f"/static/{LOOK_CSS.name}", look),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
