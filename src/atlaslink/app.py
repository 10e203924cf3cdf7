"""The ASGI application: API under /api/v1, pages, static files, health checks."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atlaslink import __version__
from atlaslink.audit.service import ReadLedger, flush_reads, read_ledger, request_id_var
from atlaslink.config import get_settings
from atlaslink.db import get_engine
from atlaslink.web import problems
from atlaslink.web.deps import LoginRequired

log = logging.getLogger("atlaslink")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class BodyLimit:
    """Refuse request bodies above the configured size, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "type": "about:blank",
                "title": "Request too large",
                "status": 413,
                "detail": f"The request body exceeds {self.limit} bytes.",
            },
            status_code=413,
            media_type=problems.PROBLEM_JSON,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def _finish(db: Session, ledger: ReadLedger, commit: bool) -> None:
    try:
        if commit:
            flush_reads(db, ledger)
            db.commit()
        else:
            db.rollback()
    finally:
        db.close()


def create_app(
    engine: Engine | None = None,
    session_factory: sessionmaker[Session] | None = None,
    *,
    run_jobs: bool | None = None,
) -> FastAPI:
    settings = get_settings()
    # The server started by `atlaslink serve` (no engine given) runs the background job of
    # deadlines, escalations and e-mail unless told not to; tests and embedders opt in.
    jobs = settings.run_jobs_in_server if run_jobs is None and engine is None else bool(run_jobs)
    engine = engine or get_engine()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from atlaslink.operations.live import Broadcaster

        # Live updates: one broadcaster per process (it connects at its first subscriber).
        app.state.live = Broadcaster(app.state.engine, poll_seconds=settings.live_poll_seconds)
        await app.state.live.start()
        task = None
        if jobs:
            from atlaslink.operations import tasks

            maker = app.state.sessionmaker

            @contextmanager
            def uow() -> Iterator[Session]:
                with maker() as s, s.begin():
                    yield s

            task = asyncio.create_task(tasks.run_forever(uow, settings.tick_seconds))
        yield
        if task is not None:
            task.cancel()
        await app.state.live.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="atlaslink",
        version=__version__,
        description="Coordination platform of the ATLAS network of special intervention units.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.sessionmaker = session_factory or sessionmaker(bind=engine, expire_on_commit=False)
    problems.install(app)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        target = exc.target
        if target == "/login" and request.method == "GET":
            target += "?next=" + request.url.path
        return RedirectResponse(target, status_code=303)

    @app.middleware("http")
    async def unit_of_work(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get("x-request-id", "")
        rid = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        rid_token = request_id_var.set(rid)
        try:
            with read_ledger() as ledger:
                request.state.ledger = ledger
                request.state.commit_on_error = False
                try:
                    response = await call_next(request)
                except Exception:
                    db = getattr(request.state, "db", None)
                    if db is not None:
                        await run_in_threadpool(_finish, db, ledger, False)
                        request.state.db = None
                    log.exception("unhandled error in request %s", rid)
                    response = problems.problem(
                        request,
                        500,
                        "Internal error",
                        f"Something went wrong on our side. Quote request id {rid}.",
                    )
                db = getattr(request.state, "db", None)
                if db is not None:
                    commit = response.status_code < 400 or request.state.commit_on_error
                    try:
                        await run_in_threadpool(_finish, db, ledger, commit)
                    except Exception:
                        log.exception("commit failed in request %s", rid)
                        response = problems.problem(
                            request,
                            409,
                            "Conflict",
                            "Your change collided with another one and was not saved. Try again.",
                        )
            response.headers["X-Request-ID"] = rid
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
            )
            return response
        finally:
            request_id_var.reset(rid_token)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"], summary="Readiness: the database answers")
    def readyz() -> Response:
        try:
            with app.state.sessionmaker() as db:
                db.execute(text("SELECT seq FROM audit_head"))
                db.rollback()
        except Exception:
            log.exception("readiness check failed")
            return JSONResponse(
                {"status": "unavailable", "detail": "The database does not answer."},
                status_code=503,
            )
        return JSONResponse({"status": "ready"})

    from atlaslink.api import router as api_router
    from atlaslink.web.pages import router as page_router

    app.include_router(api_router, prefix="/api/v1")
    app.include_router(page_router)
    app.mount(
        "/static", StaticFiles(directory=str(files("atlaslink") / "web" / "static")), name="static"
    )
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    return app
