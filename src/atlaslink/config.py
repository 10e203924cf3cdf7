"""All configuration in one place, read from ``ATLASLINK_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'var' / 'atlaslink.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATLASLINK_", extra="ignore")

    database_url: str = Field(default_factory=_default_database_url)
    # Sessions: idle and absolute expiry, in minutes.
    session_idle_minutes: int = 30
    session_absolute_minutes: int = 12 * 60
    # Mark session cookies Secure: set true behind TLS, as every production server is. Off by
    # default so that the demo and the tests work over plain HTTP on 127.0.0.1.
    cookie_secure: bool = False
    # Lock an account for ``lockout_minutes`` after ``lockout_threshold`` failed attempts.
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    # Capability entries not confirmed for this many days are flagged to their unit.
    stale_after_days: int = 90
    # Largest request body accepted, in bytes (imports included).
    max_request_bytes: int = 5 * 1024 * 1024
    # Largest import, in data rows.
    max_import_rows: int = 50_000
    totp_issuer: str = "atlaslink"
    page_size_default: int = 50
    page_size_max: int = 500

    # --- Assistance requests -------------------------------------------------------------
    # Minutes an addressed unit has to acknowledge, and how many times the next duty contact
    # is alerted before the support office is.
    ack_minutes: int = 10
    max_escalations: int = 2
    # The highest classification this installation may hold; anything above is refused.
    # One of: none, RESTREINT_UE, CONFIDENTIEL_UE, SECRET_UE.
    max_classification: str = "RESTREINT_UE"
    # Defaults proposed for a new arrangements record (never a hard-coded rule: edit per case).
    default_command: str = (
        "Assisting officers act in a supporting capacity under the responsibility, authority and "
        "direction of the requesting state, under its law, and only within the powers their own "
        "national law gives them."
    )
    default_costs: str = "To be agreed between the requesting and the assisting state."
    default_liability: str = "To be agreed between the requesting and the assisting state."
    # Optional road routing service (OSRM-compatible HTTP API, e.g. http://osrm.local:5000);
    # without it, road times are estimated from distances (docs/matching.md).
    routing_url: str | None = None
    routing_timeout_seconds: float = 2.0
    # How often the background job looks for due deadlines, lapses and e-mail (seconds).
    tick_seconds: float = 5.0
    # Start the background job inside `atlaslink serve` (a separate `atlaslink worker` also works).
    run_jobs_in_server: bool = True
    # Live updates (server-sent events): a comment line keeps idle streams open through proxies;
    # the caller's session or token and visibility are checked again at this interval; on
    # SQLite (no LISTEN/NOTIFY) each server process polls for new events at this interval.
    live_heartbeat_seconds: float = 15.0
    live_recheck_seconds: float = 30.0
    live_poll_seconds: float = 0.25
    # PostgreSQL: false lets a request whose transaction wrote nothing but its read event commit
    # without waiting for the WAL flush (synchronous_commit off for that transaction only;
    # PostgreSQL flushes it within 3 x wal_writer_delay, 0.6 s by default). A crash of the
    # database server itself can then lose the last such read events, never a change or its
    # event, and the chain stays whole (ADR 0002). True (the default): every read is durable
    # before its page is sent.
    read_events_wait_for_flush: bool = True

    # --- Equipment pool ------------------------------------------------------------------------
    # Largest photo attached to a handover or return record (JPEG or PNG, stored in the DB).
    equipment_photo_max_bytes: int = 2 * 1024 * 1024
    # Maintenance due within this many days is announced to the owning unit (once per date).
    equipment_maintenance_notice_days: int = 14
    # Longest loan or maintenance window that may be booked in one go, in days.
    equipment_max_period_days: int = 366
    # Equipment offered with an answer is offered until this many days from the answer, unless
    # the answer gives its own end (``equipment_until``); held from acceptance to that end.
    offer_equipment_days: int = 14

    # --- E-mail (notifications) --------------------------------------------------------------
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "atlaslink@localhost"
    # Used in links inside e-mails.
    base_url: str = "http://127.0.0.1:8000"

    # --- Standard messages (EDXL-RM, EDXL-DE, CAP) and their delivery --------------------
    # A folder holding the official OASIS schemas (searched recursively for their file names,
    # e.g. EDXL-RMRequestResource.xsd, edxl-de-v2.0-wd11.xsd, edxlde-1_0.xsd, CAP-v1.2.xsd).
    # Without it, messages are still checked by the platform's own rules, and every output
    # says that no schema validation took place.
    schema_dir: Path | None = None
    # This installation's name in message identifiers and as EDXL-DE senderID.
    node_id: str = "atlaslink"
    # Largest XML message accepted, in bytes, and the deepest element nesting.
    max_xml_bytes: int = 1024 * 1024
    max_xml_depth: int = 40
    # Outbound delivery: tries before a message is parked, first back-off (doubling), HTTP
    # timeout, and how far a signature's timestamp may be from the receiver's clock.
    delivery_max_attempts: int = 8
    delivery_backoff_seconds: float = 30.0
    delivery_timeout_seconds: float = 10.0
    delivery_batch: int = 200


@lru_cache
def get_settings() -> Settings:
    return Settings()
