"""The operator's command line: serve, demo, db, users, tokens, import, export, audit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth import service as auth
from atlaslink.auth.permissions import ROLE_LABELS, Role
from atlaslink.auth.principal import SYSTEM, Principal
from atlaslink.config import get_settings
from atlaslink.db import get_engine, unit_of_work
from atlaslink.demo.seed import DemoAccount
from atlaslink.errors import DomainError
from atlaslink.models import User

app = typer.Typer(
    help="atlaslink: coordination platform of the ATLAS network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for machine clients.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@contextmanager
def handled() -> Iterator[None]:
    """Readable messages for domain and database errors; never a stack trace."""
    try:
        yield
    except DomainError as exc:
        for e in exc.errors:
            err.print(f"  - {e}")
        raise fail(exc.detail) from None
    except OperationalError as exc:
        raise fail(f"cannot use the database: {exc.orig}") from None


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _upgrade() -> None:
    from atlaslink.migrate import upgrade

    upgrade(get_engine())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations (also done on first start)."""
    with handled():
        _upgrade()
    out.print("database is at the latest schema")


def _serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "atlaslink.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        proxy_headers=False,
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
) -> None:
    """Run the platform (applies migrations first)."""
    with handled():
        _upgrade()
    _serve(host, port, workers)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    fresh: Annotated[bool, typer.Option(help="Start from an empty embedded database.")] = True,
) -> None:
    """Run the platform with the fictional demo network and print log-ins."""
    from atlaslink.demo import seed

    settings = get_settings()
    url = settings.database_url
    if url.startswith("sqlite") and fresh:
        path = Path(url.split("///", 1)[-1])
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    with handled():
        _upgrade()
        with progress_bar() as bar, unit_of_work() as session:
            task = bar.add_task("loading demo network", total=1)
            seed.ensure_reference_data(session)
            seed.load_units(session, lambda i, n: bar.update(task, completed=i, total=n))
            accounts = _reset_demo_accounts(session)
    # Plain lines, never a table: credentials must not be truncated by a narrow terminal.
    out.print("[bold]Demo log-ins[/] (fictional data; add the TOTP secret to an authenticator app)")
    for a in accounts:
        out.print(f"  {a.username}  ({ROLE_LABELS[a.role]}, {a.where})", highlight=False)
        out.print(f"      password:    {a.password}", soft_wrap=True, highlight=False)
        out.print(f"      TOTP secret: {a.totp_secret}", soft_wrap=True, highlight=False)
    out.print(
        f"Open http://{host}:{port}/ and log in. Current TOTP code: `atlaslink totp-code SECRET`."
    )
    _serve(host, port, 1)


def _reset_demo_accounts(session: Session) -> list[DemoAccount]:
    from atlaslink.demo import seed

    existing = {u.username: u for u in session.scalars(select(User))}
    fresh = [name for name, _, _ in seed.DEMO_ACCOUNTS if name not in existing]
    accounts: list[DemoAccount] = []
    if len(fresh) == len(seed.DEMO_ACCOUNTS):
        return list(seed.create_demo_accounts(session))
    # A database that already has the demo accounts: give them new credentials to print.
    import secrets as _secrets

    import pyotp

    for name, role, where in seed.DEMO_ACCOUNTS:
        user = existing.get(name)
        if user is None:
            continue
        password = _secrets.token_urlsafe(12)
        user.password_hash = auth.hash_password(password)
        user.totp_secret = pyotp.random_base32()
        user.totp_enrolled = True
        user.totp_last_step = None
        user.locked_until = None
        user.failed_attempts = 0
        audit.append(session, SYSTEM, "user.demo_reset", "user", user.id)
        accounts.append(
            seed.DemoAccount(name, role, password, user.totp_secret, where or "network")
        )
    return accounts


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Run one pass and exit (for cron or a check).")
    ] = False,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between passes (ATLASLINK_TICK_SECONDS).")
    ] = None,
    now: Annotated[
        datetime | None,
        typer.Option(
            "--now",
            formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"],
            help="With --once: run the pass as if it were this UTC time (drills, tests of the "
            "deadlines); timeline entries carry that time, the audit log the real one.",
        ),
    ] = None,
) -> None:
    """Run the background job: acknowledgement deadlines, escalations, lapses, e-mail.

    `atlaslink serve` runs it too; a separate worker is for installations that set
    ATLASLINK_RUN_JOBS_IN_SERVER=false. Several may run at once safely.
    """
    import time

    from atlaslink.operations import tasks

    if now is not None and not once:
        raise fail("--now is for a single pass: add --once")
    at = now.replace(tzinfo=UTC) if now is not None and now.tzinfo is None else now
    with handled():
        _upgrade()
    pause = interval if interval is not None else get_settings().tick_seconds
    while True:
        with handled():
            done = tasks.tick(unit_of_work, now=at)
        out.print(
            f"escalated {done['escalated']} · lapsed {done['lapsed']} · "
            f"e-mails sent {done['emails']}"
        )
        if once:
            return
        time.sleep(pause)


@app.command("totp-code")
def totp_code(secret: str) -> None:
    """Print the current TOTP code for a secret (for testers without an authenticator app)."""
    import pyotp

    try:
        out.print(pyotp.TOTP(secret.strip().replace(" ", "")).now())
    except Exception:
        raise fail("that is not a base32 TOTP secret") from None


# --- users ------------------------------------------------------------------------------------


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[Role, typer.Option(help="The user's role.")],
    display_name: Annotated[str, typer.Option(help="Full name.")] = "",
    email: Annotated[str, typer.Option()] = "",
    unit: Annotated[
        str | None, typer.Option(help="Unit code, for commanders and duty officers.")
    ] = None,
    country: Annotated[
        str | None, typer.Option(help="ISO code, for national contact points.")
    ] = None,
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="ATLASLINK_NEW_PASSWORD"
        ),
    ] = "",
) -> None:
    """Create an account. The user enrols a TOTP authenticator at first log-in."""
    with handled(), unit_of_work() as session:
        user = auth.create_user(
            session,
            SYSTEM,
            username=username,
            display_name=display_name,
            role=role,
            password=password,
            email=email,
            unit_code=unit,
            country=country,
        )
        name = user.username
    out.print(f"created user [bold]{name}[/] ({ROLE_LABELS[role]})")


@users_app.command("list")
def users_list(
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """List accounts, a page at a time."""
    with handled(), unit_of_work() as session:
        users, total = auth.list_users(session, offset=(page - 1) * per_page, limit=per_page)
        table = Table(title=f"users (page {page}, {total} in all)")
        for col in ("username", "role", "unit/country", "TOTP", "status"):
            table.add_column(col)
        for u in users:
            table.add_row(
                u.username,
                u.role,
                str(u.unit_id or u.country_iso2 or "-"),
                "enrolled" if u.totp_enrolled else "not enrolled",
                "disabled" if u.disabled else "active",
            )
    out.print(table)


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable an account and end its sessions."""
    with handled(), unit_of_work() as session:
        auth.set_disabled(session, SYSTEM, username, True)
    out.print(f"disabled {username}")


@tokens_app.command("create")
def tokens_create(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for.")],
    expires_days: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Issue an API token for a user (printed once)."""
    with handled(), unit_of_work() as session:
        user = session.scalar(select(User).where(User.username == username.lower()))
        if user is None or user.disabled:
            raise fail(f"there is no active user '{username}'")
        issued = auth.create_token(session, user, name, expires_days=expires_days)
    out.print(issued.token)


# --- import / export --------------------------------------------------------------------------


def _acting(session: Session, username: str) -> Principal:
    user = session.scalar(select(User).where(User.username == username.lower()))
    if user is None or user.disabled:
        raise fail(f"there is no active user '{username}'")
    return auth.principal_of(user)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    as_user: Annotated[str, typer.Option("--as", help="Import as this user (permissions apply).")],
    dry_run: Annotated[bool, typer.Option(help="Validate only.")] = False,
) -> None:
    """Import capability rows from XLSX or CSV: all rows or none."""
    from atlaslink.registry import spreadsheets

    with handled(), unit_of_work() as session, progress_bar() as bar:
        actor = _acting(session, as_user)
        task = bar.add_task("applying rows", total=None)
        report = spreadsheets.import_registry(
            session,
            actor,
            path.name,
            path.read_bytes(),
            dry_run=dry_run,
            progress=lambda i, n: bar.update(task, completed=i, total=n),
        )
        if report.errors:
            for e in report.errors[:200]:
                err.print(f"row {e.row}, column {e.column} ({e.value!r}): {e.message}")
            session.rollback()
            raise fail(f"{len(report.errors)} problem(s) in {path.name}; nothing was applied", 2)
    verb = "would apply" if dry_run else "applied"
    out.print(
        f"{verb} {report.rows} rows: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged"
    )


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="Output .xlsx or .csv file.")],
    as_user: Annotated[str, typer.Option("--as", help="Export what this user may see.")],
    table: Annotated[str, typer.Option(help="For CSV: capabilities or units.")] = "capabilities",
) -> None:
    """Export the registry as the given user may see it."""
    from atlaslink.registry import spreadsheets
    from atlaslink.registry.repository import UnitFilters

    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise fail("the output file must end in .xlsx or .csv")
    if table not in ("capabilities", "units"):
        raise fail("--table is capabilities or units")
    with handled(), audit.read_ledger() as ledger, unit_of_work() as session:
        actor = _acting(session, as_user)
        ledger.actor = actor
        with err.status("exporting"):
            if suffix == ".xlsx":
                body = spreadsheets.export_xlsx(session, actor, UnitFilters())
            else:
                body = spreadsheets.export_csv(session, actor, UnitFilters(), table)
        audit.flush_reads(session, ledger, action="export")
    path.write_bytes(body)
    out.print(f"wrote {path} ({len(body)} bytes)")


# --- audit ------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit chain. Exits 0 when intact, 1 naming the first bad entry."""
    with handled(), unit_of_work() as session, progress_bar() as bar:
        from sqlalchemy import func

        from atlaslink.models import AuditEvent

        total = session.scalar(select(func.count(AuditEvent.id))) or 0
        task = bar.add_task("verifying audit chain", total=total)
        result = audit.verify(session, progress=lambda n: bar.update(task, completed=n))
    if result.ok:
        out.print(f"audit chain intact: {result.checked} entries")
        return
    err.print(
        f"[bold red]audit chain broken[/] at entry {result.first_bad_seq}: {result.reason} "
        f"({result.checked} entries verified before it)"
    )
    raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
