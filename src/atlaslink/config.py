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
    # Cookies are marked Secure unless explicitly served over plain HTTP (demo, tests).
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


@lru_cache
def get_settings() -> Settings:
    return Settings()
