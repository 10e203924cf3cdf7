"""Per-process caches of registry data, keyed by the registry version.

The token in ``registry_version`` changes, in the writing transaction itself, with every
statement that writes a table listings read (database triggers, migration 0004). A request
reads the token once (one indexed single-row query) and uses cached values only if they were
built at that token, so a change committed by any process is seen by the next request of every
other process. Values are always read *after* the token, so a value cached under a token is
never older than that token; a transaction's own uncommitted writes get their own random token,
which disappears with a rollback.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.models import RegistryVersion

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_CURRENT = select(RegistryVersion.token).where(RegistryVersion.id == 1)


def current(session: Session) -> str:
    """The registry's version as this transaction sees it now."""
    return session.execute(_CURRENT).scalar_one()


class VersionedCache(Generic[K, V]):
    """Values computed from the registry at one version; asking with another version starts
    afresh. Safe to share between the threads of a process: the (version, values) pair is
    replaced as a whole, so a thread never files a value under the wrong version."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._state: tuple[str, dict[K, V]] = ("", {})

    def _values(self, version: str) -> dict[K, V]:
        state = self._state
        if state[0] != version:
            state = (version, {})
            self._state = state
        return state[1]

    def get(self, version: str, key: K) -> V | None:
        return self._values(version).get(key)

    def get_many(self, version: str, keys: Iterable[K]) -> tuple[dict[K, V], list[K]]:
        """The cached values of ``keys`` and the keys that are not cached."""
        values = self._values(version)
        found: dict[K, V] = {}
        missing: list[K] = []
        for key in keys:
            value = values.get(key)
            if value is None:
                missing.append(key)
            else:
                found[key] = value
        return found, missing

    def put(self, version: str, key: K, value: V) -> None:
        values = self._values(version)
        while len(values) >= self.maxsize:
            # Oldest first; other threads may be removing entries at the same time.
            try:
                values.pop(next(iter(values)), None)
            except (StopIteration, RuntimeError):
                break
        values[key] = value

    def put_many(self, version: str, items: dict[K, V]) -> None:
        for key, value in items.items():
            self.put(version, key, value)

    def clear(self) -> None:
        self._state = ("", {})
