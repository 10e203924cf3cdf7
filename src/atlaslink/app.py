"""The ASGI application: API under /api/v1, pages, static files, health checks."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from importlib.resources import files
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atlaslink import __version__
from atlaslink.audit.service import (
    ReadLedger,
    commit_with_reads,
    read_ledger,
    request_id_var,
)
from atlaslink.config import get_settings
from atlaslink.db import get_engine, is_concurrency_failure
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


_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; "
        b"script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    ),
)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            return incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    return uuid.uuid4().hex


def _headers(headers: list[tuple[bytes, bytes]], rid: str) -> list[tuple[bytes, bytes]]:
    """The response's headers with the request id and, unless set already, the security
    headers."""
    out = [(k, v) for k, v in headers if k.lower() != b"x-request-id"]
    present = {k.lower() for k, _ in out}
    out.append((b"x-request-id", rid.encode("latin-1")))
    out.extend((k, v) for k, v in _SECURITY_HEADERS if k not in present)
    return out


class UnitOfWork:
    """One transaction per request (a pure ASGI middleware: no extra task, no buffering).

    Every request gets a request id (``X-Request-ID`` if it is acceptable, else a new one), a
    read ledger, and on its response the request id and the security headers. The database
    session, created lazily by ``web.deps.get_db``, is committed (after the ledger's read event
    is appended) or rolled back (status >= 400, unless ``request.state.commit_on_error``) when
    the response starts, before that message is passed on: a failed commit can still become a
    409, and a streamed response never holds the transaction open. An unhandled exception
    rolls back and becomes a 500 problem naming the request id, never a trace.
    """

    def __init__(self, app: ASGIApp, wait_for_flush: bool = True) -> None:
        self.app = app
        self.wait_for_flush = wait_for_flush

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        rid_token = request_id_var.set(rid)
        state = scope.setdefault("state", {})
        try:
            with read_ledger() as ledger:
                ledger.wait_for_flush = self.wait_for_flush
                state["ledger"] = ledger
                state["commit_on_error"] = False
                await self._run(scope, receive, send, state, ledger, rid)
        finally:
            request_id_var.reset(rid_token)

    async def _run(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        state: dict[str, Any],
        ledger: ReadLedger,
        rid: str,
    ) -> None:
        started = False  # a response start has been sent
        replaced = False  # the app's response was replaced by a problem: drop the rest of it
        used: list[Session] = []

        async def end_transaction(commit: bool) -> None:
            db: Session | None = state.get("db")
            if db is not None:
                state["db"] = None
                used.append(db)
                await run_in_threadpool(_finish, db, ledger, commit)

        async def send_problem(status: int, title: str, detail: str) -> None:
            await problems.problem(Request(scope), status, title, detail)(scope, receive, send_on)

        async def send_on(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and not started:
                commit = message["status"] < 400 or bool(state.get("commit_on_error"))
                try:
                    await end_transaction(commit)
                except Exception:
                    log.exception("commit failed in request %s", rid)
                    await send_problem(409, "Conflict", _collision_detail(scope))
                    replaced = True
                    return
                started = True
                message = {**message, "headers": _headers(list(message.get("headers", [])), rid)}
            await send(message)

        try:
            await self.app(scope, receive, send_on)
        except _TooLarge:
            await end_transaction(False)
            raise  # BodyLimit answers it
        except Exception as exc:
            collided = is_concurrency_failure(exc)
            if collided:
                log.warning("request %s collided with another transaction: %s", rid, exc)
            else:
                log.exception("unhandled error in request %s", rid)
            try:
                await end_transaction(False)
            except Exception:
                log.exception("rollback failed in request %s", rid)
            if started:
                raise  # too late for another response: the server ends the connection
            if collided:
                await send_problem(409, "Conflict", _collision_detail(scope))
                return
            await send_problem(
                500,
                "Internal error",
                f"Something went wrong on our side. Quote request id {rid}.",
            )
        finally:
            # A session opened or used again after the response started (a streamed body)
            # is ended here, so its connection goes back to the pool.
            leftover: Session | None = state.get("db")
            if leftover is not None:
                state["db"] = None
                used.append(leftover)
            if ledger.sent is not None and ledger.sent.pending:
                # Sent ahead (audit.send_end), but the response never started: read the results,
                # even if this task is being cancelled (the pool's check-in is the backstop).
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(_wait_quietly, ledger, rid)
            for db in used:
                if db.in_transaction():
                    await run_in_threadpool(_rollback_and_close, db)


def _collision_detail(scope: Scope) -> str:
    """What a request that met another one at the same moment is told: nothing of it was kept
    (a read-only request's read record included, so nothing is shown either)."""
    if scope.get("method") in ("GET", "HEAD"):
        return (
            "This page could not be served: recording who read it did not complete (another "
            "request at the same moment, or the database). Nothing was shown. Try again."
        )
    return (
        "Your change was not saved: another one was made at the same moment, or the database "
        "could not complete it. Try again."
    )


def _rollback_and_close(db: Session) -> None:
    try:
        db.rollback()
    finally:
        db.close()


def _wait_quietly(ledger: ReadLedger, rid: str) -> None:
    assert ledger.sent is not None
    try:
        ledger.sent.wait()
    except Exception:
        log.exception("the end of request %s failed", rid)


def _finish(db: Session, ledger: ReadLedger, commit: bool) -> None:
    """End the request's transaction, its read event appended in it (``audit.commit_with_reads``:
    on PostgreSQL the append and the commit in one round trip; the read is durable before the
    response starts). An end sent ahead (``audit.send_end``) is waited for, whatever the
    status: the server has the COMMIT already (a read recorded and then not shown errs on the
    side of the record)."""
    try:
        if not commit and ledger.sent is None:
            db.rollback()
            return
        commit_with_reads(db, ledger)
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
    serving = engine is None
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

    app.add_middleware(UnitOfWork, wait_for_flush=settings.read_events_wait_for_flush)

    @app.get("/healthz", tags=["health"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"], summary="Readiness: the database answers")
    def readyz(request: Request) -> Response:
        try:
            with app.state.sessionmaker() as db:
                db.execute(text("SELECT seq FROM audit_head"))
                db.rollback()
        except Exception:
            log.exception("readiness check failed")
            return problems.problem(
                request, 503, "Service unavailable", "The database does not answer."
            )
        return JSONResponse({"status": "ready"})

    from atlaslink.api import router as api_router
    from atlaslink.web.pages import router as page_router

    app.include_router(api_router, prefix="/api/v1")
    app.include_router(page_router)
    # Interactive API docs on the platform's own OpenAPI document, served from the installed
    # swagger-ui-bundle package: no CDN, works offline. Public, as /openapi.json is.
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> Response:
        page = (files("atlaslink") / "web" / "templates" / "api_docs.html").read_text()
        return Response(page, media_type="text/html; charset=utf-8")

    @app.get("/api/docs/openapi.json", include_in_schema=False)
    def api_docs_schema() -> JSONResponse:
        # The Swagger UI that can be installed offline (4.x) reads OpenAPI 3.0 only; FastAPI
        # writes 3.1. The viewer gets the same document under a 3.0 label (it renders the few
        # 3.1 forms, such as a null type in anyOf, as they are); /openapi.json stays exact.
        return JSONResponse({**app.openapi(), "openapi": "3.0.3"})

    app.mount("/static/swagger", StaticFiles(directory=str(swagger_ui_path)), name="swagger")
    app.mount(
        "/static", StaticFiles(directory=str(files("atlaslink") / "web" / "static")), name="static"
    )
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    if serving:
        _settle_after_start_up()
    return app


def _settle_after_start_up() -> None:
    """Everything loaded so far lives as long as the process: collect once, then keep it out
    of later collections (``gc.freeze``). Full collections otherwise walk it all again and
    pause a request for tens of milliseconds (the p99 of listings, BENCHMARKS.md)."""
    gc.collect()
    gc.freeze()
