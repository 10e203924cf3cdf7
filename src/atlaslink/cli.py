"""The operator's command line: serve, demo, db, users, tokens, import, export, audit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
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
from atlaslink.db import get_engine, is_concurrency_failure, unit_of_work
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
rules_app = typer.Typer(
    help="Country rules (approval steps, bans, legal bases).", no_args_is_help=True
)
agreements_app = typer.Typer(help="Bilateral agreements between countries.", no_args_is_help=True)
requests_app = typer.Typer(
    help="Assistance requests, as a user may see them.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(rules_app, name="rules")
app.add_typer(agreements_app, name="agreements")
app.add_typer(requests_app, name="requests")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")
messages_app = typer.Typer(
    help="Standard messages (EDXL-RM, EDXL-DE, CAP): import and check.", no_args_is_help=True
)
partners_app = typer.Typer(
    help="Partners that exchange standard messages, their endpoints.", no_args_is_help=True
)
outbox_app = typer.Typer(help="Outbound messages and their delivery.", no_args_is_help=True)
app.add_typer(messages_app, name="messages")
app.add_typer(partners_app, name="partners")
app.add_typer(outbox_app, name="outbox")

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
            field, message = e.get("field"), e.get("message", e)
            err.print(f"  - {field}: {message}" if field else f"  - {message}", highlight=False)
        raise fail(exc.detail) from None
    except ValidationError as exc:
        for ve in exc.errors():
            where = ".".join(str(x) for x in ve["loc"])
            err.print(f"  - {where}: {ve['msg']}", highlight=False)
        raise fail("the input is not valid") from None
    except OperationalError as exc:
        if is_concurrency_failure(exc):
            raise fail(
                "another change was made at the same moment; nothing was saved. "
                "Run the command again."
            ) from None
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
    fresh: Annotated[
        bool | None,
        typer.Option(
            "--fresh/--keep",
            help="Start from an empty SQLite database. Default: fresh for the demo's own "
            "var/demo.db; an ATLASLINK_DATABASE_URL you set is never emptied unless you ask.",
        ),
    ] = None,
) -> None:
    """Run the platform with the fictional demo network and print log-ins.

    Without ATLASLINK_DATABASE_URL it uses a file of its own (var/demo.db), never the one
    `atlaslink serve` keeps its data in (var/atlaslink.db)."""
    from atlaslink.demo import seed

    chosen = bool(os.environ.get("ATLASLINK_DATABASE_URL"))
    if not chosen:
        os.environ["ATLASLINK_DATABASE_URL"] = f"sqlite:///{Path.cwd() / 'var' / 'demo.db'}"
        get_settings.cache_clear()
    if fresh is None:
        fresh = not chosen
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
            bar.update(task, description="loading country rules and a live exercise")
            seed.load_rules(session)
            seed.load_partners(session, Path("var") / "demo-partner-drop")
            seed.load_operation(session)
            from atlaslink.demo.equipment import load_equipment

            bar.update(task, description="loading the equipment pool")
            load_equipment(session)
    # Plain lines, never a table: credentials must not be truncated by a narrow terminal.
    out.print("[bold]Demo log-ins[/] (fictional data; add the TOTP secret to an authenticator app)")
    for a in accounts:
        out.print(f"  {a.username}  ({ROLE_LABELS[a.role]}, {a.where})", highlight=False)
        out.print(f"      password:    {a.password}", soft_wrap=True, highlight=False)
        out.print(f"      TOTP secret: {a.totp_secret}", soft_wrap=True, highlight=False)
    out.print(
        "A live EXERCISE request of DE-FALKE is under way (Germany approved it; sent to "
        "AT-ADLER, NL-REIGER, BE-HERMELIJN): `atlaslink requests list --as duty.de`.",
        highlight=False,
    )
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
            f"e-mails sent {done['emails']} · messages delivered {done.get('messages', 0)}"
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

    import_rows(spreadsheets.import_registry, path, as_user, dry_run)


def import_rows(importer: Callable[..., Any], path: Path, as_user: str, dry_run: bool) -> None:
    """Run a spreadsheet import (``registry`` or ``equipment`` spreadsheets) as ``as_user``,
    with progress; every row's problems are printed and nothing is applied if there is one."""
    with handled(), unit_of_work() as session, progress_bar() as bar:
        actor = _acting(session, as_user)
        task = bar.add_task("applying rows", total=None)
        report = importer(
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
    table: Annotated[
        str, typer.Option(help="For CSV: capabilities, units, contacts or transport.")
    ] = "capabilities",
) -> None:
    """Export the registry as the given user may see it."""
    from atlaslink.registry import spreadsheets
    from atlaslink.registry.repository import UnitFilters

    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise fail("the output file must end in .xlsx or .csv")
    if table not in spreadsheets.TABLES:
        raise fail("--table is capabilities, units, contacts or transport")
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


# --- country rules and bilateral agreements --------------------------------------------------

AsUser = Annotated[str, typer.Option("--as", help="Act as this user (permissions apply).")]


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


@rules_app.command("show")
def rules_show(
    as_user: AsUser,
    country: Annotated[str | None, typer.Argument(help="ISO code (EL and UK work too).")] = None,
    all_countries: Annotated[
        bool, typer.Option("--all", help="Every country, also those with no rule set.")
    ] = False,
) -> None:
    """Show one country's rules, or the countries that have rules set."""
    from atlaslink.operations import rules

    with handled(), unit_of_work() as session:
        actor = _acting(session, as_user)
        if country is not None:
            r = rules.get_rules(session, actor, country)
            out.print(f"[bold]{r.country}[/] {r.name}", highlight=False)
            for field, label in rules.RULE_LABELS.items():
                out.print(f"  {label}: {_yes(getattr(r, field))}", highlight=False)
            if r.note:
                out.print(f"  Note: {r.note}", highlight=False)
            out.print(f"  You may change them: {'yes' if r.editable else 'no'}")
            return
        listed = rules.list_rules(session, actor, only_set=not all_countries)
    table = Table(title="country rules" + ("" if all_countries else " (countries with a rule set)"))
    for col in ("country", "national approval", "bilateral needed", "bans arms", "bans explosives"):
        table.add_column(col)
    table.add_column("no 2008/617")
    table.add_column("note")
    for r in listed:
        table.add_row(
            f"{r.country} {r.name}",
            *(_yes(getattr(r, f)) for f in rules.RULE_FIELDS),
            r.note,
        )
    out.print(table)


@rules_app.command("set")
def rules_set(
    country: Annotated[str, typer.Argument(help="ISO code (EL and UK work too).")],
    as_user: AsUser,
    national_approval: Annotated[
        bool | None,
        typer.Option(
            "--national-approval/--no-national-approval",
            help="Outgoing requests pass the national contact point first.",
        ),
    ] = None,
    bilateral: Annotated[
        bool | None,
        typer.Option(
            "--bilateral-agreement/--no-bilateral-agreement",
            help="Assistance with this country needs a bilateral agreement.",
        ),
    ] = None,
    ban_arms: Annotated[
        bool | None,
        typer.Option("--ban-foreign-arms/--allow-foreign-arms", help="As host."),
    ] = None,
    ban_explosives: Annotated[
        bool | None,
        typer.Option("--ban-foreign-explosives/--allow-foreign-explosives", help="As host."),
    ] = None,
    excluded: Annotated[
        bool | None,
        typer.Option(
            "--excluded-from-2008-617/--not-excluded-from-2008-617",
            help="Decision 2008/617 is not available to this country.",
        ),
    ] = None,
    note: Annotated[str | None, typer.Option(help="Free text shown with the rules.")] = None,
) -> None:
    """Change a country's rules (options left out keep their value)."""
    from atlaslink.operations import rules, schemas

    values = {
        "national_approval_required": national_approval,
        "requires_bilateral_agreement": bilateral,
        "prohibits_foreign_arms": ban_arms,
        "prohibits_foreign_explosives": ban_explosives,
        "excluded_from_2008_617": excluded,
        "note": note,
    }
    if all(v is None for v in values.values()):
        raise fail("nothing to change: give at least one option (see --help)")
    with handled(), unit_of_work() as session:
        actor = _acting(session, as_user)
        r = rules.set_rules(session, actor, country, schemas.CountryRulesUpdate(**values))
        changed = ", ".join(
            f"{rules.RULE_LABELS[k].lower()}: {_yes(bool(v))}"
            for k, v in values.items()
            if v is not None and k != "note"
        )
    out.print(f"rules of {r.country} saved" + (f" ({changed})" if changed else ""))


@agreements_app.command("list")
def agreements_list(
    as_user: AsUser,
    country: Annotated[str | None, typer.Option(help="Only agreements of this country.")] = None,
    in_force: Annotated[
        bool | None, typer.Option("--in-force/--not-in-force", help="Filter by validity.")
    ] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=200)] = 50,
) -> None:
    """List bilateral agreements, a page at a time."""
    from atlaslink.operations import rules

    with handled(), unit_of_work() as session:
        actor = _acting(session, as_user)
        result = rules.list_agreements(
            session, actor, page=page, per_page=per_page, country=country, in_force=in_force
        )
    table = Table(
        title=f"bilateral agreements (page {result['page']} of {result['pages']}, "
        f"{result['total']} in all)"
    )
    for col in ("id", "countries", "name", "valid from", "valid to", "status"):
        table.add_column(col)
    for a in result["items"]:
        table.add_row(
            str(a.id),
            "-".join(a.countries),
            a.name,
            str(a.valid_from or "-"),
            str(a.valid_to or "-"),
            a.status.replace("_", " "),
        )
    out.print(table)


@agreements_app.command("add")
def agreements_add(
    name: str,
    country_a: Annotated[str, typer.Argument(help="One party (ISO code).")],
    country_b: Annotated[str, typer.Argument(help="The other party (ISO code).")],
    as_user: AsUser,
    valid_from: Annotated[
        datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="First day.")
    ] = None,
    valid_to: Annotated[
        datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last day.")
    ] = None,
    note: Annotated[str, typer.Option()] = "",
) -> None:
    """Record a bilateral agreement between two countries."""
    from atlaslink.operations import rules, schemas

    with handled(), unit_of_work() as session:
        actor = _acting(session, as_user)
        a = rules.add_agreement(
            session,
            actor,
            schemas.AgreementIn(
                name=name,
                country_a=country_a,
                country_b=country_b,
                valid_from=valid_from.date() if valid_from else None,
                valid_to=valid_to.date() if valid_to else None,
                note=note,
            ),
        )
    out.print(f"recorded agreement {a.id}: {a.name} ({'-'.join(a.countries)}, {a.status})")


@agreements_app.command("retire")
def agreements_retire(
    agreement_id: Annotated[int, typer.Argument(help="The agreement's id (agreements list).")],
    as_user: AsUser,
    on: Annotated[
        datetime | None,
        typer.Option("--on", formats=["%Y-%m-%d"], help="Its last day (default today)."),
    ] = None,
    reason: Annotated[str, typer.Option()] = "",
) -> None:
    """End an agreement's validity (it stays on record for the requests that named it)."""
    from atlaslink.operations import rules, schemas

    with handled(), unit_of_work() as session:
        actor = _acting(session, as_user)
        a = rules.retire_agreement(
            session,
            actor,
            agreement_id,
            schemas.AgreementRetire(valid_to=on.date() if on else None, reason=reason),
        )
    out.print(f"agreement {a.id} ({a.name}) ends on {a.valid_to}: {a.status.replace('_', ' ')}")


# --- assistance requests ----------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "-"


@requests_app.command("list")
def requests_list(
    as_user: AsUser,
    status: Annotated[
        str | None, typer.Option(help="A status (OPEN, ACTIVE, …) or 'live' (not ended).")
    ] = None,
    exercise: Annotated[
        bool | None, typer.Option("--exercise/--actual", help="Only exercises, or only actual.")
    ] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=200)] = 50,
) -> None:
    """List the requests this user may see, most recently changed first."""
    from atlaslink.auth.permissions import Permission
    from atlaslink.operations import views

    with handled(), unit_of_work() as session:
        actor = _acting(session, as_user)
        actor.require(Permission.REQUESTS_READ)
        wanted = status if status in (None, "live") else status.upper()
        result = views.list_requests(
            session, actor, page=page, per_page=per_page, status=wanted, exercise=exercise
        )
    table = Table(
        title=f"requests visible to {as_user} (page {result['page']} of {result['pages']}, "
        f"{result['total']} in all)"
    )
    for col in ("id", "reference", "", "status", "from", "title", "location", "updated"):
        table.add_column(col)
    for r in result["items"]:
        table.add_row(
            str(r.id),
            r.reference,
            "[bold]EXERCISE[/]" if r.exercise else "ACTUAL",
            r.status,
            r.requesting_country,
            r.title,
            r.location_name,
            _when(r.updated_at),
        )
    out.print(table)


@requests_app.command("show")
def requests_show(
    request: Annotated[str, typer.Argument(help="Reference (AR-2026-00001) or id.")],
    as_user: AsUser,
) -> None:
    """One request as this user may see it: lines with coverage, addressees, offers."""
    from atlaslink.operations import views

    with handled(), unit_of_work() as session:
        actor = _acting(session, as_user)
        r = views.find_request(session, actor, request)
    flag = "EXERCISE" if r.exercise else "ACTUAL"

    def p(text: str) -> None:
        out.print(text, highlight=False, soft_wrap=True)

    p(f"[bold]{r.reference}[/]  [bold]{flag}[/]  {r.status}  version {r.version}  (id {r.id})")
    p(f"{r.title}")
    origin = f"{r.requesting_country}" + (
        f" ({r.requesting_unit.code})" if r.requesting_unit else ""
    )
    p(f"From {origin} · {r.crisis_category_label} · {r.location_name}")
    p(
        f"Legal basis: {r.legal_basis_label or '-'}"
        + (f" ({r.bilateral_agreement})" if r.bilateral_agreement else "")
        + f" · {r.classification_label} · {r.handling_code}"
    )
    if r.operational_necessity:
        p(f"Necessity: {r.operational_necessity}")
    p("[bold]Lines[/]")
    for line in r.lines:
        c = line.coverage
        p(
            f"  {line.line_no}. {line.capability_name} (level >= {line.min_level}), "
            f"{line.quantity} requested: offered {c.offered}, committed {c.committed}, on site "
            f"{c.on_site} — {c.coverage}" + (" [removed]" if line.removed else "")
        )
    p(f"[bold]Addressees[/] ({len(r.addressees)})")
    for a in r.addressees:
        extra = f", escalations {a.escalations}" if a.escalations else ""
        if a.support_office_alerted:
            extra += ", support office alerted"
        p(
            f"  {a.unit.code} ({a.unit.country}) ring {a.ring}: {a.status}; ack due "
            f"{_when(a.ack_due_at)}, acknowledged {_when(a.acknowledged_at)}{extra}"
            + (f"; reason: {a.reason}" if a.reason else "")
        )
    p(f"[bold]Offers[/] ({len(r.offers)})")
    for o in r.offers:
        qty = ", ".join(
            f"line {ol.line_no}: {ol.quantity}"
            + (f" (accepted {ol.accepted_quantity})" if ol.accepted_quantity is not None else "")
            for ol in o.lines
        )
        p(f"  #{o.id} {o.unit.code} {o.kind.replace('_', ' ')}: {o.status}; {qty}")
        if o.package:
            p(f"      package: {o.package}")
        if o.arrangement is not None:
            arr = o.arrangement
            p(
                f"      arrangements revision {arr.revision}: requesting side "
                f"{'confirmed' if arr.requester_confirmed_at else 'not confirmed'}, "
                f"assisting side "
                f"{'confirmed' if arr.assisting_confirmed_at else 'not confirmed'}"
            )


# --- standard messages ------------------------------------------------------------------------


def _schema_note(text: str) -> None:
    if text != "official schemas":
        err.print(f"[yellow]note:[/] {text}", highlight=False)


@messages_app.command("import")
def messages_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    as_user: AsUser,
) -> None:
    """Import an EDXL-RM message (bare or in EDXL-DE) or a CAP alert, as this user."""
    from atlaslink.messages import inbound

    with handled(), unit_of_work() as session:
        actor = _acting(session, as_user)
        result = inbound.import_message(session, actor, path.read_bytes())
    _schema_note(result.schema_validation)
    where = f" ({result.request_reference})" if result.request_reference else ""
    verb = "already imported, nothing changed" if result.duplicate else "imported"
    out.print(f"{result.message_type} {result.message_id}: {verb}{where}: {result.outcome}")


@messages_app.command("check")
def messages_check(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Check a message against the schemas (ATLASLINK_SCHEMA_DIR) and rules; import nothing."""
    from atlaslink.messages import inbound

    with handled():
        result = inbound.check_document(path.read_bytes())
    _schema_note(result.schema_validation)
    for e in result.errors:
        err.print(f"  - {e['field']}: {e['message']}", highlight=False)
    if not result.valid:
        raise fail(f"not valid {result.kind}", 2)
    out.print(f"valid {result.kind}")


@partners_app.command("list")
def partners_list(as_user: AsUser, page: Annotated[int, typer.Option(min=1)] = 1) -> None:
    """Partners with their endpoints, subscriptions and outbox counts."""
    from atlaslink.messages import service as messages

    with handled(), unit_of_work() as session:
        result = messages.list_partners(session, _acting(session, as_user), page=page, per_page=50)
    table = Table(title=f"partners (page {result['page']} of {result['pages']})")
    for col in ("code", "sender id", "reads as", "DE", "topics", "endpoints", "pending", "parked"):
        table.add_column(col)
    for p in result["items"]:
        table.add_row(
            p.code + ("" if p.active else " (inactive)"),
            p.sender_id,
            p.reads_as,
            p.de_version,
            ",".join(p.topics),
            "\n".join(
                f"{e.id} {e.kind} {e.target}" + ("" if e.active else " (off)") for e in p.endpoints
            ),
            str(p.pending),
            str(p.parked),
        )
    out.print(table)


@partners_app.command("add")
def partners_add(
    code: str,
    name: str,
    sender_id: Annotated[str, typer.Argument(help="Its EDXL-DE senderID / CAP sender.")],
    as_user: AsUser,
    unit: Annotated[str | None, typer.Option(help="Unit code: reads and is read as it.")] = None,
    country: Annotated[str | None, typer.Option(help="Reads requests granted to it.")] = None,
    observer: Annotated[bool, typer.Option(help="Reads requests granted to observers.")] = False,
    de_version: Annotated[str, typer.Option(help="EDXL-DE version: 2.0 or 1.0.")] = "2.0",
    topic: Annotated[
        list[str] | None,
        typer.Option(help="requests, answers, deployments, alerts (repeat; default: first 3)."),
    ] = None,
) -> None:
    """Register a partner."""
    from atlaslink.messages import schemas as mschemas
    from atlaslink.messages import service as messages

    with handled(), unit_of_work() as session:
        fields: dict[str, object] = {
            "code": code,
            "name": name,
            "sender_id": sender_id,
            "unit_code": unit,
            "country": country,
            "observer": observer,
            "de_version": de_version,
        }
        if topic:
            fields["topics"] = topic
        body = mschemas.PartnerCreate.model_validate(fields)
        partner = messages.create_partner(session, _acting(session, as_user), body)
        out.print(f"partner {partner.code} registered")


@partners_app.command("endpoint")
def partners_endpoint(
    code: str,
    kind: Annotated[str, typer.Argument(help="http or directory")],
    target: Annotated[str, typer.Argument(help="URL, or an absolute folder path")],
    as_user: AsUser,
    secret: Annotated[str, typer.Option(help="HMAC key; generated when left out.")] = "",
) -> None:
    """Add an endpoint to a partner (the HMAC secret is printed once)."""
    from atlaslink.messages import schemas as mschemas
    from atlaslink.messages import service as messages

    with handled(), unit_of_work() as session:
        body = mschemas.EndpointCreate.model_validate(
            {"kind": kind, "target": target, "secret": secret}
        )
        endpoint, key = messages.add_endpoint(session, _acting(session, as_user), code, body)
        out.print(f"endpoint {endpoint.id} added to {code}")
        if key and not secret:
            out.print(f"HMAC secret (shown once): {key}", highlight=False, soft_wrap=True)


@partners_app.command("disable-endpoint")
def partners_disable_endpoint(code: str, endpoint_id: int, as_user: AsUser) -> None:
    """Stop delivering to an endpoint (its messages wait until it is enabled again)."""
    from atlaslink.messages import service as messages

    with handled(), unit_of_work() as session:
        messages.set_endpoint_active(session, _acting(session, as_user), code, endpoint_id, False)
    out.print(f"endpoint {endpoint_id} of {code} disabled")


@outbox_app.command("list")
def outbox_list(
    as_user: AsUser,
    state: Annotated[str | None, typer.Option(help="pending, sent or parked")] = None,
    partner: Annotated[str | None, typer.Option(help="A partner code.")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Outbound messages, newest first, with their delivery state."""
    from atlaslink.messages import service as messages

    with handled(), unit_of_work() as session:
        result = messages.list_outbox(
            session,
            _acting(session, as_user),
            page=page,
            per_page=50,
            state=state,
            partner=partner,
        )
    table = Table(
        title=f"outbox (page {result['page']} of {result['pages']}, {result['total']} in all)"
    )
    for col in ("id", "state", "type", "partner", "request", "tries", "next / delivered", "error"):
        table.add_column(col)
    for m in result["items"]:
        table.add_row(
            str(m.id),
            m.state,
            m.message_type,
            m.partner,
            m.request_reference or "-",
            str(m.attempts),
            _when(m.delivered_at or m.next_attempt_at),
            m.last_error[:60],
        )
    out.print(table)


@outbox_app.command("retry")
def outbox_retry(outbox_id: int, as_user: AsUser) -> None:
    """Put a parked message back in line now."""
    from atlaslink.messages import service as messages

    with handled(), unit_of_work() as session:
        m = messages.retry(session, _acting(session, as_user), outbox_id)
        out.print(f"message {m.message_id} is pending again")


@outbox_app.command("deliver")
def outbox_deliver() -> None:
    """Deliver what is due now (the worker and the server do this on every tick)."""
    from atlaslink.messages import tasks as delivery

    with handled(), progress_bar() as bar:
        task = bar.add_task("delivering", total=None)
        sent = delivery.deliver_messages(
            unit_of_work, progress=lambda n: bar.advance(task, n), max_batches=10_000
        )
    out.print(f"delivered {sent} message(s)")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())


# The equipment pool's commands live with their domain (equipment/cli.py) and register on
# this sub-app; imported last because they use the helpers above.
equipment_app = typer.Typer(
    help="The equipment pool (inventory, search, import, export).", no_args_is_help=True
)
app.add_typer(equipment_app, name="equipment")
import atlaslink.equipment.cli  # noqa: E402, F401
