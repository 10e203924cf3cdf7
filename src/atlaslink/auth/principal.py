"""Who is acting: a person, the matching engine, or the system itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from atlaslink.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from atlaslink.errors import Forbidden


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "matching", "system"]
    label: str
    user_id: int | None = None
    role: Role | None = None
    unit_id: int | None = None
    country: str | None = None
    permissions: frozenset[Permission] = field(default_factory=frozenset)

    @classmethod
    def for_user(
        cls, *, user_id: int, username: str, role: Role, unit_id: int | None, country: str | None
    ) -> Principal:
        return cls(
            kind="user",
            label=username,
            user_id=user_id,
            role=role,
            unit_id=unit_id,
            country=country,
            permissions=ROLE_PERMISSIONS[role],
        )

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"Your role may not do this ({permission.value}).")


SYSTEM = Principal(kind="system", label="system", permissions=frozenset(Permission))
MATCHING_ENGINE = Principal(kind="matching", label="matching-engine")
